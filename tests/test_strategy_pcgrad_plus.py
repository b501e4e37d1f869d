"""PCGrad+ (the GradCraft paper's baseline): magnitude alignment, then pairwise projections to
a positive target inner product, checked on 2-D vectors by hand."""
import math

import numpy as np
import pytest
import tensorflow as tf

from drgrad.model.strategies import get_strategy
from drgrad.model.strategies.gradcraft import GradCraft
from drgrad.model.strategies.pcgrad import pcgrad_project
from drgrad.model.strategies.pcgrad_plus import (PCGradPlus, pcgrad_plus_combine,
                                          project_to_positive)

G = tf.constant([[1.0, 0.0], [-1.0, 1.0]])   # <g1, g2> = -1, ||g1|| = 1, ||g2|| = sqrt 2


def test_positive_target_by_hand():
    r2 = math.sqrt(2.0)
    projected = project_to_positive(G, epsilon=0.5).numpy()
    # g1: excess -1 - 0.5 * 1 * sqrt2, / ||g2||^2 = 2  ->  g1 + (0.5 + 0.25 sqrt2) g2
    c1 = 0.5 + 0.25 * r2
    # g2: excess -1 - 0.5 * sqrt2 * 1, / ||g1||^2 = 1 ->  g2 + (1 + 0.5 sqrt2) g1
    c2 = 1.0 + 0.5 * r2
    np.testing.assert_allclose(projected, [[1.0 - c1, c1], [-1.0 + c2, 1.0]], atol=1e-6)
    # After the projection <g~_1, g_2> = eps * ||g_1|| * ||g_2||.
    assert projected[0] @ G.numpy()[1] == pytest.approx(0.5 * r2, abs=1e-6)
    np.testing.assert_allclose(pcgrad_plus_combine(G, tau=0.0, epsilon=0.5),
                               projected.mean(axis=0), atol=1e-6)


@pytest.mark.parametrize("orders", [None, [[1, 0, 2], [2, 0, 1], [0, 2, 1]]])
def test_zero_epsilon_is_pcgrad(orders):
    grads = tf.constant([[1.0, 0.0], [-1.0, 1.0], [-2.0, -1.0]])
    orders = None if orders is None else tf.constant(orders)
    np.testing.assert_allclose(project_to_positive(grads, 0.0, orders),
                               pcgrad_project(grads, orders), atol=1e-6)


def test_magnitudes_aligned_before_projecting():
    # tau = 1 lifts ||(0, 1)|| to the largest norm 2; no conflict: mean of (2, 0) and (0, 2).
    grads = tf.constant([[2.0, 0.0], [0.0, 1.0]])
    np.testing.assert_allclose(pcgrad_plus_combine(grads, tau=1.0, epsilon=0.0), [1.0, 1.0],
                               atol=1e-6)
    # tau = 0.5: (0, 1) -> 0.5 * 2 * (0, 1) + 0.5 * (0, 1) = (0, 1.5)
    np.testing.assert_allclose(pcgrad_plus_combine(grads, tau=0.5, epsilon=0.0), [1.0, 0.75],
                               atol=1e-6)


def test_registered_and_config():
    strategy = get_strategy("pcgrad_plus", tau=0.3, seed=4)
    assert isinstance(strategy, PCGradPlus) and isinstance(strategy, GradCraft)
    assert PCGradPlus.from_config(strategy.get_config()).get_config() == {
            "tau": 0.3, "epsilon": 1e-10, "norm_decay": 0.0, "seed": 4}
    with pytest.raises(ValueError, match="seed"):
        PCGradPlus(seed=1.5)
    with pytest.raises(ValueError, match="tau"):
        PCGradPlus(tau=2.0)
    with pytest.raises(ValueError, match="static K"):
        project_to_positive(tf.zeros([3]), 0.0)

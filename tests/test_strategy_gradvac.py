"""GradVac (Wang et al., ICLR 2021): after an update the cosine equals its target; targets
follow an EMA of the cosines seen, committed only on applied steps."""
import types

import numpy as np
import pytest
import tensorflow as tf

from drgrad.model.strategies import get_strategy
from drgrad.model.strategies.base import StrategyInputs
from drgrad.model.strategies.gradvac import GradVac, gradvac_project, update_targets
from drgrad.model.strategies.pcgrad import pcgrad_project


def _cos(x, y):
    return float(x @ y / np.linalg.norm(x) / np.linalg.norm(y))


@pytest.mark.parametrize("target", [-0.3, 0.0, 0.5, 0.9])
def test_post_update_cosine_equals_the_target(target):
    g = np.array([[1.0, 0.0], [-1.0, 1.0]])          # cosine -1/sqrt 2
    targets = tf.constant([[0.0, target], [target, 0.0]])
    projected, cosines = gradvac_project(tf.constant(g), targets)
    assert _cos(projected.numpy()[0], g[1]) == pytest.approx(target, abs=1e-6)
    assert _cos(projected.numpy()[1], g[0]) == pytest.approx(target, abs=1e-6)
    np.testing.assert_allclose(cosines, [[0.0, -2 ** -0.5], [-2 ** -0.5, 0.0]], atol=1e-6)


def test_higher_dimensions_and_no_change_above_target():
    g = np.random.default_rng(0).normal(size=(2, 9))
    phi = _cos(g[0], g[1])
    targets = tf.constant([[0.0, phi + 0.2], [phi - 0.2, 0.0]])
    projected, _ = gradvac_project(tf.constant(g), targets)
    assert _cos(projected.numpy()[0], g[1]) == pytest.approx(phi + 0.2, abs=1e-9)
    np.testing.assert_allclose(projected.numpy()[1], g[1])    # already above its target


def test_zero_targets_are_pcgrad():
    grads = tf.constant([[1.0, 0.0], [-1.0, 1.0], [-2.0, -1.0]])
    orders = tf.constant([[1, 2, 0], [2, 0, 1], [0, 1, 2]])
    projected, _ = gradvac_project(grads, tf.zeros([3, 3]), orders)
    np.testing.assert_allclose(projected, pcgrad_project(grads, orders), atol=1e-6)


def test_target_ema_by_hand():
    updated = update_targets(tf.constant([[0.0, 0.5], [0.2, 0.0]]),
                             tf.constant([[0.0, -0.5], [1.0, 0.0]]), beta=0.1)
    np.testing.assert_allclose(updated, [[0.0, 0.4], [0.28, 0.0]], atol=1e-7)


def test_strategy_commits_targets_in_after_apply():
    variable = tf.Variable([0.0, 0.0])
    model = types.SimpleNamespace(task_names=("a", "b"))
    strategy = GradVac(beta=0.5)
    strategy.build(model)
    inputs = StrategyInputs(
        variables={"shared": [variable]}, summed={},
        per_task={"a": {"shared": [tf.constant([1.0, 0.0])]},
                  "b": {"shared": [tf.constant([-1.0, 1.0])]}},
        task_losses={}, loss_weights={}, step=tf.constant(0, tf.int64))
    grads, stats = strategy.combine(inputs)
    # targets 0: PCGrad's sum (0.5, 0.5) + (0, 1)
    np.testing.assert_allclose(grads["shared"][0], [0.5, 1.5], atol=1e-6)
    assert float(stats["conflicting_pairs"]) == 1.0
    np.testing.assert_array_equal(strategy._targets.numpy(), np.zeros([2, 2]))
    strategy.after_apply(inputs, grads)
    np.testing.assert_allclose(strategy._targets, [[0.0, -0.5 * 2 ** -0.5],
                                                   [-0.5 * 2 ** -0.5, 0.0]], atol=1e-6)


def test_registered_and_config():
    strategy = get_strategy("gradvac", beta=0.1, seed=2)
    assert isinstance(strategy, GradVac)
    assert GradVac.from_config(strategy.get_config()).get_config() == {"beta": 0.1, "seed": 2}
    with pytest.raises(ValueError, match="beta"):
        GradVac(beta=0.0)
    with pytest.raises(ValueError, match="static K"):
        gradvac_project(tf.zeros([3]), tf.zeros([1, 1]))

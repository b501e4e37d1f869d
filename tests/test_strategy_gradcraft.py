"""GradCraft (Bai et al., KDD 2024): alignment and global projection against hand computations."""
import numpy as np
import pytest
import tensorflow as tf

from drgrad.model.strategies import get_strategy
from drgrad.model.strategies.gradcraft import (GradCraft, align_magnitudes, global_project,
                                        gradcraft_combine)
from drgrad.model.strategies.pcgrad import pcgrad_combine, pcgrad_project

THREE = np.array([[1.0, 0.0, 0.0], [-1.0, 1.0, 0.0], [-1.0, 0.0, 1.0]], np.float32)


def test_three_tasks_inner_products_equal_epsilon_target():
    eps = 0.1
    out = global_project(tf.constant(THREE), eps).numpy()
    norms = np.linalg.norm(THREE, axis=1)
    # Task 0 conflicts with 1 and 2 (inner products -1, -1): A A^T = [[2,1],[1,2]],
    # rhs = (1 + 0.1 * sqrt 2) [1, 1] =: c [1, 1], w = c/3 [1, 1] -> (1 - 2c/3, c/3, c/3).
    c = 1.0 + eps * np.sqrt(2.0)
    np.testing.assert_allclose(out[0], [1.0 - 2.0 * c / 3.0, c / 3.0, c / 3.0], atol=1e-5)
    for i, conflicts in ((0, (1, 2)), (1, (0,)), (2, (0,))):
        for j in conflicts:
            np.testing.assert_allclose(out[i] @ THREE[j], eps * norms[i] * norms[j], atol=1e-5)
    # Tasks 1 and 2 do not conflict (<g1, g2> = 1): the projection of task 1 ignores task 2.
    # w = (1 + eps sqrt 2) / |g0|^2: (-1, 1, 0) + (1 + 0.1 sqrt 2) (1, 0, 0).
    np.testing.assert_allclose(out[1], [eps * np.sqrt(2.0), 1.0, 0.0], atol=1e-5)


@pytest.mark.parametrize("tau", [0.0, 0.5, 1.0])
def test_magnitude_alignment(tau):
    grads = tf.constant([[3.0, 4.0], [0.6, 0.8], [0.0, 0.0]])
    norms = np.linalg.norm(align_magnitudes(grads, tau).numpy(), axis=1)
    # tau = 0 keeps 5 and 1; tau = 1 lifts every non-zero norm to 5; in between it interpolates.
    expected = {0.0: [5.0, 1.0, 0.0], 0.5: [5.0, 3.0, 0.0], 1.0: [5.0, 5.0, 0.0]}[tau]
    np.testing.assert_allclose(norms, expected, atol=1e-5)


def test_reduces_to_pcgrad_for_two_tasks():
    rng = np.random.default_rng(0)
    for _ in range(5):
        a = rng.normal(size=6).astype(np.float32)
        b = (-a + 0.5 * rng.normal(size=6)).astype(np.float32)  # conflicting
        grads = tf.constant([a, b])
        np.testing.assert_allclose(global_project(grads, 0.0), pcgrad_project(grads), atol=1e-5)
        np.testing.assert_allclose(gradcraft_combine(grads, tau=0.0, epsilon=0.0),
                                   pcgrad_combine(grads) / 2.0, atol=1e-5)


def test_linearly_dependent_conflicts_stay_finite():
    g = np.array([[1.0, 0.0], [-1.0, 0.1], [-2.0, 0.2]], np.float32)  # rows 1, 2 collinear
    out = global_project(tf.constant(g), 0.0).numpy()
    assert np.all(np.isfinite(out))
    assert out[0] @ g[1] >= -1e-4 and out[0] @ g[2] >= -1e-4


def test_runs_in_tf_function_and_config():
    fn = tf.function(lambda g: gradcraft_combine(g, 0.1, 1e-10))
    assert np.all(np.isfinite(fn(tf.constant(THREE)).numpy()))
    strategy = get_strategy("gradcraft")
    assert isinstance(strategy, GradCraft)
    assert strategy.get_config() == {"tau": 0.1, "epsilon": 1e-10, "norm_decay": 0.0}
    for bad in ({"tau": 1.5}, {"epsilon": -1.0}, {"norm_decay": 1.0}):
        with pytest.raises(ValueError):
            GradCraft(**bad)

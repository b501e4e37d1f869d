"""CAGrad (Liu et al., NeurIPS 2021) on cases with a closed form, c = 0.4."""
import numpy as np
import pytest
import tensorflow as tf

from drgrad.model.strategies import get_strategy
from drgrad.model.strategies.cagrad import CAGrad, cagrad_combine, cagrad_weights

C = 0.4


def dual_objective(gram, w, c):
    b = gram.mean(axis=1)
    return w @ b + c * np.sqrt(b.mean()) * np.sqrt(w @ gram @ w)


def test_orthogonal_equal_norms():
    # Symmetric: w = (1/2, 1/2), g_w = g_0, d = (1 + c) g_0 = (0.7, 0.7), then / (1 + c^2).
    d = cagrad_combine(tf.constant([[1.0, 0.0], [0.0, 1.0]]), c=C).numpy()
    np.testing.assert_allclose(d, [0.7 / 1.16, 0.7 / 1.16], atol=1e-6)


def test_vertex_solution():
    # g1 = (1,0), g2 = (0,2): the dual optimum is w = (1, 0) (derivative at the vertex
    # -1.5 + 0.4 * sqrt(1.25) < 0), so d = g0 + c |g0| g1 / |g1| = (0.5 + 0.4 sqrt 1.25, 1).
    grads = tf.constant([[1.0, 0.0], [0.0, 2.0]])
    np.testing.assert_allclose(cagrad_weights(tf.matmul(grads, grads, transpose_b=True), C),
                               [1.0, 0.0], atol=1e-9)
    expected = np.array([0.5 + 0.4 * np.sqrt(1.25), 1.0]) / 1.16
    np.testing.assert_allclose(cagrad_combine(grads, c=C), expected, atol=1e-6)


def test_interior_two_task_optimum_matches_grid_search():
    grads = np.array([[1.0, 0.0], [0.0, 1.2]])
    gram = grads @ grads.T
    p = np.linspace(0.0, 1.0, 200001)
    w_grid = np.stack([p, 1.0 - p], axis=1)
    values = [dual_objective(gram, w, C) for w in w_grid[::100]]
    coarse = p[::100][int(np.argmin(values))]
    fine = p[(p > coarse - 0.001) & (p < coarse + 0.001)]
    best = fine[int(np.argmin([dual_objective(gram, np.array([q, 1 - q]), C) for q in fine]))]
    w = cagrad_weights(tf.constant(gram), C).numpy()
    assert 0.0 < best < 1.0
    np.testing.assert_allclose(w[0], best, atol=1e-4)


def test_three_tasks_no_worse_than_uniform_or_vertices():
    rng = np.random.default_rng(1)
    grads = rng.normal(size=(3, 5)) * np.array([[0.5], [1.0], [2.0]])
    gram = grads @ grads.T
    w = cagrad_weights(tf.constant(gram), C, solver_steps=50).numpy()
    np.testing.assert_allclose(w.sum(), 1.0, atol=1e-9)
    assert np.all(w >= -1e-12)
    candidates = [np.ones(3) / 3] + list(np.eye(3))
    grid = [np.array([a, b, 1 - a - b]) for a in np.linspace(0, 1, 201)
            for b in np.linspace(0, 1, 201) if a + b <= 1]
    best = min(dual_objective(gram, v, C) for v in grid)
    value = dual_objective(gram, w, C)
    assert value <= min(dual_objective(gram, v, C) for v in candidates) + 1e-9
    assert value <= best + 1e-3 * abs(best)


def test_c_zero_is_the_mean():
    grads = tf.constant([[1.0, -2.0], [3.0, 1.0]])
    np.testing.assert_allclose(cagrad_combine(grads, c=0.0), [2.0, -0.5], atol=1e-6)


def test_tf_function_and_config():
    fn = tf.function(lambda g: cagrad_combine(g, C))
    np.testing.assert_allclose(fn(tf.constant([[1.0, 0.0], [0.0, 1.0]])), [0.7 / 1.16] * 2,
                               atol=1e-6)
    strategy = get_strategy("cagrad")
    assert isinstance(strategy, CAGrad) and strategy.get_config()["c"] == 0.4
    for bad in ({"c": -1}, {"rescale": 3}, {"solver_steps": 0}):
        with pytest.raises(ValueError):
            CAGrad(**bad)

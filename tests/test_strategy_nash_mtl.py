"""Nash-MTL (Navon et al., ICML 2022): the solution satisfies (G G^T) alpha = 1 / alpha."""
import numpy as np
import pytest
import tensorflow as tf

from drgrad.model.strategies import get_strategy
from drgrad.model.strategies.nash_mtl import NashMTL, clip_to_norm, nash_weights


def test_orthogonal_closed_form():
    # G G^T = diag(|g_i|^2) -> alpha_i = 1 / |g_i|.
    grads = np.array([[2.0, 0.0, 0.0], [0.0, 0.5, 0.0], [0.0, 0.0, 4.0]])
    np.testing.assert_allclose(nash_weights(tf.constant(grads @ grads.T)), [0.5, 2.0, 0.25],
                               rtol=1e-6)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_first_order_condition(seed):
    rng = np.random.default_rng(seed)
    grads = rng.normal(size=(3, 10)) * np.array([[0.1], [1.0], [5.0]])
    gram = grads @ grads.T
    alpha = nash_weights(tf.constant(gram)).numpy()
    assert np.all(alpha > 0)
    np.testing.assert_allclose((gram @ alpha) * alpha, np.ones(3), atol=1e-4)


def test_conflicting_two_tasks():
    grads = np.array([[1.0, 0.0], [-0.5, 1.0]])
    gram = grads @ grads.T
    alpha = tf.function(nash_weights)(tf.constant(gram)).numpy()
    np.testing.assert_allclose(gram @ alpha, 1.0 / alpha, rtol=1e-5)


def test_clip_and_config():
    np.testing.assert_allclose(clip_to_norm(tf.constant([3.0, 4.0]), 1.0), [0.6, 0.8])
    np.testing.assert_allclose(clip_to_norm(tf.constant([3.0, 4.0]), 0.0), [3.0, 4.0])
    strategy = get_strategy("nash_mtl", update_weights_every=2)
    assert isinstance(strategy, NashMTL)
    assert strategy.get_config() == {"update_weights_every": 2, "optim_niter": 20,
                                     "max_norm": 1.0}
    for bad in ({"update_weights_every": 0}, {"optim_niter": 0}, {"max_norm": -1.0}):
        with pytest.raises(ValueError):
            NashMTL(**bad)

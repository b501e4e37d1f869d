"""MGDA (Sener & Koltun, NeurIPS 2018): the Frank-Wolfe min-norm solver against the two-task
closed form and the min-norm optimality conditions; MGDA-UB through representation routing."""
import numpy as np
import pytest
import tensorflow as tf

from drgrad.model import build_model
from drgrad.model.strategies import get_strategy
from drgrad.model.strategies.mgda import MGDA, mgda_combine, min_norm_weights
from tiny_split_mmoe import FC, TASKS, TINY, batch


def _closed_form(g1, g2):
    """Weight of g1: clip(<g2 - g1, g2> / ||g1 - g2||^2, 0, 1)."""
    g1, g2 = np.asarray(g1, np.float64), np.asarray(g2, np.float64)
    return float(np.clip((g2 - g1) @ g2 / np.sum((g1 - g2) ** 2), 0.0, 1.0))


def test_two_tasks_by_hand():
    # <(-2, 1), (-1, 1)> = 3, ||(2, -1)||^2 = 5: a = 0.6, d = 0.6 (1, 0) + 0.4 (-1, 1)
    d, weights = mgda_combine(tf.constant([[1.0, 0.0], [-1.0, 1.0]]), iterations=1)
    np.testing.assert_allclose(weights, [0.6, 0.4], atol=1e-6)
    np.testing.assert_allclose(d, [0.2, 0.4], atol=1e-6)
    # Same direction: the shorter gradient is the min-norm point (clip at 1).
    d, weights = mgda_combine(tf.constant([[1.0, 0.0], [2.0, 0.0]]), iterations=1)
    np.testing.assert_allclose(weights, [1.0, 0.0], atol=1e-6)


@pytest.mark.parametrize("seed", range(5))
def test_two_tasks_match_the_closed_form_after_one_iteration(seed):
    g = np.random.default_rng(seed).normal(size=(2, 7))
    weights = min_norm_weights(g @ g.T, iterations=1).numpy()
    assert weights[0] == pytest.approx(_closed_form(g[0], g[1]), abs=1e-9)
    assert weights[1] == pytest.approx(1.0 - weights[0], abs=1e-12)


def test_three_tasks_satisfy_the_min_norm_conditions():
    # Min-norm point d of the hull: <g_t, d> >= ||d||^2 for every t, with equality on the
    # support (a_t > 0).
    g = np.random.default_rng(1).normal(size=(3, 6))
    weights = min_norm_weights(g @ g.T, iterations=500).numpy()
    d = weights @ g
    assert weights.min() >= 0.0 and weights.sum() == pytest.approx(1.0)
    slack = g @ d - d @ d
    assert slack.min() >= -1e-3
    np.testing.assert_allclose(slack[weights > 1e-3], 0.0, atol=1e-3)
    # Orthogonal unit gradients: the centre of the simplex, at once.
    np.testing.assert_allclose(min_norm_weights(np.eye(3), iterations=1), [1 / 3] * 3)


def test_upper_bound_routes_the_min_norm_representation_gradient():
    strategy = MGDA(iterations=1, upper_bound=True)
    rep_grads = {"a": {"v": tf.constant([[1.0, 0.0]]), "w": tf.constant([[0.0]])},
                 "b": {"v": tf.constant([[-1.0, 1.0]]), "w": tf.constant([[0.0]])}}
    routed, stats = strategy.route_representations(rep_grads)
    np.testing.assert_allclose(routed["v"], [[0.2, 0.4]], atol=1e-6)
    np.testing.assert_allclose(routed["w"], [[0.0]])
    assert float(stats["weight/a"]) == pytest.approx(0.6)
    assert float(stats["conflicting_pairs"]) == 1.0


def test_upper_bound_trains_on_a_split_backbone():
    model = build_model(FC, TASKS, backbone="split_mmoe", strategy="mgda", backbone_args=TINY,
                        strategy_args={"upper_bound": True}, seed=0)
    assert model.strategy.routes_representations and not model.strategy.needs_task_gradients
    features, labels = batch()
    logs = model.train_on_batch(features, labels, return_dict=True)
    assert np.isfinite(logs["loss"]) and logs["skipped_steps"] == 0
    stats = model.read_stats()
    assert stats["weight/a"] + stats["weight/b"] == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(ValueError, match="representations"):
        build_model(FC, TASKS, backbone="mmoe", strategy="mgda", backbone_args=TINY,
                    strategy_args={"upper_bound": True})


def test_registered_and_config():
    strategy = get_strategy("mgda", iterations=5, upper_bound=True)
    assert isinstance(strategy, MGDA)
    assert MGDA.from_config(strategy.get_config()).get_config() == {"iterations": 5,
                                                                    "upper_bound": True}
    assert MGDA().needs_task_gradients and not MGDA().routes_representations
    with pytest.raises(ValueError, match="iterations"):
        MGDA(iterations=0)
    with pytest.raises(ValueError, match="upper_bound"):
        MGDA(upper_bound=1)
    with pytest.raises(ValueError, match="static K"):
        mgda_combine(tf.zeros([3]))

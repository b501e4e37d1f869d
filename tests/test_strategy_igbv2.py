"""IGBv2 (Dai et al., UAI 2023) with the in-graph REINFORCE policy."""
import types

import numpy as np
import pytest
import tensorflow as tf

from drgrad.model.strategies import get_strategy
from drgrad.model.strategies.base import StrategyInputs
from drgrad.model.strategies.igbv2 import IGBv2, igb_reward, policy_weights

TASKS = ("a", "b")


def test_reward_is_worst_relative_improvement():
    # improvements (1.0 - 0.8) / 2 = 0.1 and (0.5 - 0.6) / 0.5 = -0.2 -> min -0.2
    reward = igb_reward(tf.constant([1.0, 0.5]), tf.constant([0.8, 0.6]), tf.constant([2.0, 0.5]))
    np.testing.assert_allclose(float(reward), -0.2, rtol=1e-6)


def test_policy_weights_sum_to_k():
    w = policy_weights(tf.constant([1.0, 2.0, 0.5]), tf.zeros([3, 3]), tf.zeros([3]),
                       tf.zeros([3]), 0.3)
    np.testing.assert_allclose(w, [1.0, 1.0, 1.0], rtol=1e-6)
    w = policy_weights(tf.constant([1.0, 2.0]), tf.eye(2), tf.zeros([2]), tf.zeros([2]), 0.3)
    np.testing.assert_allclose(w, 2 * np.exp([1, 2]) / np.exp([1, 2]).sum(), rtol=1e-6)


def _inputs(losses):
    return StrategyInputs(variables={}, summed={}, per_task=None,
                          task_losses={t: tf.constant(l) for t, l in zip(TASKS, losses)},
                          loss_weights={}, step=tf.constant(0, tf.int64))


def test_loss_weights_are_w_over_loss_and_policy_learns():
    strategy = IGBv2(warmup_steps=2, policy_lr=0.5)
    strategy.build(types.SimpleNamespace(task_names=TASKS))
    alpha = {t: tf.constant(1.0) for t in TASKS}
    losses = [(0.7, 0.6), (0.6, 0.5), (0.5, 0.45), (0.45, 0.44), (0.40, 0.43)]
    for step, pair in enumerate(losses):
        weights = strategy.loss_weights({t: tf.constant(l) for t, l in zip(TASKS, pair)}, alpha)
        w = np.array([float(weights[t]) for t in TASKS]) * np.array(pair)
        np.testing.assert_allclose(w.sum(), 2.0, rtol=1e-5)      # weights sum to K
        strategy.after_apply(_inputs(pair), {})
        if step < 2:
            np.testing.assert_allclose(strategy._kernel.numpy(), 0.0)  # warm-up: no learning
    # Base losses = mean of the warm-up losses.
    np.testing.assert_allclose(strategy._base.numpy(), [0.65, 0.55], rtol=1e-6)
    assert np.any(strategy._kernel.numpy() != 0.0)
    assert np.all(np.isfinite(strategy._kernel.numpy()))


def test_config():
    strategy = get_strategy("igbv2", warmup_steps=10)
    assert isinstance(strategy, IGBv2) and strategy.groups == ()
    assert IGBv2.from_config(strategy.get_config()).warmup_steps == 10
    for bad in ({"warmup_steps": 0}, {"sigma": 0.0}, {"policy_lr": -1.0},
                {"baseline_decay": 1.0}, {"seed": 1.5}):
        with pytest.raises(ValueError):
            IGBv2(**bad)

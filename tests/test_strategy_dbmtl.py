"""DB-MTL (Lin et al., 2023): log-loss weights, EMA task gradients and the magnitude-balanced
update, on 2-D vectors by hand."""
import types

import numpy as np
import pytest
import tensorflow as tf

from drgrad.model.strategies import get_strategy
from drgrad.model.strategies.base import StrategyInputs
from drgrad.model.strategies.dbmtl import DBMTL, balance_magnitudes, ema_gradients


def test_balance_by_hand():
    # max norm 5; directions (0.6, 0.8) and (0, -1): 5 * (0.6, -0.2)
    np.testing.assert_allclose(balance_magnitudes(tf.constant([[3.0, 4.0], [0.0, -1.0]])),
                               [3.0, -1.0], atol=1e-6)
    # A zero gradient contributes nothing.
    np.testing.assert_allclose(balance_magnitudes(tf.constant([[3.0, 4.0], [0.0, 0.0]])),
                               [3.0, 4.0], atol=1e-6)


def test_ema_by_hand():
    np.testing.assert_allclose(ema_gradients(tf.constant([[1.0, 0.0]]), tf.constant([[0.0, 2.0]]),
                                             0.9), [[0.9, 0.2]], atol=1e-7)


def test_log_loss_weights():
    weights = DBMTL().loss_weights({"a": tf.constant(0.5), "b": tf.constant(0.01)},
                                   {"a": tf.constant(1.0), "b": tf.constant(2.0)})
    assert float(weights["a"]) == pytest.approx(2.0, rel=1e-6)
    assert float(weights["b"]) == pytest.approx(200.0, rel=1e-5)


def test_strategy_step_and_state():
    variables = [tf.Variable([0.0]), tf.Variable([0.0, 0.0])]
    model = types.SimpleNamespace(task_names=("a", "b"),
                                  backbone=types.SimpleNamespace(
                                      variable_groups=lambda: {"shared": variables}))
    strategy = DBMTL(beta=0.5)
    strategy.build(model)
    assert strategy._buffer.shape == (2, 3)

    def inputs(a, b):
        return StrategyInputs(
            variables={"shared": variables}, summed={},
            per_task={"a": {"shared": [tf.constant(a[:1]), tf.constant(a[1:])]},
                      "b": {"shared": [tf.constant(b[:1]), tf.constant(b[1:])]}},
            task_losses={}, loss_weights={}, step=tf.constant(0, tf.int64))

    first = inputs([0.0, 6.0, 8.0], [2.0, 0.0, 0.0])
    grads, _ = strategy.combine(first)
    # EMA from 0 with beta 0.5: h = (0, 3, 4), (1, 0, 0); 5 * ((0, .6, .8) + (1, 0, 0))
    np.testing.assert_allclose(grads["shared"][0], [5.0], atol=1e-6)
    np.testing.assert_allclose(grads["shared"][1], [3.0, 4.0], atol=1e-6)
    np.testing.assert_array_equal(strategy._buffer.numpy(), np.zeros([2, 3]))  # not yet applied
    strategy.after_apply(first, grads)
    np.testing.assert_allclose(strategy._buffer, [[0.0, 3.0, 4.0], [1.0, 0.0, 0.0]])
    # Second step: h = (0, 1.5, 2) and (0.5, 0, 0) + 0.5 * (0, 0, 2) = (0.5, 0, 1)
    grads, _ = strategy.combine(inputs([0.0, 0.0, 0.0], [0.0, 0.0, 2.0]))
    norm_b = np.sqrt(1.25)
    expected = 2.5 * (np.array([0.0, 0.6, 0.8]) + np.array([0.5, 0.0, 1.0]) / norm_b)
    np.testing.assert_allclose(np.concatenate([g.numpy() for g in grads["shared"]]), expected,
                               rtol=1e-6)


def test_registered_and_config():
    strategy = get_strategy("dbmtl", beta=0.8)
    assert isinstance(strategy, DBMTL)
    assert DBMTL.from_config(strategy.get_config()).beta == 0.8
    with pytest.raises(ValueError, match="beta"):
        DBMTL(beta=1.0)

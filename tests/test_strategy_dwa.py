"""DWA (Liu et al., CVPR 2019): weights from epoch-mean loss ratios, by hand, and the epoch-end
hook wired through `drgrad.training.callbacks.strategy_callbacks`."""
import math

import numpy as np
import pytest
import tensorflow as tf

from drgrad.model import build_model
from drgrad.model.strategies import get_strategy
from drgrad.model.strategies.base import StrategyInputs
from drgrad.model.strategies.dwa import DWA, dwa_weights
from drgrad.training.callbacks import StrategyEpochEnd, strategy_callbacks
from tiny_split_mmoe import FC, TASKS, TINY, batch

ALPHA = {"a": tf.constant(1.0), "b": tf.constant(0.5)}


def _hand_weights(last, before, temperature=2.0):
    e = [math.exp(l / b / temperature) for l, b in zip(last, before)]
    return [len(e) * x / sum(e) for x in e]


def _model(strategy="dwa"):
    return build_model(FC, TASKS, backbone="mmoe", strategy=strategy, backbone_args=TINY, seed=0)


def _step(strategy, losses):
    strategy.after_apply(StrategyInputs(
        variables={}, summed={}, per_task=None,
        task_losses={t: tf.constant(v) for t, v in zip(TASKS, losses)},
        loss_weights={}, step=tf.constant(0, tf.int64)), {})


def test_weights_by_hand():
    # ratios 0.5 and 1.0, /T: 0.25 and 0.5; 2 * softmax
    expected = [2.0 / (1.0 + math.exp(0.25)), 2.0 / (1.0 + math.exp(-0.25))]
    np.testing.assert_allclose(dwa_weights(tf.constant([1.0, 0.5]), tf.constant([2.0, 0.5])),
                               expected, rtol=1e-6)
    np.testing.assert_allclose(expected, _hand_weights([1.0, 0.5], [2.0, 0.5]), rtol=1e-12)
    assert float(tf.reduce_sum(dwa_weights(tf.constant([3.0, 1.0, 2.0]),
                                           tf.constant([1.0, 2.0, 2.0])))) == pytest.approx(3.0)


def test_epoch_means_drive_the_weights():
    strategy = _model().strategy
    # Epoch 1: steps (3, 1) and (1, 0): means (2, 0.5).  Epoch 2: (1, 0.5) once.
    _step(strategy, [3.0, 1.0])
    _step(strategy, [1.0, 0.0])
    strategy.on_epoch_end(0)
    weights = strategy.loss_weights({"a": 0.0, "b": 0.0}, ALPHA)
    assert [float(weights[t]) for t in TASKS] == [1.0, 0.5]   # one epoch only: w = 1
    _step(strategy, [1.0, 0.5])
    strategy.on_epoch_end(1)
    strategy.on_epoch_end(2)                                   # no applied step: no change
    weights = strategy.loss_weights({"a": 0.0, "b": 0.0}, ALPHA)
    w = _hand_weights([1.0, 0.5], [2.0, 0.5])
    np.testing.assert_allclose([float(weights[t]) for t in TASKS], [w[0], 0.5 * w[1]], rtol=1e-6)
    assert [float(x) for x in strategy.current_weights()] == pytest.approx(w, rel=1e-6)


def test_callback_closes_epochs_during_fit():
    model = _model()
    features, labels = batch(n=16)
    data = tf.data.Dataset.from_tensor_slices((features, labels)).batch(8)
    callbacks = strategy_callbacks(model)
    assert [type(c) for c in callbacks] == [StrategyEpochEnd]
    model.fit(data, epochs=3, verbose=0, callbacks=callbacks)
    assert float(model.strategy._epochs) == 3.0
    stats = model.read_stats()
    assert sum(stats[f"weight/{t}"] for t in TASKS) == pytest.approx(2.0, rel=1e-5)
    assert strategy_callbacks(_model("pcgrad")) == []


def test_registered_and_config():
    strategy = get_strategy("dwa", temperature=3.0)
    assert isinstance(strategy, DWA) and strategy.needs_epoch_end
    assert DWA.from_config(strategy.get_config()).temperature == 3.0
    with pytest.raises(ValueError, match="temperature"):
        DWA(temperature=0.0)

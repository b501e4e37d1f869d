"""Uncertainty weighting (Kendall et al., CVPR 2018), objective ``exp(-s) L + s``: weights and
the learned log-variances checked by hand, through the model's own optimizer step."""
import math

import numpy as np
import pytest
import tensorflow as tf

from drgrad.model import build_model
from drgrad.model.strategies import get_strategy
from drgrad.model.strategies.uncertainty import Uncertainty, uncertainty_objective
from tiny_split_mmoe import FC, TASKS, TINY, batch


def _model(task_weights=None, learning_rate=0.1):
    model = build_model(FC, TASKS, backbone="mmoe", strategy="uncertainty", backbone_args=TINY,
                        task_weights=task_weights, seed=0, compile_model=False)
    model.compile(optimizer=tf.keras.optimizers.SGD(learning_rate))
    return model


def _task_losses(model, features, labels):
    logits = model.task_logits({k: tf.constant(v) for k, v in features.items()}, training=True)
    return {t: float(tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(
        labels=tf.constant(labels[t]), logits=logits[t]))) for t in TASKS}


def test_objective_by_hand():
    value = uncertainty_objective(tf.constant([0.5, 2.0]), tf.constant([0.0, math.log(2.0)]))
    # 0.5 * 1 + 0  +  2.0 * 0.5 + log 2
    assert float(value) == pytest.approx(1.5 + math.log(2.0), rel=1e-6)


def test_weights_by_hand():
    model = _model()
    model.strategy._log_variance.assign([math.log(2.0), -math.log(2.0)])
    weights = model.strategy.loss_weights({"a": tf.constant(0.7), "b": tf.constant(0.3)},
                                          {"a": tf.constant(1.0), "b": tf.constant(0.5)})
    # exp(-s) * alpha: 0.5 * 1.0 and 2.0 * 0.5
    assert float(weights["a"]) == pytest.approx(0.5, rel=1e-6)
    assert float(weights["b"]) == pytest.approx(1.0, rel=1e-6)


def test_log_variances_are_trained_by_the_model_optimizer():
    model = _model()
    s = model.strategy._log_variance
    assert any(v is s for v in model.trainable_variables)
    s.assign([0.2, -0.1])
    features, labels = batch()
    losses = _task_losses(model, features, labels)
    start = s.numpy().copy()
    model.train_on_batch(features, labels)
    # d/ds [exp(-s) L + s] = 1 - exp(-s) L; one SGD step of 0.1
    expected = [start[i] - 0.1 * (1.0 - math.exp(-start[i]) * losses[t])
                for i, t in enumerate(TASKS)]
    np.testing.assert_allclose(s.numpy(), expected, rtol=1e-4)


def test_untrained_task_has_no_drifting_scale():
    model = _model(task_weights={"b": 0.0})
    features, labels = batch()
    model.train_on_batch(features, labels)
    assert model.strategy._log_variance.numpy()[1] == 0.0  # weight 0: neither L_b nor + s_b
    assert model.strategy._log_variance.numpy()[0] != 0.0


def test_registered_and_config():
    strategy = get_strategy("uncertainty", initial_log_variance=0.5)
    assert isinstance(strategy, Uncertainty) and strategy.groups == ()
    assert Uncertainty.from_config(strategy.get_config()).initial_log_variance == 0.5
    with pytest.raises(ValueError, match="initial_log_variance"):
        Uncertainty(initial_log_variance=float("nan"))

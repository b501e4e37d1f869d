"""IMTL (Liu et al., ICLR 2021): IMTL-G's aggregate has equal projections onto every task's
unit gradient; IMTL-L's loss scales are trained from ``exp(s) L - s`` by the model."""
import math

import numpy as np
import pytest
import tensorflow as tf

from drgrad.model import build_model
from drgrad.model.strategies import get_strategy
from drgrad.model.strategies.imtl import IMTL, imtl_weights
from tiny_split_mmoe import FC, TASKS, TINY, batch


def test_two_tasks_by_hand():
    # d = a (1, 0) + (1 - a) (0, 2); <d, e1> = a = <d, e2> = 2 (1 - a): a = 2/3
    grads = tf.constant([[1.0, 0.0], [0.0, 2.0]])
    weights = imtl_weights(grads)
    np.testing.assert_allclose(weights, [2 / 3, 1 / 3], atol=1e-6)
    np.testing.assert_allclose(tf.linalg.matvec(grads, weights, transpose_a=True),
                               [2 / 3, 2 / 3], atol=1e-6)


@pytest.mark.parametrize("k", [2, 3, 5])
def test_equal_projections_onto_unit_gradients(k):
    g = np.random.default_rng(k).normal(size=(k, 8)) * np.arange(1, k + 1)[:, None]
    weights = imtl_weights(tf.constant(g)).numpy()
    assert weights.sum() == pytest.approx(1.0, abs=1e-9)
    d = weights @ g
    projections = g @ d / np.linalg.norm(g, axis=1)
    np.testing.assert_allclose(projections, projections[0], rtol=1e-8)


def test_single_task():
    np.testing.assert_array_equal(imtl_weights(tf.ones([1, 3])), [1.0])


def test_loss_scales_are_trained_by_the_model_optimizer():
    model = build_model(FC, TASKS, backbone="mmoe", strategy="imtl", backbone_args=TINY,
                        seed=0, compile_model=False)
    model.compile(optimizer=tf.keras.optimizers.SGD(0.1))
    s = model.strategy._log_scale
    assert any(v is s for v in model.trainable_variables)
    s.assign([0.3, -0.2])
    features, labels = batch()
    logits = model.task_logits({k: tf.constant(v) for k, v in features.items()}, training=True)
    losses = [float(tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(
        labels=tf.constant(labels[t]), logits=logits[t]))) for t in TASKS]
    model.train_on_batch(features, labels)
    # d/ds [exp(s) L - s] = exp(s) L - 1; one SGD step of 0.1
    expected = [x - 0.1 * (math.exp(x) * loss - 1.0) for x, loss in zip([0.3, -0.2], losses)]
    np.testing.assert_allclose(s.numpy(), expected, rtol=1e-4)
    stats = model.read_stats()
    assert stats["weight/a"] + stats["weight/b"] == pytest.approx(1.0, abs=1e-5)


def test_registered_and_config():
    strategy = get_strategy("imtl", initial_log_scale=0.1)
    assert isinstance(strategy, IMTL) and strategy.groups == ("shared",)
    assert IMTL.from_config(strategy.get_config()).initial_log_scale == 0.1
    with pytest.raises(ValueError, match="initial_log_scale"):
        IMTL(initial_log_scale=float("inf"))
    with pytest.raises(ValueError, match="static K"):
        imtl_weights(tf.zeros([3]))

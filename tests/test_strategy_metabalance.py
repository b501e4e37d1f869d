"""MetaBalance (He et al., WWW 2022): the auxiliary gradients are rescaled, per shared variable,
towards the target (primary) task's moving-average norm; norms checked by hand."""
import types

import numpy as np
import pytest
import tensorflow as tf

from drgrad.model.strategies import get_strategy
from drgrad.model.strategies.base import StrategyInputs
from drgrad.model.strategies.metabalance import (MetaBalance, metabalance_scales,
                                          update_norm_averages)

# Two shared variables; target task "a" first. Norms: a (5, 1), b (10, 4).
A = [[3.0, 4.0], [0.0, 1.0]]
B = [[0.0, 10.0], [4.0, 0.0]]


def _strategy(**kwargs):
    variables = [tf.Variable([0.0, 0.0]), tf.Variable([0.0, 0.0])]
    model = types.SimpleNamespace(task_names=("a", "b"),
                                  backbone=types.SimpleNamespace(
                                      variable_groups=lambda: {"shared": variables}))
    strategy = MetaBalance(**kwargs)
    strategy.build(model)
    inputs = StrategyInputs(
        variables={"shared": variables}, summed={},
        per_task={"a": {"shared": [tf.constant(g) for g in A]},
                  "b": {"shared": [tf.constant(g) for g in B]}},
        task_losses={}, loss_weights={}, step=tf.constant(0, tf.int64))
    return strategy, inputs


def test_scales_by_hand():
    averages = update_norm_averages(tf.zeros([2, 2]), tf.constant([[5.0, 1.0], [10.0, 4.0]]), 0.9)
    np.testing.assert_allclose(averages, [[0.5, 0.1], [1.0, 0.4]], atol=1e-7)
    scales = metabalance_scales(averages, 0.7).numpy()
    # r * m_a / (m_t + 1e-5) + (1 - r)
    np.testing.assert_allclose(scales[1], [0.7 * 0.5 / 1.00001 + 0.3, 0.7 * 0.1 / 0.40001 + 0.3],
                               rtol=1e-6)
    np.testing.assert_allclose(scales[0], [1.0, 1.0], atol=1e-4)


def test_full_relaxation_rescales_to_the_target_norm():
    strategy, inputs = _strategy(relax_factor=1.0)
    grads, stats = strategy.combine(inputs)
    # g'_b = (||g_a|| / ||g_b||) g_b per variable: (0, 5) and (1, 0); plus g_a.
    np.testing.assert_allclose(grads["shared"][0], [3.0, 9.0], rtol=1e-4)
    np.testing.assert_allclose(grads["shared"][1], [1.0, 1.0], rtol=1e-4)
    # ||g'_b|| / ||g_b|| over the group: sqrt(25 + 1) / sqrt(100 + 16)
    assert float(stats["norm_ratio/b"]) == pytest.approx(np.sqrt(26 / 116), rel=1e-4)


def test_default_relaxation_norms():
    strategy, inputs = _strategy()
    grads, _ = strategy.combine(inputs)
    rescaled_b = [np.asarray(g) - np.asarray(a) for g, a in zip(grads["shared"], A)]
    # ||g'_b|| = 0.7 ||g_a|| + 0.3 ||g_b|| (rescaling keeps the direction)
    np.testing.assert_allclose([np.linalg.norm(g) for g in rescaled_b],
                               [0.7 * 5 + 0.3 * 10, 0.7 * 1 + 0.3 * 4], rtol=1e-4)
    np.testing.assert_array_equal(strategy._norm_averages.numpy(), np.zeros([2, 2]))
    strategy.after_apply(inputs, grads)
    np.testing.assert_allclose(strategy._norm_averages, [[0.5, 0.1], [1.0, 0.4]], atol=1e-6)
    # The same gradients again: the averages move, their ratios (hence the update) do not.
    again, _ = strategy.combine(inputs)
    for g, h in zip(grads["shared"], again["shared"]):
        np.testing.assert_allclose(g, h, rtol=1e-4)


def test_registered_and_config():
    strategy = get_strategy("metabalance", relax_factor=0.5, beta=0.8)
    assert isinstance(strategy, MetaBalance)
    assert MetaBalance.from_config(strategy.get_config()).get_config() == {
            "relax_factor": 0.5, "beta": 0.8}
    with pytest.raises(ValueError, match="relax_factor"):
        MetaBalance(relax_factor=1.5)
    with pytest.raises(ValueError, match="beta"):
        MetaBalance(beta=1.0)

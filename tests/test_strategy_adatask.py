"""AdaTask (Yang et al., AAAI 2023): per-task Adam accumulators by hand for two steps."""
import math

import numpy as np
import pytest
import tensorflow as tf

from drgrad.model.strategies import get_strategy
from drgrad.model.strategies.adatask import AdaTask, adatask_moments, adatask_step

B1, B2, EPS, LR = 0.9, 0.999, 1e-8, 0.01


def test_two_steps_by_hand():
    steps = [(0.1, -2.0), (0.3, 1.0)]   # (task a, task b) gradient of one scalar parameter
    m = [tf.constant(0.0), tf.constant(0.0)]
    v = [tf.constant(0.0), tf.constant(0.0)]
    # Step 1: m_a = 0.01, v_a = 1e-5 -> m^ = 0.1, v^ = 0.01 -> +1; m_b = -0.2, v_b = 0.004 ->
    # m^ = -2, v^ = 4 -> -1. The tasks cancel: update 0 (Adam on the sum -1.9 would move by lr).
    m, v = adatask_moments([tf.constant(g) for g in steps[0]], m, v, B1, B2)
    np.testing.assert_allclose([float(x) for x in m], [0.01, -0.2], rtol=1e-6)
    np.testing.assert_allclose([float(x) for x in v], [1e-5, 0.004], rtol=1e-5)
    np.testing.assert_allclose(float(adatask_step(m, v, 1, LR, B1, B2, EPS)), 0.0, atol=1e-8)
    # Step 2: m_a = 0.9*0.01 + 0.1*0.3 = 0.039, v_a = 0.999e-5 + 0.001*0.09 = 9.9999e-5;
    #         m_b = -0.18 + 0.1 = -0.08,       v_b = 0.003996 + 0.001 = 0.004996.
    m, v = adatask_moments([tf.constant(g) for g in steps[1]], m, v, B1, B2)
    np.testing.assert_allclose([float(x) for x in m], [0.039, -0.08], rtol=1e-5)
    np.testing.assert_allclose([float(x) for x in v], [9.9999e-5, 0.004996], rtol=1e-4)
    c1, c2 = 1 - 0.9 ** 2, 1 - 0.999 ** 2
    expected = LR * ((0.039 / c1) / (math.sqrt(9.9999e-5 / c2) + EPS)
                     + (-0.08 / c1) / (math.sqrt(0.004996 / c2) + EPS))
    np.testing.assert_allclose(float(adatask_step(m, v, 2, LR, B1, B2, EPS)), expected,
                               rtol=1e-4)


def test_single_task_is_adam():
    var = tf.Variable([1.0, -1.0])
    opt = tf.keras.optimizers.Adam(LR, beta_1=B1, beta_2=B2, epsilon=EPS)
    m, v = [tf.zeros(2)], [tf.zeros(2)]
    ours = np.array([1.0, -1.0])
    for step, g in enumerate(([0.5, -0.2], [0.1, 0.3]), start=1):
        g = tf.constant(g)
        opt.apply_gradients([(g, var)])
        m, v = adatask_moments([g], m, v, B1, B2)
        ours = ours - adatask_step(m, v, step, LR, B1, B2, EPS).numpy()
    np.testing.assert_allclose(ours, var.numpy(), rtol=1e-5)


def test_config():
    strategy = get_strategy("adatask")
    assert isinstance(strategy, AdaTask) and strategy.applies_own_updates
    assert strategy.get_config()["beta_2"] == 0.999
    for bad in ({"learning_rate": -1.0}, {"beta_1": 1.0}, {"epsilon": 0.0}):
        with pytest.raises(ValueError):
            AdaTask(**bad)

"""SNR-Trans connections: sub-network outputs routed through L0-gated transformations.

Reference:
    Ma, J., Zhao, Z., Chen, J., Li, A., Hong, L., Chi, E. H. "SNR: Sub-Network Routing for
    Flexible Parameter Sharing in Multi-Task Learning." AAAI 2019.
    Louizos, C., Welling, M., Kingma, D. P. "Learning Sparse Neural Networks through L0
    Regularization." ICLR 2018 (the hard-concrete distribution).

"SNR-Trans": the ``j``-th upper input is ``v_j = sum_i z_ij W_ij u_i`` where ``u_i`` are the lower
sub-network outputs, ``W_ij`` a learned transformation and ``z_ij in [0, 1]`` a coding variable
drawn from a hard-concrete distribution with learned location ``log_alpha_ij``::

    s = sigmoid((log u - log(1 - u) + log_alpha) / beta),  u ~ U(0, 1)     (training)
    s = sigmoid(log_alpha)                                                 (inference)
    z = clip(s * (zeta - gamma) + gamma, 0, 1)

and the expected L0 norm ``sum sigmoid(log_alpha - beta * log(-gamma / zeta))`` is added to the
layer's losses times ``l0_weight``. Constants as in both papers: beta = 2/3, gamma = -0.1,
zeta = 1.1.
"""
import math

import tensorflow as tf

BETA = 2.0 / 3.0
GAMMA = -0.1
ZETA = 1.1


def hard_concrete_gate(log_alpha, training, beta=BETA, gamma=GAMMA, zeta=ZETA):
    """Samples (training) or takes the mean gate (inference) ``z in [0, 1]``, shape of log_alpha."""
    if training:
        u = tf.random.uniform(tf.shape(log_alpha), 1e-6, 1.0 - 1e-6, dtype=log_alpha.dtype)
        s = tf.sigmoid((tf.math.log(u) - tf.math.log(1.0 - u) + log_alpha) / beta)
    else:
        s = tf.sigmoid(log_alpha)
    return tf.clip_by_value(s * (zeta - gamma) + gamma, 0.0, 1.0)


def expected_l0(log_alpha, beta=BETA, gamma=GAMMA, zeta=ZETA):
    """Probability that each gate is non-zero, summed: the L0 penalty."""
    return tf.reduce_sum(tf.sigmoid(log_alpha - beta * math.log(-gamma / zeta)))


@tf.keras.utils.register_keras_serializable(package="drgrad")
class SNRTransConnection(tf.keras.layers.Layer):
    """``[B, M, U_in] -> [B, N, U_out]``: ``v_j = sum_i z_ij W_ij u_i`` with hard-concrete ``z``.

    Args:
        num_outputs: N, the number of upper sub-networks (>= 1).
        units: U_out (>= 1).
        l0_weight: weight of the expected-L0 penalty added with `add_loss` (>= 0).
        initial_log_alpha: initial gate location (3.0 starts with ~all connections open).
    """

    def __init__(self, num_outputs, units, l0_weight=1e-4, initial_log_alpha=3.0, **kwargs):
        super().__init__(**kwargs)
        for name, value in (("num_outputs", num_outputs), ("units", units)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if not float(l0_weight) >= 0.0:
            raise ValueError(f"l0_weight must be >= 0, got {l0_weight!r}")
        self.num_outputs = num_outputs
        self.units = units
        self.l0_weight = float(l0_weight)
        self.initial_log_alpha = float(initial_log_alpha)

    def build(self, input_shape):
        shape = tf.TensorShape(input_shape)
        if shape.rank != 3 or shape[1] is None or shape[2] is None:
            raise ValueError(f"SNRTransConnection expects [B, M, U] with known M, U; got {shape}")
        m, u = shape[1], shape[2]
        self.kernel = self.add_weight("kernel", shape=(m, self.num_outputs, u, self.units),
                                      initializer=tf.keras.initializers.GlorotUniform())
        self.bias = self.add_weight("bias", shape=(self.num_outputs, self.units),
                                    initializer="zeros")
        self.log_alpha = self.add_weight(
            "log_alpha", shape=(m, self.num_outputs),
            initializer=tf.keras.initializers.Constant(self.initial_log_alpha))
        super().build(input_shape)

    def call(self, inputs, training=None):
        z = hard_concrete_gate(self.log_alpha, bool(training))
        if self.l0_weight:
            self.add_loss(self.l0_weight * expected_l0(self.log_alpha))
        transformed = tf.einsum("bmu,mnuv->bmnv", inputs, self.kernel)
        return tf.einsum("bmnv,mn->bnv", transformed, z) + self.bias

    def get_config(self):
        config = super().get_config()
        config.update({"num_outputs": self.num_outputs, "units": self.units,
                       "l0_weight": self.l0_weight,
                       "initial_log_alpha": self.initial_log_alpha})
        return config

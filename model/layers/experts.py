"""Mixture-of-experts pieces: `Experts`, `SoftmaxGate` and `mix_experts`.

MMoE: Ma et al., "Modeling Task Relationships in Multi-task Learning with Multi-gate
Mixture-of-Experts", KDD 2018: ``f_k(x) = sum_i g_k(x)_i * e_i(x)``, ``g_k = softmax(W_k x)``.
"""
import tensorflow as tf

from drgrad.model.layers.mlp import MLP


@tf.keras.utils.register_keras_serializable(package="drgrad")
class Experts(tf.keras.layers.Layer):
    """``num_experts`` one-layer experts computed together: ``[B, D] -> [B, E, U]``.

    One kernel ``[D, E, U]`` (a single einsum) instead of E Dense layers: same function, one op.
    """

    def __init__(self, num_experts=8, units=64, activation="relu", **kwargs):
        super().__init__(**kwargs)
        for name, value in (("num_experts", num_experts), ("units", units)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        self.num_experts = num_experts
        self.units = units
        self.activation = tf.keras.activations.get(activation)

    def build(self, input_shape):
        dim = tf.TensorShape(input_shape)[-1]
        if dim is None:
            raise ValueError("Experts needs a known input width")
        self.kernel = self.add_weight(
            "kernel", shape=(dim, self.num_experts, self.units),
            initializer=tf.keras.initializers.GlorotUniform())
        self.bias = self.add_weight("bias", shape=(self.num_experts, self.units),
                                    initializer="zeros")
        super().build(input_shape)

    def call(self, x):
        return self.activation(tf.einsum("bd,deu->beu", x, self.kernel) + self.bias)

    def get_config(self):
        config = super().get_config()
        config.update({"num_experts": self.num_experts, "units": self.units,
                       "activation": tf.keras.activations.serialize(self.activation)})
        return config


@tf.keras.utils.register_keras_serializable(package="drgrad")
class SoftmaxGate(tf.keras.layers.Layer):
    """A gate ``softmax(W h(x) + b)`` over ``num_experts``: ``[B, D] -> [B, E]``.

    ``h`` is the identity (the linear gate of MMoE / PLE) or, with ``hidden_units``, an MLP
    with ``activation`` (the released DRGrad's gates: 128 mish, then the softmax layer).
    """

    def __init__(self, num_experts, hidden_units=(), activation="relu", **kwargs):
        super().__init__(**kwargs)
        if isinstance(num_experts, bool) or not isinstance(num_experts, int) or num_experts < 1:
            raise ValueError(f"num_experts must be a positive int, got {num_experts!r}")
        self.num_experts = num_experts
        self.hidden_units = tuple(hidden_units)
        self.activation = activation
        self.hidden = MLP(self.hidden_units, activation,
                          name="hidden") if self.hidden_units else None
        self.dense = tf.keras.layers.Dense(num_experts, name="dense")

    def build(self, input_shape):
        shape = tf.TensorShape(input_shape)
        if self.hidden is not None:
            self.hidden.build(shape)
            shape = shape[:-1].concatenate([self.hidden_units[-1]])
        self.dense.build(shape)
        super().build(input_shape)

    def call(self, x):
        if self.hidden is not None:
            x = self.hidden(x)
        return tf.nn.softmax(self.dense(x), axis=-1)

    def get_config(self):
        config = super().get_config()
        config.update({"num_experts": self.num_experts, "hidden_units": list(self.hidden_units),
                       "activation": self.activation})
        return config


def mix_experts(gate, experts):
    """``sum_e gate[b, e] * experts[b, e, :]``: ``[B, E], [B, E, U] -> [B, U]``."""
    return tf.einsum("be,beu->bu", gate, experts)

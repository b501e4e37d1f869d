"""Expert interaction for AC-MMoE: self-attention and convolution across the expert outputs.

Reference:
    Li, K., Xu, J. "AC-MMOE: A Multi-gate Mixture-of-experts Model Based on Attention and
    Convolution." Procedia Computer Science 222 (2023), 187-196 (INNS DLIA 2023).

MMoE's experts never see each other; AC-MMoE lets them interact before the gates mix them. This
layer takes the expert outputs ``E: [B, n, U]`` and returns ``[B, n, U]``:

    A = E + MultiHeadSelfAttention(E)              (experts attend to experts)
    C = relu(Conv1D over the expert axis (A))      (local patterns between neighbouring experts)
    out = LayerNorm(A + C)

The paper's text was not available to us; this follows its title and abstract (attention and
convolution applied to the experts of MMoE, as the DRGrad paper summarises it) with standard
residual/normalization choices, documented here so they can be checked against the paper.
"""
import tensorflow as tf


@tf.keras.utils.register_keras_serializable(package="drgrad")
class ExpertInteraction(tf.keras.layers.Layer):
    """Self-attention + 1-D convolution over the expert axis: ``[B, n, U] -> [B, n, U]``.

    Args:
        num_heads: attention heads (>= 1).
        kernel_size: convolution width over neighbouring experts (odd, >= 1).
    """

    def __init__(self, num_heads=2, kernel_size=3, **kwargs):
        super().__init__(**kwargs)
        for name, value in (("num_heads", num_heads), ("kernel_size", kernel_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd (same-size output), got {kernel_size}")
        self.num_heads = num_heads
        self.kernel_size = kernel_size
        self.attention = None
        self.conv = None
        self.norm = tf.keras.layers.LayerNormalization(name="norm")

    def build(self, input_shape):
        shape = tf.TensorShape(input_shape)
        if shape.rank != 3 or shape[-1] is None:
            raise ValueError(f"ExpertInteraction expects [B, n, U] with known U; got {shape}")
        units = shape[-1]
        key_dim = max(1, units // self.num_heads)
        self.attention = tf.keras.layers.MultiHeadAttention(self.num_heads, key_dim,
                                                            name="attention")
        self.attention._build_from_signature(shape, shape)  # pylint: disable=protected-access
        self.conv = tf.keras.layers.Conv1D(units, self.kernel_size, padding="same",
                                           activation="relu", name="conv")
        self.conv.build(shape)
        self.norm.build(shape)
        super().build(input_shape)

    def call(self, experts, training=None):
        attended = experts + self.attention(experts, experts, training=training)
        return self.norm(attended + self.conv(attended))

    def get_config(self):
        config = super().get_config()
        config.update({"num_heads": self.num_heads, "kernel_size": self.kernel_size})
        return config

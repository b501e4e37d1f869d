"""The personalized gate network of DRGrad (a PPNet-like gate).

Liu et al., "Direct Routing Gradient (DRGrad)", AAAI 2025, §Personalized Gate Network:
``v_s = 2 * v_s ⊗ sigmoid(v_PPNet * W_PPNet)``, with ``v_PPNet`` the embeddings of
personalization features (user / item / author ids). PPNet: Chang et al., "PEPNet:
Parameter and Embedding Personalized Network", KDD 2023.

Inputs of ``v_PPNet``: the backbone passes the *shared* embeddings of the personalization
features under `tf.stop_gradient`, as PEPNet does, so the gate reads personalization without
pulling the shared id embeddings towards it (they still learn from the towers' losses). The
kernel starts at zero, so at initialization the gate is exactly the identity
(2 * sigmoid(0) = 1) and adding PPNet does not perturb the starting model.
"""
import tensorflow as tf


@tf.keras.utils.register_keras_serializable(package="drgrad")
class PersonalizedGate(tf.keras.layers.Layer):
    """``call([v, v_ppnet]) = 2 * v * sigmoid(Dense(dim v)(v_ppnet))``."""

    def __init__(self, kernel_initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        self.kernel_initializer = tf.keras.initializers.get(kernel_initializer)
        self.dense = None

    def build(self, input_shape):
        if not isinstance(input_shape, (list, tuple)) or len(input_shape) != 2:
            raise ValueError("PersonalizedGate takes [v, v_ppnet]")
        v_shape, p_shape = (tf.TensorShape(s) for s in input_shape)
        if v_shape[-1] is None or p_shape[-1] is None:
            raise ValueError("PersonalizedGate needs known input widths")
        self.dense = tf.keras.layers.Dense(v_shape[-1], kernel_initializer=self.kernel_initializer,
                                           name="dense")
        self.dense.build(p_shape)
        super().build(input_shape)

    def call(self, inputs):
        v, v_ppnet = inputs
        return 2.0 * v * tf.sigmoid(self.dense(v_ppnet))

    def get_config(self):
        config = super().get_config()
        config["kernel_initializer"] = tf.keras.initializers.serialize(self.kernel_initializer)
        return config

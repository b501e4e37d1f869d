"""The primary-task mix of DRGrad (Liu et al., AAAI 2025, Eq. 8): ``T1 = μ′·T1′ + μ″·T1″``.

μ = (μ′, μ″) is a non-trainable variable: the updater (model/strategies/drgrad.py) writes it
after each applied step (Alg. 1 line 7) and `call` reads it, so it is checkpointed, exported
and served with the weights. We mix at the *logit* level: the primary probability is
``sigmoid(μ′·z′ + μ″·z″)`` (z = tower logits), which keeps the BCE loss on logits (numerically
stable) and makes T1′ and T1″ additive evidence; the paper does not say which level it mixes.
"""
import tensorflow as tf


@tf.keras.utils.register_keras_serializable(package="drgrad")
class TowerMixer(tf.keras.layers.Layer):
    """``call(z_dedicated, z_shared) = mu[0] * z_dedicated + mu[1] * z_shared``."""

    def __init__(self, initial_mu=(0.5, 0.5), **kwargs):
        super().__init__(**kwargs)
        initial_mu = tuple(float(m) for m in initial_mu)
        if len(initial_mu) != 2 or min(initial_mu) < 0:
            raise ValueError(f"initial_mu must be two non-negative numbers, got {initial_mu!r}")
        self.initial_mu = initial_mu

    def build(self, input_shape=None):
        # Written by the updater with the same value on every replica (the all-reduced
        # gradients decide it): ONLY_FIRST_REPLICA says so under tf.distribute.
        self.mu = self.add_weight("mu", shape=(2,), trainable=False,
                                  initializer=tf.keras.initializers.Constant(self.initial_mu),
                                  aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
        super().build(input_shape)

    def call(self, z_dedicated, z_shared):
        return self.mu[0] * z_dedicated + self.mu[1] * z_shared

    def get_config(self):
        config = super().get_config()
        config["initial_mu"] = list(self.initial_mu)
        return config

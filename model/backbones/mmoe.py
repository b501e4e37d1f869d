"""MMoE: Ma et al., "Modeling Task Relationships in Multi-task Learning with Multi-gate
Mixture-of-Experts", KDD 2018. Defaults (8 experts x 64, towers 32 -> 1, embeddings 8) are
the project's census reference (see README, calibration)."""
import tensorflow as tf

from drgrad.model.backbones import register
from drgrad.model.backbones.base import Backbone
from drgrad.model.layers import Experts, FeatureEmbedding, SoftmaxGate, Tower, mix_experts


@register("mmoe")
@tf.keras.utils.register_keras_serializable(package="drgrad")
class MMoE(Backbone):
    """Embeddings -> shared experts -> one softmax gate per task -> one tower per task."""

    def __init__(self, feature_config, tasks, num_experts=8, expert_units=64, tower_units=(32,),
                 **kwargs):
        super().__init__(feature_config, tasks, **kwargs)
        self.num_experts = num_experts
        self.expert_units = expert_units
        self.tower_units = tuple(tower_units)
        self.embedding = FeatureEmbedding(self.feature_config, name="embedding")
        self.experts = Experts(num_experts, expert_units, name="experts")
        self.gates = {t: SoftmaxGate(num_experts, name=f"gate_{t}") for t in self.tasks}
        self.towers = {t: Tower(self.tower_units, name=f"tower_{t}") for t in self.tasks}

    def call(self, features, training=None):
        x = self.embedding(features)
        experts = self._expert_outputs(x, training)
        return {t: self.towers[t](mix_experts(self.gates[t](x), experts), training=training)
                for t in self.tasks}

    def _expert_outputs(self, x, training):
        """``[batch, num_experts, expert_units]``; subclasses may transform the experts here."""
        del training  # the experts have no training-only behaviour
        return self.experts(x)

    def _group_layers(self):
        return {"embeddings": [self.embedding], "experts": [self.experts],
                "gates": list(self.gates.values())}

    def _tower_layers(self):
        return dict(self.towers)

    def get_config(self):
        config = super().get_config()
        config.update({"num_experts": self.num_experts, "expert_units": self.expert_units,
                       "tower_units": list(self.tower_units)})
        return config

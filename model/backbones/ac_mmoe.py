"""AC-MMoE: Li, K., Xu, J. "AC-MMOE: A Multi-gate Mixture-of-experts Model Based on Attention and
Convolution." Procedia Computer Science 222 (2023), 187-196.

MMoE (Ma et al., KDD 2018) whose expert outputs interact through self-attention and a convolution
across experts (`model.layers.ac_mmoe_interaction.ExpertInteraction`) before the per-task softmax
gates mix them. Defaults keep the MMoE reference's capacity (8 experts x 64, towers 32 -> 1).

Variable groups: ``experts`` (experts and the interaction layer: both are shared by all tasks),
``gates`` (one per task), towers per task, ``embeddings``.
"""
import tensorflow as tf

from model.backbones import register
from model.backbones.base import Backbone
from model.layers import Experts, FeatureEmbedding, SoftmaxGate, Tower, mix_experts
from model.layers.ac_mmoe_interaction import ExpertInteraction


@register("ac_mmoe")
@tf.keras.utils.register_keras_serializable(package="drgrad")
class ACMMoE(Backbone):
    """Embeddings -> experts -> attention + convolution across experts -> gates -> towers.

    Args:
        num_experts: experts (>= 1).
        expert_units: width of each expert.
        num_heads: attention heads over the experts.
        kernel_size: convolution width over neighbouring experts (odd).
        tower_units: hidden widths of each task tower.
    """

    def __init__(self, feature_config, tasks, num_experts=8, expert_units=64, num_heads=2,
                 kernel_size=3, tower_units=(32,), **kwargs):
        super().__init__(feature_config, tasks, **kwargs)
        self.num_experts = num_experts
        self.expert_units = expert_units
        self.num_heads = num_heads
        self.kernel_size = kernel_size
        self.tower_units = tuple(tower_units)
        self.embedding = FeatureEmbedding(self.feature_config, name="embedding")
        self.experts = Experts(num_experts, expert_units, name="experts")
        self.interaction = ExpertInteraction(num_heads, kernel_size, name="expert_interaction")
        self.gates = {t: SoftmaxGate(num_experts, name=f"gate_{t}") for t in self.tasks}
        self.towers = {t: Tower(self.tower_units, name=f"tower_{t}") for t in self.tasks}

    def call(self, features, training=None):
        x = self.embedding(features)
        experts = self.interaction(self.experts(x), training=training)
        return {t: self.towers[t](mix_experts(self.gates[t](x), experts), training=training)
                for t in self.tasks}

    def _group_layers(self):
        return {"embeddings": [self.embedding], "experts": [self.experts, self.interaction],
                "gates": list(self.gates.values())}

    def _tower_layers(self):
        return dict(self.towers)

    def get_config(self):
        config = super().get_config()
        config.update({"num_experts": self.num_experts, "expert_units": self.expert_units,
                       "num_heads": self.num_heads, "kernel_size": self.kernel_size,
                       "tower_units": list(self.tower_units)})
        return config

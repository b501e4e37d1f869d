"""AC-MMoE: Li, K., Xu, J. "AC-MMOE: A Multi-gate Mixture-of-experts Model Based on Attention and
Convolution." Procedia Computer Science 222 (2023), 187-196.

MMoE (Ma et al., KDD 2018) whose expert outputs interact through self-attention and a convolution
across experts (`model.layers.ac_mmoe_interaction.ExpertInteraction`) before the per-task softmax
gates mix them. Defaults keep the MMoE reference's capacity (8 experts x 64, towers 32 -> 1).

Variable groups: ``experts`` (experts and the interaction layer: both are shared by all tasks),
``gates`` (one per task), towers per task, ``embeddings``.
"""
import tensorflow as tf

from drgrad.model.backbones import register
from drgrad.model.backbones.mmoe import MMoE
from drgrad.model.layers.ac_mmoe_interaction import ExpertInteraction


@register("ac_mmoe")
@tf.keras.utils.register_keras_serializable(package="drgrad")
class ACMMoE(MMoE):
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
        super().__init__(feature_config, tasks, num_experts=num_experts,
                         expert_units=expert_units, tower_units=tower_units, **kwargs)
        self.num_heads = num_heads
        self.kernel_size = kernel_size
        self.interaction = ExpertInteraction(num_heads, kernel_size, name="expert_interaction")

    def _expert_outputs(self, x, training):
        return self.interaction(self.experts(x), training=training)

    def _group_layers(self):
        groups = super()._group_layers()
        groups["experts"] = groups["experts"] + [self.interaction]
        return groups

    def get_config(self):
        config = super().get_config()
        config.update({"num_heads": self.num_heads, "kernel_size": self.kernel_size})
        return config

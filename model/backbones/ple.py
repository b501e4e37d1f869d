"""PLE: Tang et al., "Progressive Layered Extraction (PLE): A Novel Multi-Task Learning (MTL)
Model for Personalized Recommendations", RecSys 2020. Defaults keep 8 experts in all for two
tasks (2 specific per task + 4 shared), matching the MMoE reference's capacity."""
import tensorflow as tf

from drgrad.model.backbones import register
from drgrad.model.backbones.base import Backbone
from drgrad.model.layers import CGC, FeatureEmbedding, Tower


@register("ple")
@tf.keras.utils.register_keras_serializable(package="drgrad")
class PLE(Backbone):
    """Embeddings -> ``num_levels`` CGC extraction layers -> one tower per task."""

    def __init__(self, feature_config, tasks, num_levels=1, specific_experts=2, shared_experts=4,
                 expert_units=64, tower_units=(32,), **kwargs):
        super().__init__(feature_config, tasks, **kwargs)
        if isinstance(num_levels, bool) or not isinstance(num_levels, int) or num_levels < 1:
            raise ValueError(f"num_levels must be a positive int, got {num_levels!r}")
        self.num_levels = num_levels
        self.specific_experts = specific_experts
        self.shared_experts = shared_experts
        self.expert_units = expert_units
        self.tower_units = tuple(tower_units)
        self.embedding = FeatureEmbedding(self.feature_config, name="embedding")
        self.levels = [CGC(len(self.tasks), specific_experts, shared_experts, expert_units,
                           output_shared=level < num_levels - 1, name=f"cgc_{level}")
                       for level in range(num_levels)]
        self.towers = {t: Tower(self.tower_units, name=f"tower_{t}") for t in self.tasks}

    def call(self, features, training=None):
        x = self.embedding(features)
        inputs = [x] * len(self.tasks) + [x]
        for level in self.levels:
            inputs = level(inputs)
        return {t: self.towers[t](inputs[k], training=training) for k, t in enumerate(self.tasks)}

    def _group_layers(self):
        experts = [e for level in self.levels for e in level.task_experts + [level.common_experts]]
        gates = [g for level in self.levels for g in level.task_gates + (
            [level.shared_gate] if level.shared_gate is not None else [])]
        return {"embeddings": [self.embedding], "experts": experts, "gates": gates}

    def _tower_layers(self):
        return dict(self.towers)

    def get_config(self):
        config = super().get_config()
        config.update({"num_levels": self.num_levels, "specific_experts": self.specific_experts,
                       "shared_experts": self.shared_experts, "expert_units": self.expert_units,
                       "tower_units": list(self.tower_units)})
        return config

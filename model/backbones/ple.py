"""PLE: Tang et al., "Progressive Layered Extraction (PLE): A Novel Multi-Task Learning (MTL)
Model for Personalized Recommendations", RecSys 2020. Defaults keep 8 experts in all for two
tasks (2 specific per task + 4 shared), matching the MMoE reference's capacity.

``cgc2`` is a named configuration of PLE: the architecture of the authors' released DRGrad
(logwhistle/drgrad_for_aaai25; docs/RESULTS.md, "DRGrad as released"): one-hot inputs each
through its own MLP (`OneHotEncoder`), two CGC levels of one shared and one task expert
(128 units, mish), gates 128 mish -> softmax, towers 64 relu -> 1.
"""
import tensorflow as tf

from drgrad.model.backbones import register
from drgrad.model.backbones.base import Backbone
from drgrad.model.layers import CGC, FeatureEmbedding, OneHotEncoder, Tower

INPUT_ENCODERS = ("embedding", "one_hot")


@register("ple")
@tf.keras.utils.register_keras_serializable(package="drgrad")
class PLE(Backbone):
    """Inputs -> ``num_levels`` CGC extraction layers -> one tower per task.

    Args (beyond the counts and widths):
        activation: Keras activation name of the experts and gate hidden layers.
        gate_units: hidden layers of every gate (empty: linear softmax gates).
        input_encoder: "embedding" (`FeatureEmbedding`: tables, ``embeddings`` group) or
            "one_hot" (`OneHotEncoder`, dense: ``bottom`` group).
    """

    def __init__(self, feature_config, tasks, num_levels=1, specific_experts=2, shared_experts=4,
                 expert_units=64, tower_units=(32,), activation="relu", gate_units=(),
                 input_encoder="embedding", **kwargs):
        super().__init__(feature_config, tasks, **kwargs)
        if isinstance(num_levels, bool) or not isinstance(num_levels, int) or num_levels < 1:
            raise ValueError(f"num_levels must be a positive int, got {num_levels!r}")
        if input_encoder not in INPUT_ENCODERS:
            raise ValueError(f"input_encoder must be one of {INPUT_ENCODERS}, got "
                             f"{input_encoder!r}")
        self.num_levels = num_levels
        self.specific_experts = specific_experts
        self.shared_experts = shared_experts
        self.expert_units = expert_units
        self.tower_units = tuple(tower_units)
        self.activation = activation
        self.gate_units = tuple(gate_units)
        self.input_encoder = input_encoder
        if input_encoder == "embedding":
            self.embedding = FeatureEmbedding(self.feature_config, name="embedding")
        else:
            self.embedding = OneHotEncoder(self.feature_config, activation=activation,
                                           name="one_hot")
        self.levels = [CGC(len(self.tasks), specific_experts, shared_experts, expert_units,
                           output_shared=level < num_levels - 1, activation=activation,
                           gate_units=self.gate_units, name=f"cgc_{level}")
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
        inputs = "embeddings" if self.input_encoder == "embedding" else "bottom"
        return {inputs: [self.embedding], "experts": experts, "gates": gates}

    def _tower_layers(self):
        return dict(self.towers)

    def get_config(self):
        config = super().get_config()
        config.update({"num_levels": self.num_levels, "specific_experts": self.specific_experts,
                       "shared_experts": self.shared_experts, "expert_units": self.expert_units,
                       "tower_units": list(self.tower_units), "activation": self.activation,
                       "gate_units": list(self.gate_units), "input_encoder": self.input_encoder})
        return config


#: The released DRGrad's architecture as PLE arguments (any of them can still be overridden).
CGC2_DEFAULTS = {"num_levels": 2, "specific_experts": 1, "shared_experts": 1,
                 "expert_units": 128, "tower_units": (64,), "activation": "mish",
                 "gate_units": (128,), "input_encoder": "one_hot"}


@register("cgc2")
@tf.keras.utils.register_keras_serializable(package="drgrad")
class CGC2(PLE):
    """PLE with `CGC2_DEFAULTS`: the released DRGrad's two-level CGC (module docstring)."""

    def __init__(self, feature_config, tasks, **kwargs):
        super().__init__(feature_config, tasks, **{**CGC2_DEFAULTS, **kwargs})

"""Split-MMoE, the backbone of DRGrad (Liu et al., AAAI 2025, Fig. 1(b) and Fig. 2).

The primary task (tasks[0]) is split in two towers of identical shape:

* T1′ reads ``v1``, the output of a *dedicated* gate over the shared experts;
* T1″ and every auxiliary tower T2..Tn read ``vs``, the output of ONE *shared* gate
  (Fig. 2: "T1″ shares the same input tensor, named vs, with T2"); with personalization
  features configured, vs first goes through the personalized gate (PPNet):
  ``vs = 2 * vs ⊗ sigmoid(W v_PPNet)``.

``call(features, training, return_representations=True)`` also returns ``{"v1": v1, "vs": vs}``
(both ``[B, expert_units]``; vs after PPNet) for DRGrad's upstream routing (Table 1's gradients
"for v1" and "for vs"). Every loss gradient reaching the embeddings, experts, gates and PPNet
flows through v1 and vs (the PPNet's personalization input is under `stop_gradient`).

So there are 2 gates whatever the number of tasks (the paper's reading of Fig. 2; one gate
per auxiliary task would be the MMoE-like alternative, not implemented). The model mixes the
two primary logits with the updater's μ (Eq. 8, `model.layers.TowerMixer`).
"""
import tensorflow as tf

from drgrad.model.backbones import register
from drgrad.model.backbones.base import Backbone, dedicated_output, shared_output
from drgrad.model.layers import Experts, FeatureEmbedding, PersonalizedGate, SoftmaxGate, Tower
from drgrad.model.layers import mix_experts


@register("split_mmoe")
@tf.keras.utils.register_keras_serializable(package="drgrad")
class SplitMMoE(Backbone):
    """Experts; gate_dedicated -> v1 -> T1′; gate_shared (-> PPNet) -> vs -> T1″, T2..Tn."""

    split_primary = True
    representation_names = ("v1", "vs")
    representation_groups = ("embeddings", "experts", "gates", "ppnet")

    def __init__(self, feature_config, tasks, num_experts=8, expert_units=64, tower_units=(32,),
                 ppnet=None, **kwargs):
        super().__init__(feature_config, tasks, **kwargs)
        self.num_experts = num_experts
        self.expert_units = expert_units
        self.tower_units = tuple(tower_units)
        personalization = self.feature_config.personalization
        if ppnet is None:
            ppnet = bool(personalization)
        if ppnet and not personalization:
            raise ValueError("ppnet=True needs personalization features in the FeatureConfig")
        self.use_ppnet = bool(ppnet)
        self.embedding = FeatureEmbedding(self.feature_config, name="embedding")
        self.experts = Experts(num_experts, expert_units, name="experts")
        self.gate_dedicated = SoftmaxGate(num_experts, name="gate_dedicated")
        self.gate_shared = SoftmaxGate(num_experts, name="gate_shared")
        self.ppnet = PersonalizedGate(name="ppnet") if self.use_ppnet else None
        t1 = self.primary
        self.towers = {dedicated_output(t1): Tower(self.tower_units, name="tower_t1_dedicated"),
                       shared_output(t1): Tower(self.tower_units, name="tower_t1_shared")}
        for t in self.tasks[1:]:
            self.towers[t] = Tower(self.tower_units, name=f"tower_{t}")

    def call(self, features, training=None, return_representations=False):
        embeddings = self.embedding.lookup(features)
        x = self.embedding.concat(embeddings, features)
        experts = self.experts(x)
        v1 = mix_experts(self.gate_dedicated(x), experts)
        vs = mix_experts(self.gate_shared(x), experts)
        if self.ppnet is not None:
            v_ppnet = tf.stop_gradient(tf.concat(
                [embeddings[name] for name in self.feature_config.personalization], axis=-1))
            vs = self.ppnet([vs, v_ppnet])
        t1 = self.primary
        out = {dedicated_output(t1): self.towers[dedicated_output(t1)](v1, training=training),
               shared_output(t1): self.towers[shared_output(t1)](vs, training=training)}
        for t in self.tasks[1:]:
            out[t] = self.towers[t](vs, training=training)
        if return_representations:
            return out, {"v1": v1, "vs": vs}
        return out

    def _group_layers(self):
        return {"embeddings": [self.embedding], "experts": [self.experts],
                "gates": [self.gate_dedicated, self.gate_shared],
                "ppnet": [self.ppnet] if self.ppnet is not None else []}

    def _tower_layers(self):
        return dict(self.towers)

    def get_config(self):
        config = super().get_config()
        config.update({"num_experts": self.num_experts, "expert_units": self.expert_units,
                       "tower_units": list(self.tower_units), "ppnet": self.use_ppnet})
        return config

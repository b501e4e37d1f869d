"""SNR (sub-network routing), "trans" variant: Ma, J., Zhao, Z., Chen, J., Li, A., Hong, L.,
Chi, E. H. "SNR: Sub-Network Routing for Flexible Parameter Sharing in Multi-Task Learning."
AAAI 2019.

Embeddings -> ``num_subnetworks`` lower sub-networks (one-layer experts) -> SNR-Trans
connections (a transformation per lower/upper pair, each gated by a learned hard-concrete coding
variable, L0-penalized; see `model.layers.snr_connection`) -> one upper sub-network per task ->
that task's tower. Defaults keep the MMoE reference's capacity (8 x 64 lower units).

Variable groups: ``experts`` (the lower sub-networks) and ``gates`` (the routing: transformations
and coding-variable locations; the ``j``-th slice is used by task ``j`` only, so its gradient from
any other task is zero), both in ``shared``; towers per task; ``embeddings``.
"""
import tensorflow as tf

from drgrad.model.backbones import register
from drgrad.model.backbones.base import Backbone
from drgrad.model.layers import Experts, FeatureEmbedding, Tower
from drgrad.model.layers.snr_connection import SNRTransConnection


@register("snr")
@tf.keras.utils.register_keras_serializable(package="drgrad")
class SNR(Backbone):
    """SNR-Trans with one routing layer.

    Args:
        num_subnetworks: lower sub-networks (>= 1).
        subnetwork_units: width of each lower sub-network.
        upper_units: width of each upper (per-task) sub-network.
        l0_weight: weight of the expected-L0 penalty on the coding variables.
        tower_units: hidden widths of each task tower.
    """

    def __init__(self, feature_config, tasks, num_subnetworks=8, subnetwork_units=64,
                 upper_units=64, l0_weight=1e-4, tower_units=(32,), **kwargs):
        super().__init__(feature_config, tasks, **kwargs)
        self.num_subnetworks = num_subnetworks
        self.subnetwork_units = subnetwork_units
        self.upper_units = upper_units
        self.l0_weight = float(l0_weight)
        self.tower_units = tuple(tower_units)
        self.embedding = FeatureEmbedding(self.feature_config, name="embedding")
        self.lower = Experts(num_subnetworks, subnetwork_units, name="lower_subnetworks")
        self.routing = SNRTransConnection(len(self.tasks), upper_units, l0_weight=l0_weight,
                                          name="snr_trans")
        self.towers = {t: Tower(self.tower_units, name=f"tower_{t}") for t in self.tasks}

    def call(self, features, training=None):
        lower = self.lower(self.embedding(features))
        upper = tf.nn.relu(self.routing(lower, training=training))
        return {t: self.towers[t](upper[:, k], training=training)
                for k, t in enumerate(self.tasks)}

    def _group_layers(self):
        return {"embeddings": [self.embedding], "experts": [self.lower], "gates": [self.routing]}

    def _tower_layers(self):
        return dict(self.towers)

    def get_config(self):
        config = super().get_config()
        config.update({"num_subnetworks": self.num_subnetworks,
                       "subnetwork_units": self.subnetwork_units,
                       "upper_units": self.upper_units, "l0_weight": self.l0_weight,
                       "tower_units": list(self.tower_units)})
        return config

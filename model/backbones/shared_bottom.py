"""Shared-bottom multi-task network (Caruana, "Multitask Learning", 1997)."""
import tensorflow as tf

from drgrad.model.backbones import register
from drgrad.model.backbones.base import Backbone
from drgrad.model.layers import MLP, FeatureEmbedding, Tower


@register("shared_bottom")
@tf.keras.utils.register_keras_serializable(package="drgrad")
class SharedBottom(Backbone):
    """Embeddings -> one shared MLP -> one tower per task."""

    def __init__(self, feature_config, tasks, bottom_units=(128, 64), tower_units=(32,),
                 **kwargs):
        super().__init__(feature_config, tasks, **kwargs)
        self.bottom_units = tuple(bottom_units)
        self.tower_units = tuple(tower_units)
        self.embedding = FeatureEmbedding(self.feature_config, name="embedding")
        self.bottom = MLP(self.bottom_units, name="bottom")
        self.towers = {t: Tower(self.tower_units, name=f"tower_{t}") for t in self.tasks}

    def call(self, features, training=None):
        h = self.bottom(self.embedding(features), training=training)
        return {t: self.towers[t](h, training=training) for t in self.tasks}

    def _group_layers(self):
        return {"embeddings": [self.embedding], "bottom": [self.bottom]}

    def _tower_layers(self):
        return dict(self.towers)

    def get_config(self):
        config = super().get_config()
        config.update({"bottom_units": list(self.bottom_units),
                       "tower_units": list(self.tower_units)})
        return config

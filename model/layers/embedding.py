"""Per-feature embeddings for categorical ids, concatenated with numeric features."""
import tensorflow as tf

from drgrad.model.config import check_feature_config


def known_ids(ids, vocab_size):
    """``[B]`` int64 ids with those outside ``[0, vocab_size)`` mapped to 0 (the unknown id)."""
    ids = tf.reshape(tf.cast(ids, tf.int64), [-1])
    return tf.where((ids >= 0) & (ids < vocab_size), ids, tf.zeros_like(ids))


@tf.keras.utils.register_keras_serializable(package="drgrad")
class FeatureEmbedding(tf.keras.layers.Layer):
    """One `tf.keras.layers.Embedding` per categorical feature (width ``embedding_dim``).

    `call(features)` returns the model input vector ``[B, n_cat * dim + n_numeric]``:
    embeddings in `feature_config.categorical` order, then numeric features. `lookup` returns
    the per-feature embeddings (used for the PPNet input). Ids outside ``[0, vocab)`` map to 0
    (the unknown id), so a bad id at serving time cannot crash a lookup. Gradients of the tables
    are `tf.IndexedSlices` (rows touched by the batch only): nothing here densifies them.
    """

    def __init__(self, feature_config, **kwargs):
        super().__init__(**kwargs)
        feature_config = check_feature_config(feature_config)
        self.feature_config = feature_config
        self.tables = {
            name: tf.keras.layers.Embedding(size, feature_config.embedding_dim,
                                            name=f"embedding_{name}")
            for name, size in feature_config.categorical.items()}

    @property
    def output_dim(self):
        fc = self.feature_config
        return len(fc.categorical) * fc.embedding_dim + len(fc.numeric)

    def build(self, input_shape=None):
        for table in self.tables.values():
            table.build((None,))
        super().build(input_shape)

    def _check_inputs(self, features):
        missing = [n for n in self.feature_config.feature_names if n not in features]
        if missing:
            raise ValueError(f"missing model inputs: {missing}")

    def lookup(self, features):
        """``{categorical name: [B, dim]}``."""
        self._check_inputs(features)
        return {name: table(known_ids(features[name], self.feature_config.categorical[name]))
                for name, table in self.tables.items()}

    def concat(self, embeddings, features):
        parts = [embeddings[name] for name in self.tables]
        parts += [tf.reshape(tf.cast(features[name], tf.float32), [-1, 1])
                  for name in self.feature_config.numeric]
        return tf.concat(parts, axis=-1)

    def call(self, features):
        return self.concat(self.lookup(features), features)

    def get_config(self):
        config = super().get_config()
        config["feature_config"] = self.feature_config.to_dict()
        return config

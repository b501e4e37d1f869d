"""The input block of the authors' released DRGrad (logwhistle/drgrad_for_aaai25, census):
one-hot columns, each through its own small MLP, instead of embedding tables."""
import tensorflow as tf

from drgrad.model.config import check_feature_config
from drgrad.model.layers.embedding import known_ids
from drgrad.model.layers.mlp import MLP


@tf.keras.utils.register_keras_serializable(package="drgrad")
class OneHotEncoder(tf.keras.layers.Layer):
    """``call(features) -> [B, output_units[-1]]``.

    * every categorical column: one-hot of width = its vocabulary size ``v`` (ids outside
      ``[0, v)`` count as the unknown id 0), then its own MLP ``max(1, v // 2) -> v``;
    * the concatenated columns -> ``sparse_units`` (64 -> 128);
    * the numeric columns -> ``numeric_units`` (32);
    * both concatenated -> ``output_units`` (128).

    Every Dense layer is followed by ``activation`` (mish in the released code), so its
    gradients are dense: the backbone puts this layer in the ``bottom`` group, not in
    ``embeddings``.
    """

    def __init__(self, feature_config, sparse_units=(64, 128), numeric_units=(32,),
                 output_units=(128,), activation="mish", **kwargs):
        super().__init__(**kwargs)
        feature_config = check_feature_config(feature_config)
        self.feature_config = feature_config
        self.sparse_units, self.numeric_units, self.output_units = (
            tuple(sparse_units), tuple(numeric_units), tuple(output_units))
        self.activation = activation
        categorical = feature_config.categorical
        self.column_mlps = {name: MLP((max(1, size // 2), size), activation,
                                      name=f"one_hot_{name}")
                            for name, size in categorical.items()}
        self.sparse_mlp = MLP(self.sparse_units, activation,
                              name="sparse") if categorical else None
        self.numeric_mlp = MLP(self.numeric_units, activation,
                               name="numeric") if feature_config.numeric else None
        self.output_mlp = MLP(self.output_units, activation, name="output")

    @property
    def output_dim(self):
        return self.output_mlp.units[-1]

    def build(self, input_shape=None):
        categorical = self.feature_config.categorical
        for name, mlp in self.column_mlps.items():
            mlp.build((None, categorical[name]))
        width = 0
        for block, block_width in ((self.sparse_mlp, sum(categorical.values())),
                                   (self.numeric_mlp, len(self.feature_config.numeric))):
            if block is not None:
                block.build((None, block_width))
                width += block.units[-1]
        self.output_mlp.build((None, width))
        super().build(input_shape)

    def call(self, features):
        missing = [n for n in self.feature_config.feature_names if n not in features]
        if missing:
            raise ValueError(f"missing model inputs: {missing}")
        parts = []
        if self.sparse_mlp is not None:
            columns = [mlp(tf.one_hot(known_ids(features[name], size), size))
                       for (name, size), mlp in zip(self.feature_config.categorical.items(),
                                                    self.column_mlps.values())]
            parts.append(self.sparse_mlp(tf.concat(columns, axis=-1)))
        if self.numeric_mlp is not None:
            numeric = tf.stack([tf.cast(tf.reshape(features[name], [-1]), tf.float32)
                                for name in self.feature_config.numeric], axis=-1)
            parts.append(self.numeric_mlp(numeric))
        return self.output_mlp(tf.concat(parts, axis=-1))

    def get_config(self):
        config = super().get_config()
        config.update({"feature_config": self.feature_config.to_dict(),
                       "sparse_units": list(self.sparse_units),
                       "numeric_units": list(self.numeric_units),
                       "output_units": list(self.output_units), "activation": self.activation})
        return config

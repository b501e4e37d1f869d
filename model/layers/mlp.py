"""Multi-layer perceptrons: `MLP` (hidden stack) and `Tower` (MLP -> one logit)."""
import tensorflow as tf


def _check_units(units, what):
    if isinstance(units, int):
        units = (units,)
    units = tuple(units)
    for u in units:
        if isinstance(u, bool) or not isinstance(u, int) or u < 1:
            raise ValueError(f"{what} must be positive ints, got {list(units)}")
    return units


@tf.keras.utils.register_keras_serializable(package="drgrad")
class MLP(tf.keras.layers.Layer):
    """A stack of Dense layers with one activation (the shared bottom / tower body)."""

    def __init__(self, units=(128, 64), activation="relu", dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        self.units = _check_units(units, "MLP units")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        self.activation = tf.keras.activations.get(activation)
        self.dropout = float(dropout)
        self.dense_layers = [tf.keras.layers.Dense(u, activation=self.activation,
                                                   name=f"dense_{i}")
                             for i, u in enumerate(self.units)]
        self.dropout_layers = [tf.keras.layers.Dropout(self.dropout) for _ in self.units] if (
            self.dropout) else []

    def build(self, input_shape):
        shape = tf.TensorShape(input_shape)
        for layer in self.dense_layers:
            layer.build(shape)
            shape = layer.compute_output_shape(shape)
        super().build(input_shape)

    def call(self, x, training=None):
        for i, layer in enumerate(self.dense_layers):
            x = layer(x)
            if self.dropout_layers:
                x = self.dropout_layers[i](x, training=training)
        return x

    def get_config(self):
        config = super().get_config()
        config.update({"units": list(self.units),
                       "activation": tf.keras.activations.serialize(self.activation),
                       "dropout": self.dropout})
        return config


@tf.keras.utils.register_keras_serializable(package="drgrad")
class Tower(tf.keras.layers.Layer):
    """A task tower: hidden ReLU layers then one linear unit; returns a logit ``[B]``.

    MMoE (Ma et al., KDD 2018) towers; the DRGrad towers T1′, T1″, T2.. (Liu et al., AAAI 2025,
    Fig. 2) are all `Tower`s of one shape so their gradients can be compared.
    """

    def __init__(self, units=(32,), activation="relu", **kwargs):
        super().__init__(**kwargs)
        self.units = _check_units(units, "tower units") if units else ()
        self.body = MLP(self.units, activation=activation, name="body") if self.units else None
        self.logit = tf.keras.layers.Dense(1, name="logit")
        self._activation = activation

    def build(self, input_shape):
        shape = tf.TensorShape(input_shape)
        if self.body is not None:
            self.body.build(shape)
            shape = shape[:-1].concatenate([self.units[-1]])
        self.logit.build(shape)
        super().build(input_shape)

    def call(self, x, training=None):
        if self.body is not None:
            x = self.body(x, training=training)
        return tf.squeeze(self.logit(x), axis=-1)

    @property
    def first_kernel(self):
        """The kernel of the first dense layer (the logit's when there is no hidden layer)."""
        first = self.body.dense_layers[0] if self.body is not None else self.logit
        return first.kernel

    def get_config(self):
        config = super().get_config()
        config.update({"units": list(self.units), "activation": self._activation})
        return config

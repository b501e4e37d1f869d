"""`RawFeatureTransform`: raw feature tensors -> model inputs, inside the exported graph.

Built by `FeaturePreprocessor.keras_layer()`; it computes exactly what
`FeaturePreprocessor.transform` computes in numpy, so a model trained on `transform()` output
can be served on raw `tf.Example` features (docs/ARCHITECTURE.md §3).
"""
import tensorflow as tf

_RAW_TF_DTYPES = {"int": tf.int64, "float": tf.float32, "string": tf.string}


@tf.keras.utils.register_keras_serializable(package="drgrad")
class RawFeatureTransform(tf.keras.layers.Layer):
    """Maps `{column: raw tensor [B]}` to `{column: int64 id [B] | float32 [B]}`.

    Categorical columns are looked up in a static hash table built from the vocabulary
    (vocabulary entry k -> id k + B with B `num_oov_buckets`, default 1; anything else -> 0, or
    with B > 1 its bucket `tf.strings.to_hash_bucket_fast(as_string(value), B)`). Numeric columns are cast to float64,
    `log1p(max(x, 0))` where configured, z-scored with the fitted mean/std and cast to float32;
    a non-finite result (a NaN or inf sent by a client) becomes 0, the train mean.

    Args:
      categorical: `{column: {"dtype": "int"|"string", "vocabulary": [values],
        "num_oov_buckets": B >= 1 (optional, default 1)}}`.
      numeric: `{column: {"dtype": "int"|"float", "mean": float, "std": float > 0,
        "log1p": bool}}`.

    Inputs of shape [B, 1] are flattened to [B]. Extra input keys are ignored, so the layer
    can be fed a parsed `tf.Example` dict that still holds the labels.
    """

    def __init__(self, categorical, numeric, **kwargs):
        super().__init__(**kwargs)
        if not categorical and not numeric:
            raise ValueError("RawFeatureTransform needs at least one column")
        overlap = sorted(set(categorical) & set(numeric))
        if overlap:
            raise ValueError(f"columns both categorical and numeric: {overlap}")
        self._categorical = {}
        for column, entry in categorical.items():
            dtype, vocabulary = entry["dtype"], list(entry["vocabulary"])
            if dtype not in ("int", "string"):
                raise ValueError(f"categorical column {column!r}: dtype must be 'int' or "
                                 f"'string', got {dtype!r}")
            if not vocabulary:
                raise ValueError(f"categorical column {column!r}: empty vocabulary")
            if len(set(vocabulary)) != len(vocabulary):
                raise ValueError(f"categorical column {column!r}: vocabulary has duplicates")
            buckets = entry.get("num_oov_buckets", 1)
            if isinstance(buckets, bool) or not isinstance(buckets, int) or buckets < 1:
                raise ValueError(f"categorical column {column!r}: num_oov_buckets must be an "
                                 f"int >= 1, got {buckets!r}")
            self._categorical[column] = {"dtype": dtype, "vocabulary": vocabulary,
                                         "num_oov_buckets": buckets}
        self._numeric = {}
        for column, entry in numeric.items():
            dtype = entry["dtype"]
            if dtype not in ("int", "float"):
                raise ValueError(f"numeric column {column!r}: dtype must be 'int' or 'float', "
                                 f"got {dtype!r}")
            mean, std = float(entry["mean"]), float(entry["std"])
            if not (std > 0 and std < float("inf")) or mean != mean or abs(mean) == float("inf"):
                raise ValueError(f"numeric column {column!r}: need a finite mean and std > 0, "
                                 f"got mean={entry['mean']!r} std={entry['std']!r}")
            self._numeric[column] = {"dtype": dtype, "mean": mean, "std": std,
                                     "log1p": bool(entry.get("log1p", False))}
        self._tables = {}
        for column, entry in self._categorical.items():
            key_dtype = _RAW_TF_DTYPES[entry["dtype"]]
            keys = tf.constant(entry["vocabulary"], dtype=key_dtype)
            buckets = entry["num_oov_buckets"]
            values = tf.range(buckets, len(entry["vocabulary"]) + buckets, dtype=tf.int64)
            self._tables[column] = tf.lookup.StaticHashTable(
                tf.lookup.KeyValueTensorInitializer(keys, values),
                default_value=0 if buckets == 1 else -1, name=f"{_slug(column)}_vocabulary")

    @property
    def raw_dtypes(self):
        """`{column: tf.DType}` the layer expects."""
        entries = {**self._categorical, **self._numeric}
        return {column: _RAW_TF_DTYPES[entry["dtype"]] for column, entry in entries.items()}

    def call(self, inputs):
        missing = [c for c in list(self._categorical) + list(self._numeric) if c not in inputs]
        if missing:
            raise ValueError(f"RawFeatureTransform: inputs lack columns {missing}")
        outputs = {}
        for column, entry in self._categorical.items():
            raw = _flatten(inputs[column])
            expected = _RAW_TF_DTYPES[entry["dtype"]]
            if entry["dtype"] == "int" and raw.dtype.is_integer and raw.dtype != tf.int64:
                raw = tf.cast(raw, tf.int64)
            if raw.dtype != expected:
                raise TypeError(f"RawFeatureTransform: column {column!r} must be "
                                f"{expected.name}, got {raw.dtype.name}")
            ids = self._tables[column].lookup(raw)
            if entry["num_oov_buckets"] > 1:
                text = raw if raw.dtype == tf.string else tf.strings.as_string(raw)
                ids = tf.where(ids < 0, tf.strings.to_hash_bucket_fast(
                    text, entry["num_oov_buckets"]), ids)
            outputs[column] = ids
        for column, entry in self._numeric.items():
            raw = _flatten(inputs[column])
            if raw.dtype == tf.string or raw.dtype == tf.bool:
                raise TypeError(f"RawFeatureTransform: numeric column {column!r} must be a "
                                f"number, got {raw.dtype.name}")
            if entry["dtype"] == "float":
                raw = tf.cast(raw, tf.float32)  # What a tf.Example float_list holds.
            values = tf.cast(raw, tf.float64)
            if entry["log1p"]:
                values = tf.math.log1p(tf.maximum(values, 0.0))
            values = (values - entry["mean"]) / entry["std"]
            values = tf.where(tf.math.is_finite(values), values, tf.zeros_like(values))
            outputs[column] = tf.cast(values, tf.float32)
        return outputs

    def get_config(self):
        config = super().get_config()
        config.update({"categorical": {c: dict(e) for c, e in self._categorical.items()},
                       "numeric": {c: dict(e) for c, e in self._numeric.items()}})
        return config


def _flatten(tensor):
    tensor = tf.convert_to_tensor(tensor)
    if tensor.shape.rank == 2 and tensor.shape[-1] == 1:
        return tf.squeeze(tensor, axis=-1)
    return tensor


def _slug(name):
    return "".join(ch if ch.isalnum() else "_" for ch in name)

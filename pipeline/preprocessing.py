"""The pipeline's `preprocessing_fn` (TFX Transform) and the feature config it implies.

Transformed features keep their **raw column names** (docs/ARCHITECTURE.md §2), so the model
never knows whether its inputs came from TFX Transform or from the standalone
`data.preprocessing.FeaturePreprocessor`:

* categorical column -> `int64` vocabulary id `[B]` (`vocabularies.compute_vocabularies`: every
  column's vocabulary in one Beam pass, files as `tft.vocabulary` writes them; ids by
  descending frequency, `num_oov_buckets` extra ids for unseen values; integer codes are turned
  into strings first so `7` and `"7"` share one vocabulary);
* numeric column -> `float32` z-score `[B]` (`log1p` first for `log_numeric`, as in the MMoE
  census protocol), or an `int64` quantile bucket id `[B]` when listed in `bucketize`;
* task column -> `float32` 0/1 label `[B]`, passed through.

Nulls, the dataset file's rule (`drgrad.data.dataset_file`), as the standalone
`FeaturePreprocessor` applies it: a feature the schema leaves optional arrives as a VarLen
`SparseTensor` whose empty rows are nulls. A null categorical value is in no vocabulary (the
vocabulary counts present values only) and gets the first OOV id (the vocabulary size); a null
numeric value is the train mean of the present raw values (`tft.mean`), counted in the z-score
statistics as that value (`_numeric_feature`: one analysis phase, which TFX's Transform
needs under Beam 2.67); a null label stops the Transform (the schema requires labels, so
the ExampleValidator reports it first).

The Transform component binds `custom_config` (a JSON-able dict made by `transform_config`) to
`preprocessing_fn`; every choice is thus recorded in MLMD and changes the Transform cache key.
"""
from typing import Any, Dict, Mapping, Optional

from drgrad.pipeline import configs
from drgrad.pipeline.vocabularies import compute_vocabularies

VOCAB_PREFIX = "vocab_"
_CONFIG_KEYS = ("tasks", "categorical", "numeric", "log_numeric", "bucketize",
                "num_oov_buckets", "vocab_top_k", "vocab_frequency_threshold")


def vocabulary_name(column: str) -> str:
    """Name of the vocabulary file TFT writes for a categorical column."""
    return VOCAB_PREFIX + column


def transform_config(spec, bucketize: Optional[Mapping[str, int]] = None,
                     num_oov_buckets: int = configs.DEFAULT_NUM_OOV_BUCKETS,
                     vocab_top_k: Optional[int] = None,
                     vocab_frequency_threshold: int = 0,
                     cacheable_vocabularies: bool = False) -> Dict[str, Any]:
    """Builds the Transform `custom_config` for a `data.specs.DatasetSpec`.

    Args:
      spec: the dataset spec (tasks, categorical, numeric, log_numeric).
      bucketize: `{numeric column: number of quantile buckets >= 2}`; those columns become
        categorical ids instead of z-scores.
      num_oov_buckets: ids reserved for values absent from a vocabulary (>= 1).
      vocab_top_k: keep only the most frequent values per vocabulary (None = all).
      vocab_frequency_threshold: drop values seen fewer times than this (>= 0).
      cacheable_vocabularies: one cacheable analyzer per column (for a Transform with an
        analyzer cache) instead of one pass for all (`vocabularies.compute_vocabularies`).

    Returns:
      A JSON-serializable dict understood by `preprocessing_fn` and `feature_config`.
    """
    bucketize = dict(bucketize or {})
    unknown = sorted(set(bucketize) - set(spec.numeric))
    if unknown:
        raise ValueError(f"bucketize names non-numeric columns of {spec.name!r}: {unknown}")
    bad = {k: v for k, v in bucketize.items() if not isinstance(v, int) or v < 2}
    if bad:
        raise ValueError(f"bucketize needs an int number of buckets >= 2 per column, got {bad}")
    if not isinstance(num_oov_buckets, int) or num_oov_buckets < 1:
        raise ValueError(f"num_oov_buckets must be an int >= 1, got {num_oov_buckets!r}")
    if vocab_top_k is not None and (not isinstance(vocab_top_k, int) or vocab_top_k < 1):
        raise ValueError(f"vocab_top_k must be None or an int >= 1, got {vocab_top_k!r}")
    if not isinstance(vocab_frequency_threshold, int) or vocab_frequency_threshold < 0:
        raise ValueError("vocab_frequency_threshold must be an int >= 0, got "
                         f"{vocab_frequency_threshold!r}")
    return {
        "tasks": list(spec.tasks),
        "categorical": list(spec.categorical),
        "numeric": list(spec.numeric),
        "log_numeric": list(spec.log_numeric),
        "bucketize": bucketize,
        "num_oov_buckets": num_oov_buckets,
        "vocab_top_k": vocab_top_k,
        "vocab_frequency_threshold": vocab_frequency_threshold,
        "cacheable_vocabularies": bool(cacheable_vocabularies),
    }


def _check_config(custom_config: Optional[Mapping[str, Any]]) -> Mapping[str, Any]:
    if not custom_config:
        raise ValueError("preprocessing_fn needs the custom_config made by "
                         "pipeline.preprocessing.transform_config(spec)")
    missing = [key for key in _CONFIG_KEYS if key not in custom_config]
    if missing:
        raise ValueError(f"Transform custom_config lacks {missing}; build it with "
                         "pipeline.preprocessing.transform_config(spec)")
    return custom_config


def _dense_1d(tensor, default):
    """A raw feature as a dense `[B]` tensor, whatever shape the schema gave it."""
    import tensorflow as tf
    import tensorflow_transform as tft

    if isinstance(tensor, tf.SparseTensor):
        tensor = tft.sparse_tensor_to_dense_with_shape(tensor, [None, 1], default_value=default)
    if tensor.shape.rank == 2:
        tensor = tf.squeeze(tensor, axis=1)
    return tensor


def _present(tensor):
    """`bool [B]`: which rows hold a value (all of them for a dense tensor)."""
    import tensorflow as tf

    if not isinstance(tensor, tf.SparseTensor):
        return tf.ones_like(_dense_1d(tensor, 0), dtype=tf.bool)
    rows = tensor.indices[:, 0]
    counts = tf.math.unsorted_segment_sum(tf.ones_like(rows), rows, tensor.dense_shape[0])
    return counts > 0


def _categorical_text(raw):
    """A categorical column as strings (dense `[B]` or sparse): integer codes become strings
    so `7` and `"7"` share one vocabulary."""
    import tensorflow as tf

    as_text = tf.strings.as_string if raw.dtype != tf.string else tf.identity
    if isinstance(raw, tf.SparseTensor):
        return tf.sparse.map_values(as_text, raw)
    return as_text(_dense_1d(raw, 0 if raw.dtype != tf.string else b""))


def _categorical_ids(text, vocabulary, config):
    """Vocabulary ids `[B]` of one categorical column (`vocabulary`: its file's path tensor);
    a null row gets the first OOV id."""
    import tensorflow as tf
    import tensorflow_transform as tft

    oov = config["num_oov_buckets"]
    ids = tft.apply_vocabulary(text, deferred_vocab_filename_tensor=vocabulary,
                               num_oov_buckets=oov)
    if not isinstance(text, tf.SparseTensor):
        return ids
    # The table's size is the vocabulary's plus the OOV buckets: the first OOV id is nulls'.
    null_id = tft.get_num_buckets_for_transformed_feature(ids) - oov
    return _dense_1d(ids, tf.cast(null_id, tf.int64))


def _numeric_feature(raw, log, buckets):
    """`float32 [B]` z-score (or `int64 [B]` quantile bucket) of one numeric column, `log1p`
    first for `log_numeric`; a null row (sparse input) is the train mean of the present raw
    values.

    Every analyzer reads the raw input only (ONE analysis phase): the TFX Transform executor
    deep-copies the input of a second phase, which fails under Beam 2.67 (TFT 1.16's
    `deep_copy` builds `AppliedPTransform` with Beam's old signature). So the z-score
    statistics of the filled column come from sums over the present values plus the fills'
    share: with n present of N rows, t the (log1p) transform and f = t(mean raw),
    mean = (Σ t(x) + (N − n)·f) / N and var = (Σ t(x)² + (N − n)·f²) / N − mean², in float64.
    Quantile boundaries (``buckets``) are those of the present values.
    """
    import tensorflow as tf
    import tensorflow_transform as tft

    def forward(x):
        return tf.math.log1p(tf.maximum(x, 0.0)) if log else x

    if not isinstance(raw, tf.SparseTensor):
        values = forward(tf.cast(_dense_1d(raw, 0), tf.float32))
        return tft.bucketize(values, buckets) if buckets else tft.scale_to_z_score(values)
    present_raw = tf.cast(raw.values, tf.float32)
    fill = forward(tft.mean(present_raw))
    is_present = _present(raw)
    values = tf.where(is_present, forward(tf.cast(_dense_1d(raw, 0), tf.float32)), fill)
    if buckets:
        return tft.apply_buckets(values, tft.quantiles(forward(present_raw), buckets, 0.01))
    present = tf.cast(forward(present_raw), tf.float64)
    rows = tf.cast(tft.size(is_present), tf.float64)
    nulls = rows - tf.cast(tft.size(present), tf.float64)
    fill = tf.cast(fill, tf.float64)
    mean = (tft.sum(present) + nulls * fill) / rows
    variance = (tft.sum(tf.square(present)) + nulls * tf.square(fill)) / rows - tf.square(mean)
    centred = tf.cast(values, tf.float64) - mean
    # As tft.scale_to_z_score: a constant column is only centred.
    scaled = tf.where(variance > 0, centred / tf.sqrt(tf.maximum(variance, 1e-300)), centred)
    return tf.cast(scaled, tf.float32)


def _label(raw, task):
    """`float32 [B]` 0/1 label; a null label fails the Transform with the column's name."""
    import tensorflow as tf

    if isinstance(raw, tf.SparseTensor):
        tf.debugging.assert_equal(tf.reduce_all(_present(raw)), True,
                                  message=f"label column {task!r} has a null (labels must be "
                                          f"0 or 1)")
    return tf.cast(_dense_1d(raw, 0), tf.float32)


def preprocessing_fn(inputs, custom_config):
    """TFX Transform entry point: raw feature dict -> model inputs and labels (module doc)."""
    config = _check_config(custom_config)
    missing = [c for c in (config["categorical"] + config["numeric"] + config["tasks"])
               if c not in inputs]
    if missing:
        raise ValueError(f"raw examples lack columns {missing} (schema/dataset mismatch)")
    texts = {column: _categorical_text(inputs[column]) for column in config["categorical"]}
    # All vocabularies in one analyzer: one Beam pass instead of one chain per column.
    vocabularies = compute_vocabularies(
        texts, {column: vocabulary_name(column) for column in texts}, top_k=config["vocab_top_k"],
        frequency_threshold=config["vocab_frequency_threshold"],
        cacheable=config.get("cacheable_vocabularies", False))
    outputs = {column: _categorical_ids(text, vocabularies[column], config)
               for column, text in texts.items()}
    log_numeric = set(config["log_numeric"])
    for column in config["numeric"]:
        outputs[column] = _numeric_feature(inputs[column], column in log_numeric,
                                           config["bucketize"].get(column))
    for task in config["tasks"]:
        outputs[task] = _label(inputs[task], task)
    return outputs


def feature_config(tf_transform_output, custom_config, personalization=(), embedding_dim=8):
    """`model.FeatureConfig` of the transformed features (vocabulary sizes from Transform).

    Args:
      tf_transform_output: a `tft.TFTransformOutput` of a Transform run with `custom_config`.
      custom_config: the Transform `custom_config` (`transform_config(spec)`).
      personalization: column names fed to the personalization path (subset of categoricals).
      embedding_dim: embedding width per categorical.
    """
    from drgrad.model.config import FeatureConfig

    config = _check_config(custom_config)
    oov = config["num_oov_buckets"]
    categorical = {column: tf_transform_output.vocabulary_size_by_name(vocabulary_name(column))
                   + oov for column in config["categorical"]}
    categorical.update({column: int(buckets) for column, buckets in config["bucketize"].items()})
    numeric = tuple(c for c in config["numeric"] if c not in config["bucketize"])
    return FeatureConfig(categorical=categorical, numeric=numeric,
                         personalization=tuple(personalization), embedding_dim=embedding_dim)

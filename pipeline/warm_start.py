"""Warm start of the daily Trainer from the latest blessed model, across vocabulary changes.

A daily run re-analyzes its rolling window, so a categorical column's vocabulary changes from
one day to the next: values appear, disappear and change frequency rank (TFT numbers them by
descending frequency). Loading yesterday's checkpoint by shape would then give a value another
value's embedding row, or fail. This module restores yesterday's model **by value**:

* every non-embedding variable (experts, gates, towers, PPNet, DRGrad's μ and σ) is copied
  as is: the network must be the same (same `model_config.json` once vocabulary sizes are
  ignored), otherwise the model trains from scratch and the reason is recorded;
* each embedding table is rebuilt row by row: a value known yesterday gets yesterday's row,
  a new value keeps its fresh initialisation, and the OOV bucket rows (hashed, hence stable)
  are copied bucket for bucket. This is what `tf.compat.v1.train.VocabInfo` did for
  Estimators.

The Trainer writes, beside each model's checkpoint, the vocabularies it was trained with
(`vocabularies.json`), and records what a warm start did in `warm_start.json` in its model-run
directory (`mode`: "exact", "remapped" or "none", with the base model's path and the reason).
The optimizer's slots are not carried over: each day starts a fresh Adam.
"""
import json
import os
from typing import Dict, List, Mapping, Optional

from drgrad.pipeline.json_files import read_json

CHECKPOINT_DIR = "checkpoint"
CHECKPOINT_PREFIX = "weights"
MODEL_CONFIG_FILE = "model_config.json"
VOCABULARIES_FILE = "vocabularies.json"
RECORD_FILE = "warm_start.json"


def checkpoint_paths(serving_model_dir: str) -> Dict[str, str]:
    """Where a Trainer model artifact keeps its config, checkpoint and vocabularies."""
    root = os.path.dirname(serving_model_dir.rstrip("/"))
    return {"config": os.path.join(serving_model_dir, MODEL_CONFIG_FILE),
            "checkpoint": os.path.join(root, CHECKPOINT_DIR, CHECKPOINT_PREFIX),
            "vocabularies": os.path.join(root, CHECKPOINT_DIR, VOCABULARIES_FILE)}


# Model config fields that do not change the network's variables (a new seed or learning rate
# still warm-starts).
_TRAINING_ONLY_FIELDS = ("seed", "learning_rate", "task_weights")


def _without_vocabulary_sizes(config: Mapping) -> Dict:
    """The network part of a model config dict, categorical sizes replaced by None."""
    config = {k: v for k, v in json.loads(json.dumps(config)).items()
              if k not in _TRAINING_ONLY_FIELDS}
    features = config["feature_config"]
    features["categorical"] = {name: None for name in features["categorical"]}
    return config


def remap_rows(old_table, new_table, old_vocabulary: List[str], new_vocabulary: List[str],
               num_oov_buckets: int):
    """`new_table` with the rows of values present in `old_vocabulary` (and the OOV buckets)
    taken from `old_table`. Tables are numpy arrays `[vocab + oov, dim]`."""
    import numpy as np

    if old_table.shape[0] != len(old_vocabulary) + num_oov_buckets or (
            new_table.shape[0] != len(new_vocabulary) + num_oov_buckets):
        raise ValueError(f"table rows {old_table.shape[0]} / {new_table.shape[0]} do not match "
                         f"vocabularies of {len(old_vocabulary)} / {len(new_vocabulary)} values "
                         f"+ {num_oov_buckets} OOV buckets")
    result = np.array(new_table, copy=True)
    old_row = {value: row for row, value in enumerate(old_vocabulary)}
    for row, value in enumerate(new_vocabulary):
        if value in old_row:
            result[row] = old_table[old_row[value]]
    for bucket in range(num_oov_buckets):
        result[len(new_vocabulary) + bucket] = old_table[len(old_vocabulary) + bucket]
    return result


def _embedding_column(variable_name: str, columns) -> Optional[str]:
    for column in columns:
        if f"/embedding_{column}/embeddings" in variable_name:
            return column
    return None


def _dummy_features(feature_config):
    import tensorflow as tf

    features = {name: tf.zeros([1], tf.int64) for name in feature_config.categorical}
    features.update({name: tf.zeros([1], tf.float32) for name in feature_config.numeric})
    return features


def warm_start(model, built, base_model_serving_dir: Optional[str],
               vocabularies: Mapping[str, List[str]], num_oov_buckets: int) -> Dict:
    """Loads the base model into `model` (module docstring); returns the record dict.

    Args:
      model: the freshly built `MultiTaskModel` of today (its variables are created here).
      built: today's `model.config.ModelConfig`.
      base_model_serving_dir: `fn_args.base_model` (the blessed model's Format-Serving dir),
        or None on the first day.
      vocabularies: today's `{categorical column: [values in id order]}`.
      num_oov_buckets: OOV ids after each vocabulary (Transform's `num_oov_buckets`).
    """
    import tensorflow as tf

    from drgrad.model.builder import build_from_config
    from drgrad.model.config import ModelConfig

    record = {"base_model": base_model_serving_dir, "mode": "none", "reason": ""}
    if not base_model_serving_dir:
        record["reason"] = "no blessed model yet"
        return record
    paths = checkpoint_paths(base_model_serving_dir)
    if not all(tf.io.gfile.exists(p) for p in (paths["config"], paths["vocabularies"],
                                               paths["checkpoint"] + ".index")):
        record["reason"] = "base model has no model_config.json / vocabularies / checkpoint"
        return record
    previous = read_json(paths["config"])
    current = json.loads(built.to_json())
    if _without_vocabulary_sizes(previous) != _without_vocabulary_sizes(current):
        record["reason"] = "base model is a different network (model config differs)"
        return record
    old_vocabularies = read_json(paths["vocabularies"])
    model(_dummy_features(built.feature_config), training=False)  # create the variables
    if (_without_vocabulary_sizes(previous) == _without_vocabulary_sizes(current)
            and previous["feature_config"] == current["feature_config"]
            and old_vocabularies == dict(vocabularies)):
        model.load_weights(paths["checkpoint"]).assert_existing_objects_matched()
        record["mode"] = "exact"
        return record

    old_model = build_from_config(ModelConfig.from_dict(previous), compile_model=False)
    old_model(_dummy_features(old_model.model_config.feature_config), training=False)
    old_model.load_weights(paths["checkpoint"]).expect_partial()
    if len(old_model.variables) != len(model.variables):
        record["reason"] = "base model has a different set of variables"
        return record
    columns = list(built.feature_config.categorical)
    updates = []
    for old, new in zip(old_model.variables, model.variables):
        column = _embedding_column(new.name, columns)
        if column is not None and column in vocabularies:
            if column not in old_vocabularies:
                record["reason"] = f"base model has no vocabulary for {column!r}"
                return record
            value = remap_rows(old.numpy(), new.numpy(), old_vocabularies[column],
                               list(vocabularies[column]), num_oov_buckets)
        elif old.shape != new.shape:
            record["reason"] = f"variable {new.name} changed shape {old.shape} -> {new.shape}"
            return record
        else:
            value = old.numpy()
        updates.append((new, value))
    for variable, value in updates:  # all or nothing: nothing is assigned before this point
        variable.assign(value)
    record["mode"] = "remapped"
    record["remapped_columns"] = sorted(c for c in columns if c in vocabularies)
    return record

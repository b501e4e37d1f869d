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

The Trainer saves each model beside its SavedModel as a trained-model directory
(`drgrad.model.saving`: config, checkpoint, and the vocabularies it was trained with) and
records what a warm start did in `warm_start.json` in its model-run directory (`mode`:
"exact", "remapped" or "none", with the base model's path and the reason). Variables are
matched by name: their checkpoint object path (`saving.variable_paths`), never by position.
The optimizer's slots are not carried over in a remap: each such day starts a fresh Adam.
"""
import json
import os
from typing import Dict, List, Mapping, Optional

from drgrad.model import saving

TRAINED_MODEL_DIR = "trained_model"
RECORD_FILE = "warm_start.json"
# Checkpoint paths under this prefix are the optimizer's slots and step (not carried over).
_OPTIMIZER_PATH = "optimizer/"


def trained_model_dir(serving_model_dir: str) -> str:
    """The trained-model directory of a Trainer model artifact, beside its Format-Serving."""
    return os.path.join(os.path.dirname(serving_model_dir.rstrip("/")), TRAINED_MODEL_DIR)


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


def _embedding_tables(model) -> Dict[str, str]:
    """``{checkpoint path of an embedding table: its categorical column}``."""
    path_of = {variable.ref(): path for path, variable in saving.variable_paths(model).items()}
    return {path_of[layer.embeddings.ref()]: column
            for column, layer in model.backbone.embedding.tables.items()}


def warm_start(model, built, base_model_serving_dir: Optional[str],
               vocabularies: Mapping[str, List[str]], num_oov_buckets: int) -> Dict:
    """Loads the base model into `model` (module docstring); returns the record dict.

    Args:
      model: the freshly built `MultiTaskModel` of today.
      built: today's `drgrad.model.config.ModelConfig`.
      base_model_serving_dir: `fn_args.base_model` (the blessed model's Format-Serving dir),
        or None on the first day.
      vocabularies: today's `{categorical column: [values in id order]}`.
      num_oov_buckets: OOV ids after each vocabulary (Transform's `num_oov_buckets`).
    """
    record = {"base_model": base_model_serving_dir, "mode": "none", "reason": ""}
    if not base_model_serving_dir:
        record["reason"] = "no blessed model yet"
        return record
    base_dir = trained_model_dir(base_model_serving_dir)
    old_vocabularies = (saving.read_vocabularies(base_dir)
                        if saving.is_trained_model(base_dir) else None)
    if old_vocabularies is None:
        record["reason"] = "base model has no model_config.json / vocabularies / checkpoint"
        return record
    previous = json.loads(saving.read_config(base_dir).to_json())
    current = json.loads(built.to_json())
    if _without_vocabulary_sizes(previous) != _without_vocabulary_sizes(current):
        record["reason"] = "base model is a different network (model config differs)"
        return record
    model(model.dummy_features(), training=False)  # create the variables
    if (previous["feature_config"] == current["feature_config"]
            and old_vocabularies == dict(vocabularies)):
        model.load_weights(saving.weights_prefix(base_dir)).assert_existing_objects_matched()
        record["mode"] = "exact"
        return record

    old_values = {path: value for path, value in saving.read_weights(base_dir).items()
                  if not path.startswith(_OPTIMIZER_PATH)}
    new_variables = {path: variable for path, variable in saving.variable_paths(model).items()
                     if not path.startswith(_OPTIMIZER_PATH)}
    if set(old_values) != set(new_variables):
        record["reason"] = "base model has a different set of variables"
        return record
    tables = _embedding_tables(model)
    updates = []
    for path, variable in new_variables.items():
        old, column = old_values[path], tables.get(path)
        if column is not None and column in vocabularies:
            if column not in old_vocabularies:
                record["reason"] = f"base model has no vocabulary for {column!r}"
                return record
            value = remap_rows(old, variable.numpy(), old_vocabularies[column],
                               list(vocabularies[column]), num_oov_buckets)
        elif tuple(old.shape) != tuple(variable.shape):
            record["reason"] = f"variable {path} changed shape {old.shape} -> {variable.shape}"
            return record
        else:
            value = old
        updates.append((variable, value))
    for variable, value in updates:  # all or nothing: nothing is assigned before this point
        variable.assign(value)
    record["mode"] = "remapped"
    record["remapped_columns"] = sorted(set(tables.values()) & set(vocabularies))
    return record

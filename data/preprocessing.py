"""Standalone feature preprocessing: the non-TFX twin of the pipeline's `preprocessing_fn`.

`FeaturePreprocessor(spec).fit(train_frame)` learns, from the train split only:

* a vocabulary per categorical column, ordered by descending frequency (ties: descending
  value bytes, the order of `tft.vocabulary`); id 0 is the unknown / out-of-vocabulary id and
  the vocabulary takes ids 1..V, so `vocab_sizes[column] = V + 1`;
* a mean and standard deviation per numeric column (population std, as
  `tft.scale_to_z_score`; a constant column gets std 1), computed after `log1p` for the
  `log_numeric` columns.

Raw values are read the way the pipeline sees them in a `tf.Example`: "int" columns as int64,
"float" columns rounded to float32. Numeric transforms run in float64 and the result is cast
to float32, in numpy (`transform`) and in TensorFlow (`keras_layer`) alike, so both give
identical model inputs. `log1p` is applied to `max(x, 0)` (the log columns are non-negative
amounts), so no input can produce a NaN: `transform` rejects non-finite values with an error,
and the serving layer maps a non-finite result to 0 (the train mean).
"""
import json
import os
from typing import Dict, Mapping, Optional, Union

import numpy as np
import pandas as pd

from drgrad.data.specs import DatasetSpec, get_spec

CONFIG_NAME = "preprocessor.json"
FORMAT_VERSION = 1


def _vocabulary(values: pd.Series):
    counts = values.value_counts(sort=False)
    ordered = sorted(counts.items(), key=lambda kv: (kv[1], str(kv[0]).encode("utf-8")),
                     reverse=True)
    return [item for item, _ in ordered]


class FeaturePreprocessor:
    """Fits vocabularies and z-score statistics on a train frame; maps frames to model inputs.

    Example:
      >>> pre = FeaturePreprocessor("census-income").fit(frames["train"])
      >>> inputs = pre.transform(frames["eval"])   # {column: int64 ids | float32}
      >>> dataset = pre.to_dataset(frames["train"], batch_size=1024, shuffle=True, seed=0)
      >>> layer = pre.keras_layer()                # raw tf tensors -> the same inputs
    """

    def __init__(self, spec: Union[DatasetSpec, str]):
        if isinstance(spec, str):
            spec = get_spec(spec)
        if not isinstance(spec, DatasetSpec):
            raise TypeError(f"spec must be a DatasetSpec or a dataset name, got "
                            f"{type(spec).__name__}")
        self.spec = spec
        self.vocabularies: Optional[Dict[str, list]] = None
        self.numeric_stats: Optional[Dict[str, Dict[str, float]]] = None

    # --- fitting -----------------------------------------------------------------------------
    @property
    def is_fitted(self) -> bool:
        return self.vocabularies is not None

    def _require_fitted(self):
        if not self.is_fitted:
            raise ValueError("FeaturePreprocessor is not fitted; call fit(train_frame) or load()")

    def _check_columns(self, frame: pd.DataFrame, columns):
        if not isinstance(frame, pd.DataFrame):
            raise TypeError(f"expected a pandas DataFrame, got {type(frame).__name__}")
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise ValueError(f"frame is missing columns {missing} of dataset "
                             f"{self.spec.name!r}")

    def _raw_categorical(self, frame: pd.DataFrame, column: str) -> pd.Series:
        """The column's non-null values (a null is the unknown id 0: never in a vocabulary)."""
        values = frame[column].dropna()
        if self.spec.raw_dtypes[column] == "string":
            return values.astype(str)
        if not pd.api.types.is_integer_dtype(values) and not (
                pd.api.types.is_float_dtype(values) and (values == values.round()).all()):
            raise ValueError(f"column {column!r} must hold integers, has {values.dtype}")
        return values.astype(np.int64)

    def _raw_numeric(self, frame: pd.DataFrame, column: str) -> np.ndarray:
        values = frame[column]
        if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
            raise ValueError(f"numeric column {column!r} must hold numbers, has {values.dtype}")
        if self.spec.raw_dtypes[column] == "float":
            raw = values.to_numpy(dtype=np.float32).astype(np.float64)
        else:
            raw = values.to_numpy(dtype=np.float64)
        if not np.isfinite(raw).all():
            row = int(np.flatnonzero(~np.isfinite(raw))[0])
            raise ValueError(f"numeric column {column!r} has a non-finite value at row {row}")
        if column in self.spec.log_numeric:
            raw = np.log1p(np.maximum(raw, 0.0))
        return raw

    def fit(self, frame: pd.DataFrame) -> "FeaturePreprocessor":
        """Learns vocabularies and statistics from `frame` (the train split). Returns self."""
        self._check_columns(frame, self.spec.features)
        if len(frame) == 0:
            raise ValueError("cannot fit a FeaturePreprocessor on an empty frame")
        vocabularies = {}
        for column in self.spec.categorical:
            vocabulary = _vocabulary(self._raw_categorical(frame, column))
            if self.spec.raw_dtypes[column] == "int":
                vocabulary = [int(v) for v in vocabulary]
            vocabularies[column] = vocabulary
        stats = {}
        for column in self.spec.numeric:
            values = self._raw_numeric(frame, column)
            std = float(values.std())
            stats[column] = {"mean": float(values.mean()), "std": std if std > 0 else 1.0}
        self.vocabularies, self.numeric_stats = vocabularies, stats
        return self

    # --- mapping -------------------------------------------------------------------------------
    @property
    def vocab_sizes(self) -> Dict[str, int]:
        """`{categorical column: vocabulary size + 1}` (id 0 = unknown included)."""
        self._require_fitted()
        return {column: len(vocabulary) + 1 for column, vocabulary in self.vocabularies.items()}

    def transform(self, frame: pd.DataFrame) -> Dict[str, np.ndarray]:
        """Model inputs: `{column: int64 ids [N]}` for categoricals, float32 [N] for numerics."""
        self._require_fitted()
        self._check_columns(frame, self.spec.features)
        outputs = {}
        for column in self.spec.categorical:
            ids = {value: index for index, value in enumerate(self.vocabularies[column], 1)}
            # Nulls and values unseen in training: id 0.
            present = frame[column].notna().to_numpy()
            column_ids = np.zeros(len(frame), dtype=np.int64)
            column_ids[present] = self._raw_categorical(frame, column).map(ids).fillna(0)
            outputs[column] = column_ids
        for column in self.spec.numeric:
            stat = self.numeric_stats[column]
            values = (self._raw_numeric(frame, column) - stat["mean"]) / stat["std"]
            outputs[column] = values.astype(np.float32)
        return outputs

    def labels(self, frame: pd.DataFrame) -> Dict[str, np.ndarray]:
        """`{task: float32 [N]}` with 0/1 values."""
        self._check_columns(frame, self.spec.tasks)
        labels = {}
        for task in self.spec.tasks:
            values = frame[task]
            if values.isna().any() or not values.isin((0, 1)).all():
                raise ValueError(f"label {task!r} must hold only 0 and 1")
            labels[task] = values.to_numpy(dtype=np.float32)
        return labels

    def to_dataset(self, frame: pd.DataFrame, batch_size: int = 1024, shuffle: bool = False,
                   seed: Optional[int] = None):
        """`tf.data.Dataset` of `(features, labels)` batches (the last batch may be short)."""
        import tensorflow as tf

        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
                or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        arrays = (self.transform(frame), self.labels(frame))
        if not shuffle:
            dataset = tf.data.Dataset.from_tensor_slices(arrays).batch(int(batch_size))
            return dataset.prefetch(tf.data.AUTOTUNE)
        # Shuffle row indices, not rows: a full-size buffer of per-row feature dicts costs about
        # 1 GB per epoch of fragmented heap on census (RSS grew to 13 GB over two 15-epoch
        # runs); a buffer of int64 indices does not. Shuffling depends only on the seed and the
        # buffer size, so the batches hold the same rows in the same order as shuffling rows.
        columns = tf.nest.map_structure(tf.convert_to_tensor, arrays)
        rows = len(frame)
        indices = tf.data.Dataset.range(rows).shuffle(max(rows, 1), seed=seed,
                                                      reshuffle_each_iteration=True)
        dataset = indices.batch(int(batch_size)).map(
            lambda index: tf.nest.map_structure(lambda column: tf.gather(column, index), columns))
        return dataset.prefetch(tf.data.AUTOTUNE)

    def keras_layer(self, name: Optional[str] = None):
        """A tf.keras layer mapping raw feature tensors (spec raw dtypes, [B]) to model inputs."""
        self._require_fitted()
        from drgrad.data.raw_transform import RawFeatureTransform

        return RawFeatureTransform(**self.layer_config(), name=name or f"{_slug(self.spec.name)}"
                                   "_raw_transform")

    def layer_config(self) -> Dict[str, dict]:
        """The constructor arguments of `RawFeatureTransform` for this preprocessor."""
        self._require_fitted()
        categorical = {column: {"dtype": self.spec.raw_dtypes[column],
                                "vocabulary": list(self.vocabularies[column])}
                       for column in self.spec.categorical}
        numeric = {column: {"dtype": self.spec.raw_dtypes[column],
                            "mean": self.numeric_stats[column]["mean"],
                            "std": self.numeric_stats[column]["std"],
                            "log1p": column in self.spec.log_numeric}
                   for column in self.spec.numeric}
        return {"categorical": categorical, "numeric": numeric}

    # --- persistence ---------------------------------------------------------------------------
    def get_config(self) -> dict:
        self._require_fitted()
        return {"format_version": FORMAT_VERSION, "spec": self.spec.to_dict(),
                "vocabularies": self.vocabularies, "numeric_stats": self.numeric_stats}

    @classmethod
    def from_config(cls, config: Mapping) -> "FeaturePreprocessor":
        if config.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"unsupported preprocessor format_version "
                             f"{config.get('format_version')!r}; expected {FORMAT_VERSION}")
        spec = DatasetSpec.from_dict(config["spec"])
        pre = cls(spec)
        vocabularies = {c: list(v) for c, v in config["vocabularies"].items()}
        stats = {c: {"mean": float(s["mean"]), "std": float(s["std"])}
                 for c, s in config["numeric_stats"].items()}
        if set(vocabularies) != set(spec.categorical) or set(stats) != set(spec.numeric):
            raise ValueError("preprocessor config does not match its dataset spec's columns")
        pre.vocabularies, pre.numeric_stats = vocabularies, stats
        return pre

    def save(self, directory) -> str:
        """Writes `<directory>/preprocessor.json` (atomically); returns its path."""
        config = self.get_config()
        directory = os.fspath(directory)
        os.makedirs(directory, exist_ok=True)
        path = os.path.join(directory, CONFIG_NAME)
        temporary = path + ".tmp"
        with open(temporary, "w") as handle:
            json.dump(config, handle)
        os.replace(temporary, path)
        return path

    @classmethod
    def load(cls, directory) -> "FeaturePreprocessor":
        path = os.path.join(os.fspath(directory), CONFIG_NAME)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"no saved preprocessor: {path} not found")
        with open(path) as handle:
            try:
                config = json.load(handle)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}: not valid JSON: {error}") from None
        return cls.from_config(config)


def _slug(name: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in name)

"""Standalone feature preprocessing: the non-TFX twin of the pipeline's `preprocessing_fn`.

`FeaturePreprocessor(spec).fit(train_frame)` learns, from the train split only:

* a vocabulary per categorical column, ordered by descending frequency (ties: descending
  value bytes, the order of `tft.vocabulary`), values seen fewer than
  `vocab_frequency_threshold` times dropped, then the `vocab_top_k` most frequent kept (the
  dataset file's `transform` section, as `tft.compute_and_apply_vocabulary` applies them); ids
  0..K-1 are the unknown / out-of-vocabulary ids (`num_oov_buckets` K, default 1) and the
  vocabulary takes ids K..K+V-1, so `vocab_sizes[column] = V + K`. With K > 1 an unseen value
  goes to bucket `tf.strings.to_hash_bucket_fast(str(value), K)`, the bucket TFT's
  `apply_vocabulary` gives it (after its V vocabulary ids); a null is always id 0;
* a mean and standard deviation per numeric column (population std, as
  `tft.scale_to_z_score`; a constant column gets std 1), computed after `log1p` for the
  `log_numeric` columns.

Nulls (the dataset file's rule, `drgrad.data.dataset_file`): a null categorical value is never
in a vocabulary and maps to id 0; a null numeric value is the train mean of the column's present
raw values (`null_fill`, filled by `fill_nulls`), counted in the statistics as that value.
`fit_stream(chunks)` learns the same from an iterable of train frames in one pass, holding one
frame at a time (`drgrad.data.streaming`); `fit(frame)` is `fit_stream([frame])`.

Raw values are read the way the pipeline sees them in a `tf.Example`: "int" columns as int64,
"float" columns rounded to float32. Numeric transforms run in float64 and the result is cast
to float32, in numpy (`transform`) and in TensorFlow (`keras_layer`) alike, so both give
identical model inputs. `log1p` is applied to `max(x, 0)` (the log columns are non-negative
amounts), so no input can produce a NaN: `transform` rejects non-finite values with an error,
and the serving layer maps a non-finite result to 0 (the train mean).
"""
import json
import math
import os
from typing import Dict, Iterable, Mapping, Optional, Union

import numpy as np
import pandas as pd

from drgrad.data.specs import DatasetSpec, get_spec

CONFIG_NAME = "preprocessor.json"
FORMAT_VERSION = 1


def _vocabulary(counts: Mapping, top_k: Optional[int], frequency_threshold: int) -> list:
    """`counts`' values by descending count, ties by descending value bytes (`tft.vocabulary`),
    those under `frequency_threshold` dropped, then at most `top_k` kept."""
    ordered = sorted(((count, value) for value, count in counts.items()
                      if count >= frequency_threshold),
                     key=lambda kv: (kv[0], str(kv[1]).encode("utf-8")), reverse=True)
    return [value for _, value in ordered[:top_k]]


class _Moments:
    """Count, mean and sum of squared deviations, merged chunk by chunk (Chan et al.); one
    chunk gives exactly numpy's mean and population std."""

    def __init__(self):
        self.count, self.mean, self.m2 = 0, 0.0, 0.0

    def add(self, count: int, mean: float, m2: float):
        if count == 0:
            return
        if self.count == 0:
            self.count, self.mean, self.m2 = count, mean, m2
            return
        total = self.count + count
        delta = mean - self.mean
        self.mean += delta * count / total
        self.m2 += m2 + delta * delta * self.count * count / total
        self.count = total

    def add_values(self, values: np.ndarray):
        if len(values):
            mean = values.mean()
            self.add(len(values), float(mean), float(((values - mean) ** 2).sum()))

    @property
    def std(self) -> float:
        return math.sqrt(self.m2 / self.count) if self.count else 0.0


class FeaturePreprocessor:
    """Fits vocabularies and z-score statistics on a train frame; maps frames to model inputs.

    Example:
      >>> pre = FeaturePreprocessor("census-income").fit(frames["train"])
      >>> inputs = pre.transform(frames["eval"])   # {column: int64 ids | float32}
      >>> dataset = pre.to_dataset(frames["train"], batch_size=1024, shuffle=True, seed=0)
      >>> layer = pre.keras_layer()                # raw tf tensors -> the same inputs
    """

    def __init__(self, spec: Union[DatasetSpec, str], vocab_top_k: Optional[int] = None,
                 vocab_frequency_threshold: int = 0, num_oov_buckets: int = 1):
        if isinstance(spec, str):
            spec = get_spec(spec)
        if not isinstance(spec, DatasetSpec):
            raise TypeError(f"spec must be a DatasetSpec or a dataset name, got "
                            f"{type(spec).__name__}")
        if vocab_top_k is not None and (isinstance(vocab_top_k, bool) or not isinstance(
                vocab_top_k, (int, np.integer)) or vocab_top_k < 1):
            raise ValueError(f"vocab_top_k must be None or an int >= 1, got {vocab_top_k!r}")
        if isinstance(vocab_frequency_threshold, bool) or not isinstance(
                vocab_frequency_threshold, (int, np.integer)) or vocab_frequency_threshold < 0:
            raise ValueError(f"vocab_frequency_threshold must be an int >= 0, got "
                             f"{vocab_frequency_threshold!r}")
        if isinstance(num_oov_buckets, bool) or not isinstance(
                num_oov_buckets, (int, np.integer)) or num_oov_buckets < 1:
            raise ValueError(f"num_oov_buckets must be an int >= 1, got {num_oov_buckets!r}")
        self.spec = spec
        self.vocab_top_k = vocab_top_k
        self.vocab_frequency_threshold = int(vocab_frequency_threshold)
        self.num_oov_buckets = int(num_oov_buckets)
        self.vocabularies: Optional[Dict[str, list]] = None
        self.numeric_stats: Optional[Dict[str, Dict[str, float]]] = None
        self.null_fill: Dict[str, float] = {}
        self._ids: Dict[str, dict] = {}

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
        return self._numeric_values(frame[column], column)

    def _numeric_values(self, values: pd.Series, column: str) -> np.ndarray:
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
        return self.fit_stream([frame])

    def fit_stream(self, chunks: Iterable[pd.DataFrame]) -> "FeaturePreprocessor":
        """Learns what `fit` learns from the concatenation of `chunks` (frames of train rows),
        in one pass holding one chunk at a time. Returns self."""
        counts = {column: {} for column in self.spec.categorical}
        moments = {column: _Moments() for column in self.spec.numeric}
        raw_sums = {column: 0.0 for column in self.spec.numeric}
        rows = 0
        for frame in chunks:
            self._check_columns(frame, self.spec.features)
            rows += len(frame)
            for column in self.spec.categorical:
                column_counts = counts[column]
                for value, count in self._raw_categorical(frame, column).value_counts(
                        sort=False).items():
                    column_counts[value] = column_counts.get(value, 0) + int(count)
            for column in self.spec.numeric:
                present = frame[column].dropna()
                raw_sums[column] += float(present.to_numpy(dtype=np.float64).sum())
                moments[column].add_values(self._numeric_values(present, column))
        if rows == 0:
            raise ValueError("cannot fit a FeaturePreprocessor on an empty frame")
        vocabularies, stats, fill = {}, {}, {}
        for column in self.spec.categorical:
            vocabulary = _vocabulary(counts[column], self.vocab_top_k,
                                     self.vocab_frequency_threshold)
            if self.spec.raw_dtypes[column] == "int":
                vocabulary = [int(v) for v in vocabulary]
            vocabularies[column] = vocabulary
        for column in self.spec.numeric:
            present = moments[column].count
            if present == 0:
                raise ValueError(f"numeric column {column!r} has no value in the train split")
            fill[column] = raw_sums[column] / present
            if present < rows:  # The nulls rule: each null counts as the train mean.
                value = self._numeric_values(pd.Series([fill[column]]), column)[0]
                moments[column].add(rows - present, float(value), 0.0)
            std = moments[column].std
            stats[column] = {"mean": moments[column].mean, "std": std if std > 0 else 1.0}
        self.vocabularies, self.numeric_stats, self.null_fill = vocabularies, stats, fill
        self._ids = {}
        return self

    def fill_nulls(self, frame: pd.DataFrame) -> pd.DataFrame:
        """`frame` with each numeric null replaced by the train mean (`null_fill`)."""
        self._require_fitted()
        nulls = [c for c in self.spec.numeric if c in frame.columns and frame[c].isna().any()]
        if not nulls:
            return frame
        unknown = [c for c in nulls if c not in self.null_fill]
        if unknown:
            raise ValueError(f"numeric columns {unknown} have nulls and this preprocessor has no "
                             f"train mean to fill them with")
        return frame.fillna({column: self.null_fill[column] for column in nulls})

    # --- mapping -------------------------------------------------------------------------------
    @property
    def vocab_sizes(self) -> Dict[str, int]:
        """`{categorical column: vocabulary size + num_oov_buckets}` (unknown ids included)."""
        self._require_fitted()
        return {column: len(vocabulary) + self.num_oov_buckets
                for column, vocabulary in self.vocabularies.items()}

    def transform(self, frame: pd.DataFrame) -> Dict[str, np.ndarray]:
        """Model inputs: `{column: int64 ids [N]}` for categoricals, float32 [N] for numerics."""
        self._require_fitted()
        self._check_columns(frame, self.spec.features)
        outputs = {}
        for column in self.spec.categorical:
            if column not in self._ids:  # Built once: a stream transforms many chunks.
                self._ids[column] = {value: index for index, value in enumerate(
                    self.vocabularies[column], self.num_oov_buckets)}
            raw = self._raw_categorical(frame, column)
            present_ids = raw.map(self._ids[column]).fillna(-1).to_numpy(dtype=np.int64)
            unseen = present_ids < 0
            present_ids[unseen] = self._oov_buckets(raw[unseen])
            column_ids = np.zeros(len(frame), dtype=np.int64)  # Nulls: id 0.
            column_ids[frame[column].notna().to_numpy()] = present_ids
            outputs[column] = column_ids
        for column in self.spec.numeric:
            stat = self.numeric_stats[column]
            values = (self._raw_numeric(frame, column) - stat["mean"]) / stat["std"]
            outputs[column] = values.astype(np.float32)
        return outputs

    def _oov_buckets(self, values: pd.Series) -> np.ndarray:
        """Unknown ids of values unseen in training (module docstring)."""
        if self.num_oov_buckets == 1 or values.empty:
            return np.zeros(len(values), dtype=np.int64)
        import tensorflow as tf  # pylint: disable=g-import-not-at-top

        return tf.strings.to_hash_bucket_fast(values.astype(str).to_numpy(dtype=object),
                                              self.num_oov_buckets).numpy()

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
                                "vocabulary": list(self.vocabularies[column]),
                                "num_oov_buckets": self.num_oov_buckets}
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
                "vocabularies": self.vocabularies, "numeric_stats": self.numeric_stats,
                "null_fill": self.null_fill, "num_oov_buckets": self.num_oov_buckets}

    @classmethod
    def from_config(cls, config: Mapping) -> "FeaturePreprocessor":
        if config.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"unsupported preprocessor format_version "
                             f"{config.get('format_version')!r}; expected {FORMAT_VERSION}")
        spec = DatasetSpec.from_dict(config["spec"])
        pre = cls(spec, num_oov_buckets=int(config.get("num_oov_buckets", 1)))
        vocabularies = {c: list(v) for c, v in config["vocabularies"].items()}
        stats = {c: {"mean": float(s["mean"]), "std": float(s["std"])}
                 for c, s in config["numeric_stats"].items()}
        if set(vocabularies) != set(spec.categorical) or set(stats) != set(spec.numeric):
            raise ValueError("preprocessor config does not match its dataset spec's columns")
        pre.vocabularies, pre.numeric_stats = vocabularies, stats
        pre.null_fill = {c: float(v) for c, v in config.get("null_fill", {}).items()}
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

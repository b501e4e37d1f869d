"""A dataset file's TFRecord / Parquet logs streamed through tf.data, so logs larger than memory
train (`drgrad train`, `drgrad bench`).

`LogStream` reads the source's files in chunks of `chunk_rows` rows (`sources.read_chunks`:
pyarrow record batches, TFRecord records), never a whole file, and gives:

* `fit(preprocessor)`: ONE pass over every file. Train rows feed
  `FeaturePreprocessor.fit_stream` (vocabularies with the file's `transform.vocab_top_k` /
  `vocab_frequency_threshold`, mean / std after `log1p` for `log_numeric`, the train mean that
  fills numeric nulls); every row of every split is checked on the way (`sources.spec_typed`:
  a null or non-0/1 label, text in a numeric column), so bad data stops before a model is built.
* `to_dataset(preprocessor, split, ...)`: a `tf.data.Dataset` of `(features, labels)` batches
  that re-reads the split's files each epoch; train rows are shuffled within windows of
  `SHUFFLE_ROWS` rows (batches are cut in numpy: a row-by-row tf.data shuffle ran at 7,000
  rows/s here). Measured on 2 cores, that 1 M-row simulated log as one flat Parquet file: the
  fitting pass 11 s, an epoch of its 730 k train rows 15 s, peak RSS 0.63 GB (TensorFlow
  included).

Splits are the source's (`sources.layout`): a span layout's `<split>/` folders (over every
span), or flat files split row by row with ExampleGen's hash rule (`sources.assign_splits`, the
rule `sources.load_frames` applies), so the stream's train / eval / test are the pipeline's.
`rows` keeps the first `rows` rows of each split in file order (the in-memory path takes a
seeded sample instead: a sample needs every row at once).

CSV is read into memory (`sources.load_frames`): measured here, loading 1 M simulated rows of
14 columns (`drgrad data simulate --rows-per-day 1000000`, a 59 MB CSV) peaked at 0.43 GB RSS,
about 7 times the CSV's size; `csv_memory_hint` says so above `CSV_IN_MEMORY_BYTES`.
"""
import itertools
import os
from typing import Dict, Iterator, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from drgrad.data import sources
from drgrad.data.dataset_file import DatasetFile
from drgrad.data.dataset_spec import DatasetSpec

STREAMED_FORMATS = ("tfrecord", "parquet")
CHUNK_ROWS = 8192
SHUFFLE_ROWS = 100_000
# CSV bytes read into memory without a hint: about 7 GB of RSS (7 times the CSV, measured).
CSV_IN_MEMORY_BYTES = 1 << 30
CSV_RSS_PER_BYTE = 7


def streams(dataset: DatasetFile) -> bool:
    """Whether `drgrad train` streams this dataset (a user's TFRecord or Parquet logs)."""
    return dataset.source.loader is None and dataset.source.format in STREAMED_FORMATS


def csv_memory_hint(dataset: DatasetFile) -> Optional[str]:
    """One line for a user's CSV logs larger than `CSV_IN_MEMORY_BYTES`, else None."""
    if dataset.source.loader is not None or dataset.source.format != "csv":
        return None
    size = sum(os.path.getsize(path) for splits in sources.spans(dataset).values()
               for files in splits.values() for path in files)
    if size <= CSV_IN_MEMORY_BYTES:
        return None
    return (f"note: {dataset.where}: {size / 2**30:.1f} GB of CSV is read into memory (about "
            f"{CSV_RSS_PER_BYTE * size / 2**30:.0f} GB of RAM); convert the logs to Parquet or "
            f"TFRecord (source.format) to stream them instead")


class LogStream:
    """The rows of a source's files, split as the pipeline splits them, read in chunks.

    Args:
      spec: the dataset's `DatasetSpec` (raw types known).
      fmt: "tfrecord" | "parquet" (| "csv", read in chunks too).
      files: `[(path, split)]` with split in {"train", "eval", "test"}, or "flat" for files
        whose rows are split by `sources.assign_splits` on `partition_feature`.
      partition_feature: the flat files' hash-split key (None: the whole row).
      rows: at most this many rows per split, the first in file order (None: all).
      chunk_rows: rows read at a time.
    """

    def __init__(self, spec: DatasetSpec, fmt: str, files: Sequence[Tuple[str, str]],
                 partition_feature: Optional[str] = None, rows: Optional[int] = None,
                 chunk_rows: int = CHUNK_ROWS):
        if fmt not in sources.EXTENSIONS:
            raise ValueError(f"format must be one of {', '.join(sources.EXTENSIONS)}, got "
                             f"{fmt!r}")
        bad = sorted({split for _, split in files} - set(sources.SPLITS) - {"flat"})
        if bad:
            raise ValueError(f"unknown splits {bad}; expected {sources.SPLITS} or 'flat'")
        for name, value in (("rows", rows), ("chunk_rows", chunk_rows)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                      or value < 1):
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        self.spec, self.fmt, self.files = spec, fmt, list(files)
        self.partition_feature, self.rows, self.chunk_rows = partition_feature, rows, chunk_rows
        self._splits: Dict[object, str] = {}  # partition key value -> split, as hashed

    @classmethod
    def from_dataset(cls, dataset: DatasetFile, spec: DatasetSpec, rows: Optional[int] = None,
                     chunk_rows: int = CHUNK_ROWS) -> "LogStream":
        """The stream of a dataset file's `source` (span layout or flat files)."""
        files = [(path, split) for splits in sources.spans(dataset).values()
                 for split, paths in splits.items() for path in paths]
        return cls(spec, dataset.source.format, files, dataset.partition_feature, rows,
                   chunk_rows)

    def _typed_chunks(self, splits: Sequence[str]) -> Iterator[Tuple[str, pd.DataFrame]]:
        """`(split, typed rows)` of the files holding any of `splits`, one chunk at a time."""
        taken = {split: 0 for split in sources.SPLITS}
        for path, split in self.files:
            if split not in splits and split != "flat":
                continue
            if self.rows is not None and all(taken[name] >= self.rows for name in splits):
                return
            empty = True
            for frame in sources.read_chunks(path, self.fmt, self.chunk_rows,
                                             columns=list(self.spec.columns)):
                empty = empty and frame.empty
                typed = sources.spec_typed(frame, self.spec, path)
                if split == "flat":
                    assigned = sources.assign_splits(typed, self.spec, self.partition_feature,
                                                     memo=self._splits)
                    parts = [(name, typed[assigned == name]) for name in splits]
                else:
                    parts = [(split, typed)]
                for name, part in parts:
                    if self.rows is not None:
                        part = part.iloc[:max(self.rows - taken[name], 0)]
                    taken[name] += len(part)
                    if len(part):
                        yield name, part.reset_index(drop=True)
            if empty:
                raise ValueError(f"{path}: no rows (an empty {split} file)")

    def chunks(self, split: str) -> Iterator[pd.DataFrame]:
        """Typed rows of `split` (numeric nulls still null), at most `chunk_rows` at a time."""
        if split not in sources.SPLITS:
            raise ValueError(f"split must be one of {sources.SPLITS}, got {split!r}")
        for _, part in self._typed_chunks([split]):
            yield part

    def fit(self, preprocessor) -> Tuple[object, Dict[str, int]]:
        """Fits `preprocessor` (a `FeaturePreprocessor`) on the train rows in one pass over
        every file, checking all rows; returns `(preprocessor, {split: rows})`. ValueError
        when train has no rows, or eval none where the files hold an eval split."""
        counts = {split: 0 for split in sources.SPLITS}

        def train_rows():
            for split, part in self._typed_chunks(sources.SPLITS):
                counts[split] += len(part)
                if split == "train":
                    yield part

        preprocessor.fit_stream(train_rows())
        held = {split for _, split in self.files}
        if counts["eval"] == 0 and held & {"eval", "flat"}:
            raise ValueError("the eval split has no rows")
        return preprocessor, counts

    def to_dataset(self, preprocessor, split: str, batch_size: int, shuffle: bool = False,
                   seed: Optional[int] = None):
        """`tf.data.Dataset` of `(features, labels)` batches of `split` (the last one may be
        short), as `FeaturePreprocessor.to_dataset` gives them, read again from the files each
        epoch. `shuffle`: rows are permuted within windows of `SHUFFLE_ROWS` rows, differently
        each epoch (numpy, seeded by `seed` and the epoch's number)."""
        import tensorflow as tf  # pylint: disable=g-import-not-at-top

        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        if not preprocessor.is_fitted:
            raise ValueError("fit the preprocessor first (LogStream.fit)")
        spec, epochs = self.spec, itertools.count()

        def batches():
            order = (np.random.default_rng(None if seed is None else [seed, next(epochs)])
                     if shuffle else None)
            window = SHUFFLE_ROWS if shuffle else batch_size
            pending = []
            for part in self.chunks(split):
                part = preprocessor.fill_nulls(part)
                pending.append((preprocessor.transform(part), preprocessor.labels(part)))
                if sum(len(labels[spec.primary_task]) for _, labels in pending) >= window:
                    pool = _permuted(_concatenated(pending), order)
                    rows = len(pool[1][spec.primary_task])
                    full = rows - rows % batch_size
                    yield from _cut(pool, 0, full, batch_size)
                    pending = [_rows(pool, full, rows)]
            if pending:
                pool = _permuted(_concatenated(pending), order)
                yield from _cut(pool, 0, len(pool[1][spec.primary_task]), batch_size)

        signature = (
            {**{c: tf.TensorSpec([None], tf.int64) for c in spec.categorical},
             **{c: tf.TensorSpec([None], tf.float32) for c in spec.numeric}},
            {task: tf.TensorSpec([None], tf.float32) for task in spec.tasks})
        return tf.data.Dataset.from_generator(batches, output_signature=signature).prefetch(
            tf.data.AUTOTUNE)


def _concatenated(parts):
    """One `(features, labels)` pair of arrays from several."""
    return tuple({key: np.concatenate([part[index][key] for part in parts])
                  for key in parts[0][index]} for index in (0, 1))


def _rows(pool, start, stop):
    return tuple({key: values[start:stop] for key, values in arrays.items()} for arrays in pool)


def _permuted(pool, order):
    if order is None:
        return pool
    permutation = order.permutation(len(next(iter(pool[1].values()))))
    return tuple({key: values[permutation] for key, values in arrays.items()} for arrays in pool)


def _cut(pool, start, stop, batch_size):
    for begin in range(start, stop, batch_size):
        yield _rows(pool, begin, min(begin + batch_size, stop))

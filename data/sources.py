"""Reading a user's logs as a dataset file describes them: files, splits, raw types, rows.

`source.path` holds either the project's span layout (``span-<N>/<split>/part-*`` with split in
{train, eval, test}; a span may lack test) or flat files (any ``*.csv`` / ``*.parquet`` /
``*.tfrecord[.gz]`` below it, or one file), which are split by a stable hash: ExampleGen's own
rule (`tfx.components.example_gen.base_example_gen_executor._PartitionFn`): sha256 of the
partition key modulo 10 buckets, train 8 / eval 1 / test 1, where the key is the serialized
`tf.train.Feature` of `partition_feature`, or the whole deterministically serialized
`tf.train.Example` when there is none. The standalone trainer uses `split_of` on the same rows,
so it sees the split the pipeline sees when there is a `partition_feature`; without one its key
is an Example of the feature columns only, where ExampleGen's holds every column of the record
(labels, timestamp, unnamed columns), so the two splits can differ (data/README.md).

Raw types the dataset file leaves open are read from the data: Parquet and TFRecord types as
stored (integer -> int, floating -> float, text/bytes -> string); CSV by tfx_bsl's rule
(`drgrad.data.datasets.csv_value_type`, the widest over the sampled cells).
"""
import glob
import hashlib
import os
import re
from typing import Dict, Iterator, List, Optional, Sequence

import numpy as np
import pandas as pd

from drgrad.data.dataset_file import DatasetFile

SPLITS = ("train", "eval", "test")
# ExampleGen hash buckets of a flat source: train 8, eval 1, test 1 (cumulative bounds).
FLAT_BUCKETS = (8, 9, 10)
EXTENSIONS = {"csv": (".csv",), "parquet": (".parquet",),
               "tfrecord": (".tfrecord", ".tfrecord.gz", ".gz", ".tfrecords")}
_SPAN = re.compile(r"^span-(\d+)$")
_TYPE_ORDER = {"int": 0, "float": 1, "string": 2}


def _is_data_file(path: str, fmt: str) -> bool:
    return os.path.isfile(path) and path.endswith(EXTENSIONS[fmt])


def _files_under(folder: str, fmt: str) -> List[str]:
    return sorted(path for path in glob.glob(os.path.join(folder, "**", "*"), recursive=True)
                  if _is_data_file(path, fmt))


def spans(dataset: DatasetFile) -> Dict[int, Dict[str, List[str]]]:
    """``{span: {split: [files]}}`` of a dataset file's source (`layout`)."""
    return layout(dataset.source_path, dataset.source.format, dataset.where)


def layout(root: Optional[str], fmt: str, where: str) -> Dict[int, Dict[str, List[str]]]:
    """``{span: {split: [files]}}`` of a span layout, or ``{0: {"flat": [files]}}`` for flat
    files, under `root`; FileNotFoundError / ValueError naming the path when there is nothing
    to read (`where` names the dataset file in messages)."""
    if root is None:
        raise ValueError(f"{where}: source.path is not set")
    if os.path.isfile(root):
        return {0: {"flat": [root]}}
    if not os.path.isdir(root):
        raise FileNotFoundError(f"{where}: source.path {root} does not exist")
    numbered = {int(m.group(1)): os.path.join(root, name) for name in os.listdir(root)
                for m in [_SPAN.match(name)] if m}
    if not numbered:
        files = _files_under(root, fmt)
        if not files:
            raise ValueError(f"{where}: no {fmt} files under {root}")
        return {0: {"flat": files}}
    found = {}
    for number, folder in sorted(numbered.items()):
        splits = {split: _files_under(os.path.join(folder, split), fmt) for split in SPLITS
                  if os.path.isdir(os.path.join(folder, split))}
        for split in ("train", "eval"):
            if not splits.get(split):
                raise ValueError(f"{where}: span {number} ({folder}) has no {fmt} "
                                 f"files in {split}/")
        found[number] = splits
    return found


def read_file(path: str, fmt: str, columns: Optional[Sequence[str]] = None,
              rows: Optional[int] = None) -> pd.DataFrame:
    """One data file as a DataFrame of raw values (at most `rows` rows); nulls stay NaN/None."""
    if fmt == "csv":
        return pd.read_csv(path, nrows=rows, keep_default_na=True, na_values=[""], dtype=str,
                           usecols=list(columns) if columns is not None else None)
    if fmt == "parquet":
        import pyarrow.parquet as pq  # pylint: disable=g-import-not-at-top
        table = pq.read_table(path, columns=list(columns) if columns is not None else None)
        frame = _parquet_frame(table)
        return frame if rows is None else frame.head(rows)
    return next(_tfrecord_chunks(path, columns, rows, rows), pd.DataFrame())


def read_chunks(path: str, fmt: str, chunk_rows: int,
                columns: Optional[Sequence[str]] = None) -> Iterator[pd.DataFrame]:
    """One data file as DataFrames of at most `chunk_rows` rows each, read lazily (the file is
    never held whole), values as `read_file` gives them; `columns` missing from a chunk are
    all null (a TFRecord row simply lacks a null feature)."""
    if fmt == "csv":
        yield from pd.read_csv(path, chunksize=chunk_rows, keep_default_na=True,
                               na_values=[""], dtype=str,
                               usecols=list(columns) if columns is not None else None)
    elif fmt == "parquet":
        import pyarrow as pa  # pylint: disable=g-import-not-at-top
        import pyarrow.parquet as pq  # pylint: disable=g-import-not-at-top
        with pq.ParquetFile(path) as parquet:
            if columns is not None:  # A missing column is reported by name, later.
                columns = [c for c in columns if c in parquet.schema_arrow.names]
            for batch in parquet.iter_batches(batch_size=chunk_rows, columns=columns):
                yield _parquet_frame(pa.Table.from_batches([batch]))
    else:
        for frame in _tfrecord_chunks(path, columns, chunk_rows, None):
            yield frame if columns is None else frame.reindex(columns=list(columns))


def _parquet_frame(table) -> pd.DataFrame:
    import pyarrow as pa  # pylint: disable=g-import-not-at-top
    # Nullable ints stay ints (a null id is not a float id).
    return table.to_pandas(types_mapper=lambda kind: (
        pd.Int64Dtype() if pa.types.is_integer(kind) else None))


def _tfrecord_chunks(path, columns, chunk_rows, rows) -> Iterator[pd.DataFrame]:
    """`tf.Example` records as DataFrames of `chunk_rows` (None: all) rows, at most `rows`."""
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    compression = "GZIP" if path.endswith(".gz") else None
    records = tf.data.TFRecordDataset(path, compression_type=compression)
    if rows is not None:
        records = records.take(rows)
    out: Dict[str, list] = {}
    count = 0
    for serialized in records.as_numpy_iterator():
        example = tf.train.Example.FromString(serialized)
        for name, feature in example.features.feature.items():
            if columns is not None and name not in columns:
                continue
            kind = feature.WhichOneof("kind")
            values = getattr(feature, kind).value if kind else []
            value = values[0] if len(values) else None
            if isinstance(value, bytes):
                value = value.decode("utf-8", "backslashreplace")
            out.setdefault(name, [None] * count).append(value)
        count += 1
        for values in out.values():
            if len(values) < count:
                values.append(None)
        if count == chunk_rows:
            yield _tfrecord_frame(out)
            out, count = {}, 0
    if count or chunk_rows is None:
        yield _tfrecord_frame(out)


def _tfrecord_frame(out: Dict[str, list]) -> pd.DataFrame:
    frame = pd.DataFrame(out)
    for name, values in out.items():  # int64_list columns with a missing value: nullable ints
        present = [v for v in values if v is not None]
        if present and len(present) < len(values) and all(isinstance(v, int) for v in present):
            frame[name] = pd.array(values, dtype="Int64")
    return frame


def column_type(values: pd.Series, fmt: str) -> Optional[str]:
    """"int" | "float" | "string" of one column's non-null values (None if all null)."""
    values = values.dropna()
    if values.empty:
        return None
    if fmt == "csv":
        from drgrad.data.datasets import csv_value_type  # pylint: disable=g-import-not-at-top
        return max((csv_value_type(str(v)) for v in pd.unique(values)),
                   key=_TYPE_ORDER.__getitem__)
    if pd.api.types.is_bool_dtype(values) or pd.api.types.is_integer_dtype(values):
        return "int"
    if pd.api.types.is_float_dtype(values):
        return "float"
    kinds = {type(v) for v in values}
    if kinds <= {int, np.int64}:
        return "int"
    if kinds <= {float, int, np.float32, np.float64}:
        return "float"
    return "string"


def infer_dtypes(dataset: DatasetFile, columns: Optional[Sequence[str]] = None,
                 sample_rows: int = 10_000) -> Dict[str, str]:
    """Raw types of `columns` (default: those the file leaves open), read from the data.

    Every file is sampled (its first `sample_rows` rows), so a column typed differently in two
    spans is found: ValueError naming both files.
    """
    columns = list(dataset.open_dtypes if columns is None else columns)
    if not columns:
        return {}
    fmt = dataset.source.format
    seen: Dict[str, tuple] = {}
    for splits in spans(dataset).values():
        for files in splits.values():
            for path in files:
                frame = read_file(path, fmt, rows=sample_rows)
                for column in columns:
                    if column not in frame.columns:
                        raise ValueError(f"{path}: column {column!r} (named in "
                                         f"{dataset.where}) is missing")
                    kind = column_type(frame[column], fmt)
                    if kind is None:
                        continue
                    if column in seen and _TYPE_ORDER[kind] != _TYPE_ORDER[seen[column][0]]:
                        numeric = {kind, seen[column][0]} == {"int", "float"}
                        if not numeric:
                            raise ValueError(
                                f"column {column!r} is {seen[column][0]} in {seen[column][1]} "
                                f"but {kind} in {path}: give its type in features.dtypes of "
                                f"{dataset.where}")
                        kind = "float"
                    seen[column] = (kind, seen.get(column, (None, path))[1])
    untyped = [c for c in columns if c not in seen]
    if untyped:
        raise ValueError(f"{dataset.where}: columns {untyped} hold only nulls in the sampled "
                         f"rows; give their types in features.dtypes")
    return {column: seen[column][0] for column in columns}


def partition_key(row: Dict[str, object], spec_dtypes: Dict[str, str],
                  partition_feature: Optional[str]) -> bytes:
    """ExampleGen's partition key of one row (module docstring)."""
    import tensorflow as tf  # pylint: disable=g-import-not-at-top

    def feature(value, kind):
        if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
            return tf.train.Feature()
        if kind == "int":
            return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))
        if kind == "float":
            return tf.train.Feature(float_list=tf.train.FloatList(value=[float(value)]))
        text = value if isinstance(value, bytes) else str(value).encode()
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[text]))

    if partition_feature is not None:
        return feature(row[partition_feature], spec_dtypes[partition_feature]).SerializeToString(
            deterministic=True)
    example = tf.train.Example(features=tf.train.Features(feature={
        name: feature(value, spec_dtypes.get(name, "int")) for name, value in row.items()}))
    return example.SerializeToString(deterministic=True)


def split_of(key: bytes, buckets: Sequence[int] = FLAT_BUCKETS) -> str:
    """The split ExampleGen puts a partition key in (module docstring)."""
    import bisect  # pylint: disable=g-import-not-at-top
    bucket = int(hashlib.sha256(key).hexdigest(), 16) % buckets[-1]
    return SPLITS[bisect.bisect(list(buckets), bucket)]


def assign_splits(typed: pd.DataFrame, spec, partition_feature: Optional[str],
                  buckets: Sequence[int] = FLAT_BUCKETS,
                  memo: Optional[Dict[object, str]] = None) -> np.ndarray:
    """The split (`split_of` with `buckets`) of every row of a `spec_typed` frame of flat
    files, as an array of "train" / "eval" / "test"; one hash per distinct key when there is a
    partition feature (kept in `memo`, if given, for the next frames with these buckets)."""
    dtypes = dict(spec.raw_dtypes)
    if partition_feature is None:
        return np.array([split_of(partition_key({c: row[c] for c in spec.features}, dtypes,
                                                None), buckets)
                         for row in typed.to_dict("records")], dtype=object)
    values = typed[partition_feature].astype(object).where(typed[partition_feature].notna(),
                                                           None)
    memo = {} if memo is None else memo
    for value in pd.unique(values):
        if value not in memo:
            memo[value] = split_of(partition_key({partition_feature: value}, dtypes,
                                                 partition_feature), buckets)
    return np.array([memo[value] for value in values], dtype=object)


def iter_frames(dataset: DatasetFile, span: Optional[int] = None,
                split: Optional[str] = None) -> Iterator[tuple]:
    """``(span, split or "flat", path, frame)`` for every file of the source."""
    for number, splits in spans(dataset).items():
        if span is not None and number != span:
            continue
        for name, files in splits.items():
            if split is not None and name not in (split, "flat"):
                continue
            for path in files:
                yield number, name, path, read_file(path, dataset.source.format)


def spec_typed(frame: pd.DataFrame, spec, path: str) -> pd.DataFrame:
    """`frame`'s spec columns as their raw types (numeric nulls stay NaN, categorical nulls
    None/NA); a null or non-0/1 label, text in a numeric column: errors naming file and column."""
    missing = [c for c in spec.columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: column {missing[0]!r} is missing (named in the dataset file)"
                         + (f"; also {missing[1:]}" if len(missing) > 1 else ""))
    out = {}
    for column in spec.columns:
        values = frame[column]
        kind = "int" if column in spec.tasks else spec.raw_dtypes[column]
        if column in spec.tasks:
            labels = pd.to_numeric(values, errors="coerce")
            nulls = int(labels.isna().sum())
            if nulls:
                raise ValueError(f"{path}: label column {column!r} has {nulls} null or "
                                 f"non-numeric rows (labels must be 0 or 1)")
            bad = int((~labels.isin((0, 1))).sum())
            if bad:
                examples = sorted({float(v) for v in labels[~labels.isin((0, 1))]})[:3]
                raise ValueError(f"{path}: label column {column!r} has {bad} rows that are not "
                                 f"0 or 1 (e.g. {', '.join(f'{v:g}' for v in examples)})")
            out[column] = labels.astype(np.int64)
        elif kind == "string":
            out[column] = values.where(values.isna(), values.astype(str))
        else:
            numbers = pd.to_numeric(values, errors="coerce")
            text = int((numbers.isna() & values.notna()).sum())
            if text:
                raise ValueError(f"{path}: column {column!r} is {kind} in the dataset file but "
                                 f"has {text} non-numeric rows")
            if column in spec.numeric:
                out[column] = numbers.astype(np.float64)  # nulls: the train mean, later
            elif kind == "int":
                if not (numbers.dropna() == numbers.dropna().round()).all():
                    raise ValueError(f"{path}: column {column!r} is int in the dataset file but "
                                     f"has fractional values")
                out[column] = numbers.astype("Int64")
    return pd.DataFrame(out)


def load_frames(dataset: DatasetFile, rows: Optional[int] = None,
                seed: int = 0) -> Dict[str, pd.DataFrame]:
    """``{"train", "eval", "test"}`` DataFrames of a user's logs (held in memory).

    Span layout: each split is the union of that split over every span (a span without test
    adds none); flat files: rows split by ExampleGen's hash (module docstring). A null in a
    numeric feature becomes the train split's mean of that column; a null categorical value is
    kept (the preprocessing maps it to the unknown id 0); a null or non-0/1 label is an error.
    Everything is read whole into pandas here (1 M rows of 14 columns, a 59 MB CSV, peaked at
    0.43 GB RSS); `drgrad.data.streaming` streams TFRecord and Parquet instead.
    """
    from drgrad.data import readers  # pylint: disable=g-import-not-at-top
    from drgrad.data.specs import get_spec  # pylint: disable=g-import-not-at-top

    spec = get_spec(dataset.path) if dataset.path else dataset.spec()
    parts: Dict[str, List[pd.DataFrame]] = {split: [] for split in SPLITS}
    for _, split, path, frame in iter_frames(dataset):
        if frame.empty:
            raise ValueError(f"{path}: no rows (an empty {split} file)")
        typed = spec_typed(frame, spec, path)
        if split != "flat":
            parts[split].append(typed)
            continue
        assigned = assign_splits(typed, spec, dataset.partition_feature)
        for name in SPLITS:
            parts[name].append(typed[assigned == name])
    frames = {}
    for split in SPLITS:
        frame = (pd.concat(parts[split], ignore_index=True) if parts[split]
                 else pd.DataFrame({c: pd.Series(dtype=object) for c in spec.columns}))
        frames[split] = readers.subsample(frame, rows, seed)
    for split in ("train", "eval"):
        if frames[split].empty:
            raise ValueError(f"{dataset.where}: the {split} split has no rows")
    for column in spec.numeric:
        mean = float(frames["train"][column].mean())
        for split in SPLITS:
            frames[split][column] = frames[split][column].fillna(mean)
    return frames

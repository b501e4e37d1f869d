"""Loading datasets as DataFrames and writing them as TFX-readable CSV spans.

Layout (docs/ARCHITECTURE.md §1)::

    <out>/<dataset>/span-<N>/<split>/part-00000.csv     split in {train, eval, test}
    <out>/<dataset>/manifest.json

Each CSV has one header row, the spec's feature columns (categorical, then numeric) and one
0/1 integer column per task. `build` writes a single `span-1` with train, eval and test;
`split_days` writes one span per day (1, 2, ... in date order) with train and eval only (the
test split is for benchmarks and never enters the daily pipeline).

Every dataset is written into a temporary sibling directory that is renamed into place only
once all files are complete, so a failed build leaves no partial dataset behind; an existing
dataset directory is kept unless `overwrite=True`.
"""
import datetime
import json
import os
import shutil
import tempfile
from typing import Dict, List, Optional, Tuple

import numpy as np
import pandas as pd

from drgrad.data import readers
from drgrad.data.specs import DatasetSpec, get_dataset, get_spec

SPLITS = ("train", "eval", "test")
DAILY_SPLITS = ("train", "eval")
PART_NAME = "part-00000.csv"
MANIFEST_NAME = "manifest.json"
DEFAULT_STREAM_DAYS = 7
DEFAULT_STREAM_START = "2024-01-01"
STREAM_EVAL_FRACTION = 0.1
# A dated user log's day: train 9 / eval 1 hash buckets of ExampleGen's rule (no test split).
DAILY_BUCKETS = (9, 10)
SECONDS_PER_DAY = 86_400


def _loader(name: str):
    """``(spec, loader module)`` of a built-in dataset (its file's `source.loader`)."""
    # pylint: disable-next=g-import-not-at-top
    from drgrad.data import byterec, census, movielens, synthetic
    dataset = get_dataset(name)
    if dataset.source.loader is None:
        raise ValueError(f"{dataset.where} has no built-in loader: its source.path is read as "
                         f"it is (drgrad data check / train / pipeline run take it directly)")
    modules = {"census": census, "synthetic": synthetic, "movielens": movielens,
               "byterec": byterec}
    return get_spec(name), modules[dataset.source.loader]


def load_frames(name: str, source=None, rows: Optional[int] = None, seed: int = 0,
                **options) -> Dict[str, pd.DataFrame]:
    """`{"train", "eval", "test"}` DataFrames (raw feature columns + 0/1 task labels).

    Args:
      name: a built-in dataset's name, or the path of a dataset file.
      source: where to read a built-in's raw files (census defaults to the committed copy,
        synthetic takes none, movielens and byterec require one); a dataset file reads its
        own `source.path` instead.
      rows: at most this many rows per split (a seeded sample; None = all).
      seed: seeds the dataset's randomness (see each dataset module's docstring).
      **options: dataset specific (synthetic: generator, regime, cos, sparse_buckets, noise).
    """
    dataset = get_dataset(name)
    if dataset.source.loader is None:
        check_own_source(dataset, source, options)
        from drgrad.data import sources  # pylint: disable=g-import-not-at-top
        return sources.load_frames(dataset, rows=rows, seed=seed)
    spec, module = _loader(name)
    if options and spec.name != "synthetic":
        raise ValueError(f"dataset {spec.name!r} takes no options; got {sorted(options)}")
    frames = module.load(source=source, rows=rows, seed=seed, **options)
    for split, frame in frames.items():
        check_frame(spec, frame, f"{spec.name} {split}")
    return frames


def check_own_source(dataset, source, options) -> None:
    """ValueError when a user's dataset file (read from its own `source.path`) is given a
    built-in's `source` or dataset options."""
    if source is not None or options:
        raise ValueError(f"{dataset.where} reads its own source.path; --source and dataset "
                         f"options are for the built-in datasets")


def csv_value_type(text: str) -> str:
    """The type TFX CsvExampleGen (tfx_bsl `csv_decoder._InferValueType`) infers for one cell:
    "int" if Python's `int()` parses it (within int64), "float" if `float()` does (this includes
    "nan" and "inf"), else "string". A column's type is the widest over its cells."""
    try:
        value = int(text)
    except ValueError:
        try:
            float(text)
        except ValueError:
            return "string"
        return "float"
    return "int" if -2 ** 63 <= value < 2 ** 63 else "string"


def check_frame(spec: DatasetSpec, frame: pd.DataFrame, what: str) -> None:
    """Raises ValueError unless `frame` can be written as CSV that CsvExampleGen reads back
    with exactly `spec.raw_dtypes` (no missing values, labels 0/1, no text that looks numeric).
    """
    missing = [c for c in spec.columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{what}: missing columns {missing}")
    for column in spec.columns:
        values = frame[column]
        if values.isna().any():
            raise ValueError(f"{what}: column {column!r} has missing values (row "
                             f"{int(np.flatnonzero(values.isna().to_numpy())[0])})")
        kind = "int" if column in spec.tasks else spec.raw_dtypes[column]
        if kind == "int" and not pd.api.types.is_integer_dtype(values):
            raise ValueError(f"{what}: column {column!r} must hold integers, has {values.dtype}")
        if kind == "float":
            if not pd.api.types.is_float_dtype(values):
                raise ValueError(f"{what}: column {column!r} must hold floats, has "
                                 f"{values.dtype}")
            if not np.isfinite(values.to_numpy()).all():
                raise ValueError(f"{what}: column {column!r} has a non-finite value")
        if kind == "string" and len(values):
            distinct = [str(value) for value in pd.unique(values)]  # Few; checked in Python.
            if any(not value or any(ch in value for ch in '\n\r",') for value in distinct):
                raise ValueError(f"{what}: column {column!r} has an empty value or one with a "
                                 f"comma, quote or line break")
            if all(csv_value_type(value) != "string" for value in distinct):
                raise ValueError(f"{what}: string column {column!r} holds only numbers; "
                                 f"CsvExampleGen would infer a numeric type")
        if column in spec.tasks and not values.isin((0, 1)).all():
            raise ValueError(f"{what}: label {column!r} must be 0 or 1")


def _write_csv(spec: DatasetSpec, frame: pd.DataFrame, path: str) -> int:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    frame.loc[:, list(spec.columns)].to_csv(path, index=False, lineterminator="\n")
    return len(frame)


def _prepare_target(out_dir, spec: DatasetSpec, overwrite: bool) -> Tuple[str, str]:
    if out_dir is None:
        raise ValueError("an output directory is required")
    out_dir = os.path.abspath(os.fspath(out_dir))
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise NotADirectoryError(f"output path exists and is not a directory: {out_dir}")
    target = os.path.join(out_dir, spec.name)
    if os.path.exists(target) and not overwrite:
        raise FileExistsError(f"{target} already exists; remove it or pass --overwrite")
    os.makedirs(out_dir, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".{spec.name}.tmp-", dir=out_dir)
    return target, staging


def _commit(staging: str, target: str) -> None:
    if os.path.exists(target):
        trash = staging + ".old"
        os.rename(target, trash)
        os.rename(staging, target)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.rename(staging, target)


def _write_dataset(spec: DatasetSpec, out_dir, spans: List[Tuple[Optional[str], Dict]],
                   extra: Dict, overwrite: bool) -> Dict:
    target, staging = _prepare_target(out_dir, spec, overwrite)
    try:
        manifest_spans = {}
        for number, (date, frames) in enumerate(spans, start=1):
            counts = {}
            for split, frame in frames.items():
                path = os.path.join(staging, f"span-{number}", split, PART_NAME)
                counts[split] = _write_csv(spec, frame, path)
            manifest_spans[str(number)] = {"date": date, "rows": counts}
        manifest = {"dataset": spec.name, "spans": manifest_spans, "tasks": list(spec.tasks),
                    "columns": list(spec.columns), "raw_dtypes": dict(spec.raw_dtypes),
                    **extra}
        with open(os.path.join(staging, MANIFEST_NAME), "w") as handle:
            json.dump(manifest, handle, indent=2, sort_keys=False)
            handle.write("\n")
        _commit(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return {"path": target, "manifest": manifest}


def _extra(source, rows, seed, options) -> Dict:
    return {"source": None if source is None else os.path.abspath(os.fspath(source)),
            "rows_per_split_limit": rows, "seed": seed, "options": dict(options)}


def build(name: str, out_dir, rows: Optional[int] = None, seed: int = 0, source=None,
          overwrite: bool = False, **options) -> Dict:
    """Writes `<out_dir>/<name>/span-1/{train,eval,test}/part-00000.csv` and the manifest.

    Returns `{"path": dataset_dir, "manifest": manifest_dict}`.
    """
    spec = get_spec(name)
    frames = load_frames(spec.name, source=source, rows=rows, seed=seed, **options)
    return _write_dataset(spec, out_dir, [(None, {s: frames[s] for s in SPLITS})],
                          _extra(source, rows, seed, options), overwrite)


def _check_days(days) -> Optional[int]:
    if days is None:
        return None
    if isinstance(days, bool) or not isinstance(days, (int, np.integer)) or days < 1:
        raise ValueError(f"days must be a positive integer, got {days!r}")
    return int(days)


def stream_days(frames: Dict[str, pd.DataFrame], days: int, seed: int, start_date: str
                ) -> List[Tuple[str, Dict[str, pd.DataFrame]]]:
    """Splits the train and eval rows of an undated dataset into `days` daily spans.

    Each row gets a day uniformly at random and, inside its day, goes to eval with
    probability 0.1 (both draws from `RandomState(seed)`); dates run from `start_date`.
    """
    try:
        start = datetime.date.fromisoformat(start_date)
    except (TypeError, ValueError):
        raise ValueError(f"start_date must be YYYY-MM-DD, got {start_date!r}") from None
    stream = pd.concat([frames["train"], frames["eval"]], ignore_index=True)
    rng = np.random.RandomState(seed)
    day_of_row = rng.randint(0, days, size=len(stream))
    is_eval = rng.uniform(size=len(stream)) < STREAM_EVAL_FRACTION
    result = []
    for day in range(days):
        in_day = day_of_row == day
        result.append(((start + datetime.timedelta(days=day)).isoformat(),
                       {"train": stream[in_day & ~is_eval].reset_index(drop=True),
                        "eval": stream[in_day & is_eval].reset_index(drop=True)}))
    return result


def split_days(name: str, out_dir, source=None, days: Optional[int] = None,
               rows: Optional[int] = None, seed: int = 0, overwrite: bool = False,
               start_date: str = DEFAULT_STREAM_START, **options) -> Dict:
    """Writes one span per day (`span-1` ... in date order, train and eval splits each).

    A user's dataset file (`name` its path): one span per UTC day of its `timestamp` column
    (unix seconds) that has rows (`days=K`: the first K), over every row of its source, each
    day's rows split train / eval by ExampleGen's hash rule on `partition_feature` with
    `DAILY_BUCKETS` (`dated_spans`). movielens-100k: one span per UTC day of the rating
    timestamp (`days=K`: the first K days), see `data.movielens.daily`. Every other built-in
    has no dates and is treated as a stream: its train and eval rows are dealt into `days`
    (default 7) days by `stream_days`, dated from `start_date`. `rows` limits each split before
    the stream is dealt (undated datasets only). The manifest maps span -> date.
    """
    spec = get_spec(name)
    days = _check_days(days)
    dataset = get_dataset(name)
    if dataset.source.loader is None:
        check_own_source(dataset, source, options)
        if rows is not None:
            raise ValueError(f"{dataset.where} is dated by its timestamp column: --rows is for "
                             f"the undated built-in datasets; use --days")
        extra = {**_extra(dataset.source_path, None, seed, {}), "timestamp": dataset.timestamp}
        return _write_dataset(spec, out_dir, dated_spans(dataset, spec, days), extra, overwrite)
    if spec.name == "movielens-100k":
        if options:
            raise ValueError(f"dataset {spec.name!r} takes no options; got {sorted(options)}")
        if rows is not None:
            raise ValueError("rows is not supported for movielens-100k daily spans; use days")
        from drgrad.data import movielens
        spans = movielens.daily(source, days=days, seed=seed)
        for date, frames in spans:
            for split, frame in frames.items():
                check_frame(spec, frame, f"{spec.name} {date} {split}")
    else:
        frames = load_frames(spec.name, source=source, rows=rows, seed=seed, **options)
        spans = stream_days(frames, days or DEFAULT_STREAM_DAYS, seed, start_date)
    extra = _extra(source, rows, seed, options)
    return _write_dataset(spec, out_dir, spans, extra, overwrite)


def _day_numbers(frame: pd.DataFrame, column: str, path: str) -> np.ndarray:
    """UTC day numbers (days since 1970-01-01) of a raw timestamp column of unix seconds."""
    if column not in frame.columns:
        raise ValueError(f"{path}: the timestamp column {column!r} is missing")
    values = frame[column]
    nulls = int(values.isna().sum())
    if nulls:
        raise ValueError(f"{path}: the timestamp column {column!r} has {nulls} null rows")
    seconds = pd.to_numeric(values, errors="coerce")
    bad = seconds.isna() | (seconds != seconds.round())
    if bad.any():
        examples = ", ".join(str(v) for v in values[bad].unique()[:3])
        raise ValueError(f"{path}: the timestamp column {column!r} has {int(bad.sum())} rows "
                         f"that are not integer unix seconds (e.g. {examples})")
    return (seconds.to_numpy(dtype=np.int64) // SECONDS_PER_DAY)


def dated_spans(dataset, spec: DatasetSpec, days: Optional[int] = None
                ) -> List[Tuple[str, Dict[str, pd.DataFrame]]]:
    """`[(date, {"train", "eval"})]` of a user's dataset file, one per UTC day of its
    `timestamp` column with rows, in date order (`days`: the first K); a day's rows are split by
    `sources.assign_splits` with `DAILY_BUCKETS`. Rows keep their nulls (the pipeline's rule)."""
    from drgrad.data import sources  # pylint: disable=g-import-not-at-top

    if dataset.timestamp is None:
        raise ValueError(f"{dataset.where} has no `timestamp` key: split-days needs the column "
                         f"of unix seconds that dates each row")
    parts, day_parts = [], []
    for _, _, path, frame in sources.iter_frames(dataset):
        day_parts.append(_day_numbers(frame, dataset.timestamp, path))
        parts.append(sources.spec_typed(frame, spec, path))
    rows, day_of_row = pd.concat(parts, ignore_index=True), np.concatenate(day_parts)
    split_of_row = sources.assign_splits(rows, spec, dataset.partition_feature, DAILY_BUCKETS)
    epoch = datetime.date(1970, 1, 1)
    spans = []
    for day in np.unique(day_of_row)[:days]:
        in_day = day_of_row == day
        spans.append(((epoch + datetime.timedelta(days=int(day))).isoformat(),
                      {split: rows[in_day & (split_of_row == split)].reset_index(drop=True)
                       for split in DAILY_SPLITS}))
    return spans


def infer_csv_types(path) -> Dict[str, str]:
    """`{column: "int" | "float" | "string"}` as CsvExampleGen infers them from a written CSV
    (the widest `csv_value_type` over each column's non-empty cells)."""
    import csv

    order = {"int": 0, "float": 1, "string": 2}
    path = readers.require_file(path, "CSV file")
    with open(path, newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        widest = [None] * len(header)
        for line, row in enumerate(reader, start=2):
            if len(row) != len(header):
                raise ValueError(f"{path}, line {line}: expected {len(header)} fields, "
                                 f"found {len(row)}")
            for index, cell in enumerate(row):
                if cell:
                    kind = csv_value_type(cell)
                    if widest[index] is None or order[kind] > order[widest[index]]:
                        widest[index] = kind
    return dict(zip(header, widest))


def read_split(dataset_dir, split: str, span: int = 1) -> pd.DataFrame:
    """Reads one written split back (for tests and tools), with the manifest's dtypes."""
    path = readers.require_file(os.path.join(os.fspath(dataset_dir), f"span-{span}", split,
                                             PART_NAME), "split file")
    return pd.read_csv(path, keep_default_na=False)

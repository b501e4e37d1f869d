"""`drgrad data init`: a draft dataset file and TFDV schema read from a sample of a user's logs.

The draft is valid as written; the user edits it (primary task first, features to drop) and
runs `drgrad data check`. How it reads the sample (the first `sample_rows / files` rows of
every file, so every span is seen):

* format: `fmt`, else the one format the files' extensions show (csv, parquet, tfrecord);
* name: `name`, else the folder's (or file's) name slugged to `[a-z0-9][a-z0-9-]*`;
* tasks: int columns holding only 0 and 1 and no null, in file order (by name for TFRecord,
  whose features have no order; none: an error, since a dataset file needs a task);
* timestamp: the first int column named `ts`, `time` or `timestamp` (or ending in `_ts`,
  `_time`, `_timestamp`) whose values are unix seconds of 2000-2099;
* features: string and other int columns categorical (ids), float columns numeric;
* personalization: categorical columns whose name ends in `id`, named `uid` or `user*` ->
  user, `item*` -> item, `author*` -> author;
* `features.dtypes` is left open: every command reads the types from the data.

The schema is TFDV's (`tfdv.infer_schema` on the sample's statistics, no feature shapes, no
string domains: an id the sample lacks is the unknown id, not an anomaly) with the presence
fraction dropped, so a null feature is no anomaly; labels keep `min_fraction: 1` (a null
label is an anomaly, for `data check` and the pipeline's ExampleValidator alike).
It is written as `schema.pbtxt` beside the dataset file (`drgrad.data.check.schema_path`).
"""
import math
import os
import re
from typing import Dict, List, Optional, Tuple

import pandas as pd

from drgrad.data import dataset_file, sources
from drgrad.data.check import schema_path, statistics, typed_frame, widen
from drgrad.data.dataset_file import FORMATS, DatasetFile

DEFAULT_SAMPLE_ROWS = 10_000
_TIMESTAMP_NAMES = ("ts", "time", "timestamp")
_UNIX_SECONDS = (946_684_800, 4_102_444_800)  # 2000-01-01 .. 2100-01-01 UTC
_PERSONALIZATION_PREFIXES = {"user": ("uid", "user"), "item": ("item",), "author": ("author",)}


def slug(text: str) -> str:
    """`text` as a dataset name: lower case, runs of other characters -> "-"."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _format_of(root: str) -> str:
    """The one data format among the files at `root` (a file or a folder)."""
    # sources keeps the file extensions of each format; a draft reads them to guess it.
    extensions = sources.EXTENSIONS
    names = ([os.path.basename(root)] if os.path.isfile(root) else
             [name for _, _, files in os.walk(root) for name in files])
    found = [fmt for fmt in FORMATS if any(name.endswith(extensions[fmt]) for name in names)]
    if len(found) != 1:
        held = f"holds {' and '.join(found)} files" if found else (
            f"holds no {', '.join(FORMATS)} files")
        raise ValueError(f"{root} {held}; give the format with --format")
    return found[0]


def _sample(root: str, fmt: str, sample_rows: int) -> Tuple[pd.DataFrame, Dict[str, str]]:
    """The sampled rows of every file, typed (one type per column over all files)."""
    layout = sources.layout(root, fmt, root)
    files = [path for splits in layout.values() for paths in splits.values() for path in paths]
    per_file = math.ceil(sample_rows / len(files))
    frames, kinds, first = [], {}, {}
    for path in files:
        frame = sources.read_file(path, fmt, rows=per_file)
        if frames and set(frame.columns) != set(frames[0].columns):
            raise ValueError(f"{path} has columns {sorted(frame.columns)} but {files[0]} has "
                             f"{sorted(frames[0].columns)}")
        for column in frame.columns:
            kind = sources.column_type(frame[column], fmt)
            if kind is None:
                continue
            agreed = widen(kind, kinds.get(column, kind))
            if agreed is None:
                raise ValueError(f"column {column!r} is {kinds[column]} in {first[column]} "
                                 f"but {kind} in {path}")
            kinds[column] = agreed
            first.setdefault(column, path)
        frames.append(frame)
    sample = pd.concat(frames, ignore_index=True)
    if fmt == "tfrecord":  # a tf.Example's features are a map: no column order to keep
        sample = sample[sorted(sample.columns)]
    untyped = [column for column in sample.columns if column not in kinds]
    if untyped:
        raise ValueError(f"{root}: columns {untyped} hold only nulls in the {len(sample):,} "
                         f"sampled rows; sample more with --rows")
    kinds = {column: kinds[column] for column in sample.columns}
    return typed_frame(sample, kinds), kinds


def _is_label(values: pd.Series) -> bool:
    return not values.isna().any() and set(values.unique()) <= {0, 1}


def _is_timestamp(column: str, values: pd.Series) -> bool:
    name = column.lower()
    named = name in _TIMESTAMP_NAMES or name.endswith(tuple(f"_{n}" for n in _TIMESTAMP_NAMES))
    low, high = _UNIX_SECONDS
    return named and bool(values.dropna().between(low, high - 1).all())


def _personalization(categorical: List[str]) -> Dict[str, List[str]]:
    ids = [column for column in categorical if column.lower().endswith("id")]
    return {key: [column for column in ids if column.lower().startswith(prefixes)]
            for key, prefixes in _PERSONALIZATION_PREFIXES.items()}


def _schema(sample: pd.DataFrame, tasks: List[str]):
    import tensorflow_data_validation as tfdv  # pylint: disable=g-import-not-at-top

    schema = tfdv.infer_schema(statistics(sample), infer_feature_shape=False,
                               max_string_domain_size=0)
    for feature in schema.feature:
        if feature.name in tasks:  # A null label is an anomaly: labels stay required.
            feature.presence.min_fraction = 1.0
        else:
            feature.presence.ClearField("min_fraction")
    return schema


def draft(path: str, fmt: Optional[str] = None, name: Optional[str] = None,
          sample_rows: int = DEFAULT_SAMPLE_ROWS):
    """`(DatasetFile, TFDV schema)` drafted from a sample of the logs at `path` (module
    docstring); the DatasetFile's `source.path` is absolute and its `path` None until written.
    """
    if fmt is not None and fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if not isinstance(sample_rows, int) or sample_rows < 1:
        raise ValueError(f"sample_rows must be a positive integer, got {sample_rows!r}")
    root = os.path.abspath(os.fspath(path))
    if not os.path.exists(root):
        raise FileNotFoundError(f"{path} does not exist")
    fmt = fmt or _format_of(root)
    if name is None:
        name = slug(os.path.basename(root).split(".")[0])
        if not name:
            raise ValueError(f"cannot make a dataset name from {path}; give one with --name")
    sample, kinds = _sample(root, fmt, sample_rows)
    tasks, categorical, numeric, timestamp = [], [], [], None
    for column, kind in kinds.items():
        if kind == "int" and _is_label(sample[column]):
            tasks.append(column)
        elif kind == "int" and timestamp is None and _is_timestamp(column, sample[column]):
            timestamp = column
        else:
            (numeric if kind == "float" else categorical).append(column)
    if not tasks:
        raise ValueError(f"{path}: no 0/1 label column in the {len(sample):,} sampled rows "
                         f"(a task is an int column holding only 0 and 1, no nulls)")
    document = {
        "name": name, "tasks": tasks,
        "features": {"categorical": categorical, "numeric": numeric},
        "personalization": _personalization(categorical),
        "timestamp": timestamp,
        "source": {"format": fmt, "path": root},
    }
    drafted = dataset_file.parse(document, f"draft of {path}").model_copy(update={"path": None})
    return drafted, _schema(sample, tasks)


def write(dataset: DatasetFile, schema, out: str, overwrite: bool = False) -> Tuple[str, str]:
    """Writes the draft to `out` and its schema beside it; returns both paths. `source.path`
    is written relative to `out`'s folder when the data lies inside it, else absolute."""
    import tensorflow_data_validation as tfdv  # pylint: disable=g-import-not-at-top

    out = os.path.abspath(os.fspath(out))
    if not out.endswith((".yaml", ".yml")):
        raise ValueError(f"{out}: a dataset file's name ends in .yaml")
    schema_file = schema_path(out)
    if not overwrite:
        for target in (out, schema_file):
            if os.path.exists(target):
                raise FileExistsError(f"{target} exists; pass --overwrite to replace it")
    folder = os.path.dirname(out)
    data = dataset.source.path
    if os.path.commonpath([folder, data]) == folder:
        data = os.path.relpath(data, folder)
    written = dataset.model_copy(update={"source": dataset.source.model_copy(
        update={"path": data})})
    os.makedirs(folder, exist_ok=True)
    with open(out, "w", encoding="utf-8") as handle:
        handle.write("# Drafted by `drgrad data init` from a sample of source.path: put the "
                     "primary task first,\n# check the features, then run `drgrad data check "
                     "--dataset THIS_FILE`.\n")
        handle.write(dataset_file.dump(written))
    tfdv.write_schema_text(schema, schema_file)
    return out, schema_file

"""`drgrad data check`: does a user's data match their dataset file and its TFDV schema?

Every file of the source (`drgrad.data.sources.spans`: span layout or flat) is read whole and
checked against the dataset file's own rules first:

* every task, feature and timestamp column the file names is present in every data file;
* labels are 0 or 1 as integers (CsvExampleGen reads "1.0" as a float): rows holding anything
  else (2, -1, 0.5, "yes") are counted, and so are null labels (a null label is an error; a
  null feature is not: the unknown id for a categorical, the train mean for a numeric);
* each column has one type (int | float | string, read as `sources.column_type` reads it)
  across files: the type `features.dtypes` gives, else the type of `schema.pbtxt`, else the
  type of the first file holding a value; an int column where float is expected is fine;
  categorical ids are int or string, numeric values int or float, labels and the timestamp int;
* no span's split (or flat source) is empty;

then TFDV: each file's statistics (`tfdv.generate_statistics_from_dataframe`, in memory, no
Beam) validated against `schema.pbtxt` beside the dataset file, when there is one
(`tfdv.validate_statistics`). A TFDV anomaly on a (file, column) the rules above already
reported is left out, so each problem gets one line. All anomalies are returned; the check
never stops at the first.
"""
import dataclasses
import os
from typing import Dict, List, Mapping, NamedTuple, Optional, Tuple

import pandas as pd

from drgrad.data import sources
from drgrad.data.dataset_file import DatasetFile

SCHEMA_FILE = "schema.pbtxt"
# Raw types a column may hold, by its role in the dataset file.
_ALLOWED = {"categorical": ("int", "string"), "numeric": ("int", "float"),
            "task": ("int",), "timestamp": ("int",)}
_SCHEMA_TYPES = {"INT": "int", "FLOAT": "float", "BYTES": "string"}
_EXAMPLES_SHOWN = 3


class Anomaly(NamedTuple):
    """One problem: the file (or split folder) it is in, the column (None for a whole file),
    what is wrong and how many rows show it (None where TFDV gives no count)."""

    file: str
    column: Optional[str]
    what: str
    rows: Optional[int] = None

    def line(self) -> str:
        """`FILE: column COL: WHAT (N rows)`, the form `drgrad data check` prints."""
        column = f" column {self.column}:" if self.column is not None else ""
        rows = f" ({self.rows:,} rows)" if self.rows is not None else ""
        return f"{self.file}:{column} {self.what}{rows}"


@dataclasses.dataclass(frozen=True)
class Report:
    """What `check` read (rows, data files, columns the dataset file names, the schema file
    used or None) and every anomaly it found."""

    rows: int
    files: int
    columns: int
    schema: Optional[str]
    anomalies: Tuple[Anomaly, ...]


def schema_path(dataset_path: str) -> str:
    """Where a dataset file's TFDV schema lives: `schema.pbtxt` in the same folder."""
    return os.path.join(os.path.dirname(os.path.abspath(dataset_path)), SCHEMA_FILE)


def widen(first: str, second: str) -> Optional[str]:
    """The one type two readings of a column agree on (int and float give float; anything else
    with string gives None: they disagree)."""
    if first == second:
        return first
    if {first, second} == {"int", "float"}:
        return "float"
    return None


def typed_frame(frame: pd.DataFrame, kinds: Mapping[str, Optional[str]]) -> pd.DataFrame:
    """The columns of `frame` as `kinds` types them (int -> nullable Int64, float -> float64,
    string -> text), the way TFDV should see them; columns typed None (all null) are left out.
    """
    typed = {}
    for column, kind in kinds.items():
        values = frame[column]
        if kind == "int":
            typed[column] = pd.to_numeric(values).astype("Int64")
        elif kind == "float":
            typed[column] = pd.to_numeric(values).astype("float64")
        elif kind == "string":
            typed[column] = values.astype(object).where(values.notna(), None)
    return pd.DataFrame(typed, index=frame.index)


def statistics(frame: pd.DataFrame):
    """TFDV statistics of a typed frame (`typed_frame`), computed in memory."""
    import tensorflow_data_validation as tfdv  # pylint: disable=g-import-not-at-top

    return tfdv.generate_statistics_from_dataframe(frame)


def _roles(dataset: DatasetFile) -> Dict[str, str]:
    roles = {column: "categorical" for column in dataset.features.categorical}
    roles.update({column: "numeric" for column in dataset.features.numeric})
    roles.update({column: "task" for column in dataset.tasks})
    if dataset.timestamp is not None:
        roles[dataset.timestamp] = "timestamp"
    return roles


def _schema_types(schema) -> Dict[str, str]:
    from tensorflow_metadata.proto.v0 import schema_pb2  # pylint: disable=g-import-not-at-top

    return {feature.name: _SCHEMA_TYPES[schema_pb2.FeatureType.Name(feature.type)]
            for feature in schema.feature
            if schema_pb2.FeatureType.Name(feature.type) in _SCHEMA_TYPES}


def _count_not(values: pd.Series, fmt: str, accepted) -> Tuple[int, List[str]]:
    """Rows of `values` (nulls excluded) whose own type or value `accepted(kind, value)`
    refuses, and a few of those values."""
    counts = values.dropna().value_counts(sort=False)
    bad = [(value, count) for value, count in counts.items()
           if not accepted(sources.column_type(pd.Series([value]), fmt), value)]
    return sum(count for _, count in bad), [str(value) for value, _ in bad[:_EXAMPLES_SHOWN]]


def _label_anomalies(path: str, column: str, values: pd.Series, fmt: str) -> List[Anomaly]:
    found = []
    nulls = int(values.isna().sum())
    if nulls:
        found.append(Anomaly(path, column, "null label", nulls))
    rows, shown = _count_not(values, fmt, lambda kind, value: kind == "int"
                             and int(value) in (0, 1))
    if rows:
        found.append(Anomaly(path, column, f"label not 0 or 1: {', '.join(shown)}", rows))
    return found


class _Types:
    """The type each column is expected to hold, and why (module docstring)."""

    def __init__(self, dataset: DatasetFile, schema_types: Mapping[str, str]):
        self.expected = {column: (kind, "features.dtypes", True)
                         for column, kind in dataset.features.dtypes.items()}
        for column, kind in schema_types.items():
            self.expected.setdefault(column, (kind, SCHEMA_FILE, True))

    def anomaly(self, path: str, column: str, role: str, kind: str, values: pd.Series,
                fmt: str) -> Optional[Anomaly]:
        if kind not in _ALLOWED[role]:
            allowed = " or ".join(_ALLOWED[role])
            rows, _ = _count_not(values, fmt, lambda value_kind, _: value_kind in _ALLOWED[role])
            return Anomaly(path, column, f"{kind} values; a {role} column holds {allowed}", rows)
        if column not in self.expected:
            self.expected[column] = (kind, f"as in {path}", False)
            return None
        expected, why, fixed = self.expected[column]
        agreed = widen(kind, expected)
        if agreed == expected or (agreed is not None and not fixed):
            if not fixed:
                self.expected[column] = (agreed, why, False)
            return None
        rows, _ = _count_not(values, fmt, lambda value_kind, _: widen(value_kind, expected)
                             == expected)
        return Anomaly(path, column, f"{kind} values, expected {expected} ({why})", rows)

    def kind_for_tfdv(self, column: str, kind: Optional[str]) -> Optional[str]:
        """An int column read where float is expected is handed to TFDV as float."""
        expected = self.expected.get(column, (None,))[0]
        return "float" if kind == "int" and expected == "float" else kind


def _tfdv_anomalies(path: str, frame_stats, schema) -> List[Anomaly]:
    import tensorflow_data_validation as tfdv  # pylint: disable=g-import-not-at-top

    result = tfdv.validate_statistics(frame_stats, schema)
    found = []
    for column, info in sorted(result.anomaly_info.items()):
        what = (info.description if info.description.startswith(info.short_description)
                else f"{info.short_description}: {info.description}")
        found.append(Anomaly(path, column, " ".join(what.split())))
    found += [Anomaly(path, None, " ".join(reason.description.split()))
              for reason in result.dataset_anomaly_info.reason]
    return found


def _file_anomalies(path: str, frame: pd.DataFrame, fmt: str, roles: Mapping[str, str],
                    types: _Types, schema) -> List[Anomaly]:
    found = [Anomaly(path, column, "missing", len(frame))
             for column in roles if column not in frame.columns]
    kinds = {column: sources.column_type(frame[column], fmt) for column in frame.columns}
    for column, role in roles.items():
        if column not in frame.columns:
            continue
        if role == "task":
            found += _label_anomalies(path, column, frame[column], fmt)
        elif kinds[column] is not None:
            wrong = types.anomaly(path, column, role, kinds[column], frame[column], fmt)
            found += [wrong] if wrong is not None else []
    if schema is not None and len(frame):
        typed = typed_frame(frame, {column: types.kind_for_tfdv(column, kind)
                                    for column, kind in kinds.items()})
        reported = {anomaly.column for anomaly in found}
        found += [anomaly for anomaly in _tfdv_anomalies(path, statistics(typed), schema)
                  if anomaly.column is None or anomaly.column not in reported]
    return found


def check(dataset: DatasetFile) -> Report:
    """Checks the data `dataset` names against it and its schema (module docstring)."""
    if not isinstance(dataset, DatasetFile):
        raise TypeError(f"check needs a DatasetFile, got {type(dataset).__name__}")
    fmt = dataset.source.format
    layout = sources.spans(dataset)
    schema_file = schema_path(dataset.path) if dataset.path is not None else None
    schema = None
    if schema_file is not None and os.path.isfile(schema_file):
        import tensorflow_data_validation as tfdv  # pylint: disable=g-import-not-at-top
        schema = tfdv.load_schema_text(schema_file)
    roles = _roles(dataset)
    types = _Types(dataset, _schema_types(schema) if schema is not None else {})
    anomalies: List[Anomaly] = []
    total_rows = total_files = 0
    for number, splits in layout.items():
        for split, files in splits.items():
            split_rows = 0
            for path in files:
                frame = sources.read_file(path, fmt)
                total_files += 1
                split_rows += len(frame)
                anomalies += _file_anomalies(path, frame, fmt, roles, types, schema)
            total_rows += split_rows
            if not split_rows:
                where = (os.path.commonpath(files) if files
                         else f"{dataset.source_path} (span {number})")
                what = "no rows" if split == "flat" else f"span {number} {split}: no rows"
                anomalies.append(Anomaly(where, None, what))
    return Report(rows=total_rows, files=total_files, columns=len(roles),
                  schema=schema_file if schema is not None else None,
                  anomalies=tuple(anomalies))

"""The dataset file: one YAML file that describes a user's logs to every `drgrad` command.

```yaml
name: shortvideo                 # [a-z0-9][a-z0-9-]*; also the served model's name
tasks: [finish, like, share]     # primary first; each a 0/1 label column; 1 to 20 tasks
task_weights: {share: 0.5}       # optional, default 1.0 each
features:
  categorical: [uid, item_id, author_id, city, channel]
  numeric: [duration]
  log_numeric: [duration]        # optional subset of numeric (log1p before the z-score)
  dtypes: {uid: string, city: int}   # optional raw types (int|float|string); the rest are
                                 # read from the data
transform:                       # optional; these are the defaults
  vocab_top_k: null              # keep the most frequent ids per column
  vocab_frequency_threshold: 0
  num_oov_buckets: 1
  embedding_dim: 8
personalization:                 # optional; the personalized gate's ids (subset of categorical)
  user: [uid]
  item: [item_id]
  author: [author_id]
partition_feature: uid           # optional: hash-split key, so one user never spans splits
timestamp: ts                    # optional: unix seconds; `drgrad data split-days` uses it
source:
  format: csv                    # csv (header row) | tfrecord (tf.Example, optionally gzip) | parquet
  path: logs/                    # relative to this file, or absolute, or gs://...
  loader: census                 # built-in datasets only: the code that reads their raw files
```

Unknown keys are errors naming the key and the file. Read with PyYAML (`safe_load`) and
validated with pydantic; `DatasetFile.spec(dtypes)` gives the `DatasetSpec` every other
module reads, once the raw types of the columns the file leaves open are known.

Nulls in the data (documented contract, applied by the preprocessing): a null in a
categorical column is the unknown id, in a numeric column the train mean; a null label is an
error.
"""
import os
import re
from typing import Dict, List, Literal, Mapping, Optional

import pydantic
import yaml

from drgrad.data.dataset_spec import PERSONALIZATION_KEYS, RAW_DTYPES, DatasetSpec

NAME_PATTERN = r"^[a-z0-9][a-z0-9-]*$"
MAX_TASKS = 20
FORMATS = ("csv", "tfrecord", "parquet")
# Built-in loaders (`source.loader`): the code that turns a built-in dataset's raw files into
# DataFrames (the census protocol, the synthetic generators, the MovieLens / ByteRec readers).
LOADERS = ("census", "synthetic", "movielens", "byterec")

_COLUMN = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")
RawDtype = Literal["int", "float", "string"]
assert set(RAW_DTYPES) == {"int", "float", "string"}


class _Section(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)


def _columns(names: List[str], what: str) -> List[str]:
    bad = [name for name in names if not _COLUMN.match(name)]
    if bad:
        raise ValueError(f"{what}: not a column name: {bad}")
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"{what}: listed twice: {duplicates}")
    return names


class Features(_Section):
    categorical: List[str] = []
    numeric: List[str] = []
    log_numeric: List[str] = []
    dtypes: Dict[str, RawDtype] = {}

    @pydantic.model_validator(mode="after")
    def _check(self):
        _columns(self.categorical + self.numeric, "features")
        if not self.categorical and not self.numeric:
            raise ValueError("features: needs at least one categorical or numeric column")
        extra = sorted(set(self.log_numeric) - set(self.numeric))
        if extra:
            raise ValueError(f"features.log_numeric must be a subset of numeric; not numeric: "
                             f"{extra}")
        unknown = sorted(set(self.dtypes) - set(self.categorical) - set(self.numeric))
        if unknown:
            raise ValueError(f"features.dtypes names columns that are not features: {unknown}")
        float_ids = sorted(c for c in self.categorical if self.dtypes.get(c) == "float")
        if float_ids:
            raise ValueError(f"features.dtypes: categorical columns must be int or string, not "
                             f"float: {float_ids}")
        text_numbers = sorted(c for c in self.numeric if self.dtypes.get(c) == "string")
        if text_numbers:
            raise ValueError(f"features.dtypes: numeric columns must be int or float: "
                             f"{text_numbers}")
        return self


class Transform(_Section):
    vocab_top_k: Optional[pydantic.PositiveInt] = None
    vocab_frequency_threshold: pydantic.NonNegativeInt = 0
    num_oov_buckets: pydantic.PositiveInt = 1
    embedding_dim: pydantic.PositiveInt = 8


class Personalization(_Section):
    user: List[str] = []
    item: List[str] = []
    author: List[str] = []


class Source(_Section):
    format: Literal["csv", "tfrecord", "parquet"] = "csv"
    path: Optional[str] = None
    loader: Optional[Literal["census", "synthetic", "movielens", "byterec"]] = None

    @pydantic.model_validator(mode="after")
    def _check(self):
        if self.path is None and self.loader is None:
            raise ValueError("source needs a path (or, for a built-in dataset, a loader)")
        return self


class DatasetFile(_Section):
    """A validated dataset file (module docstring). `path` is where it was read from."""

    name: str = pydantic.Field(pattern=NAME_PATTERN)
    tasks: List[str] = pydantic.Field(min_length=1, max_length=MAX_TASKS)
    task_weights: Dict[str, pydantic.NonNegativeFloat] = {}
    features: Features
    transform: Transform = Transform()
    personalization: Personalization = Personalization()
    partition_feature: Optional[str] = None
    timestamp: Optional[str] = None
    source: Source
    description: str = ""
    path: Optional[str] = pydantic.Field(default=None, exclude=True)

    @pydantic.model_validator(mode="after")
    def _check(self):
        _columns(self.tasks, "tasks")
        features = self.features.categorical + self.features.numeric
        overlap = sorted(set(self.tasks) & set(features))
        if overlap:
            raise ValueError(f"columns are both tasks and features: {overlap}")
        unknown = sorted(set(self.task_weights) - set(self.tasks))
        if unknown:
            raise ValueError(f"task_weights names unknown tasks: {unknown}")
        for key in PERSONALIZATION_KEYS:
            outside = sorted(set(getattr(self.personalization, key))
                             - set(self.features.categorical))
            if outside:
                raise ValueError(f"personalization.{key} must name categorical features; not "
                                 f"categorical: {outside}")
        if self.partition_feature is not None and self.partition_feature not in features:
            raise ValueError(f"partition_feature {self.partition_feature!r} is not a feature")
        if self.timestamp is not None and self.timestamp in set(features) | set(self.tasks):
            raise ValueError(f"timestamp {self.timestamp!r} must be its own column, not a "
                             f"feature or task")
        return self

    # -- what the rest of the project reads -------------------------------------------------
    @property
    def feature_columns(self) -> List[str]:
        return self.features.categorical + self.features.numeric

    @property
    def open_dtypes(self) -> List[str]:
        """Feature columns whose raw type the file leaves to the data."""
        return [c for c in self.feature_columns if c not in self.features.dtypes]

    @property
    def source_path(self) -> Optional[str]:
        """`source.path` resolved against the file's folder (URLs and absolute paths as is)."""
        path = self.source.path
        if path is None or "://" in path or os.path.isabs(path) or self.path is None:
            return path
        return os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(self.path)), path))

    def spec(self, dtypes: Optional[Mapping[str, str]] = None) -> DatasetSpec:
        """The `DatasetSpec` of this file; `dtypes` gives the raw types the file leaves open
        (read from the data), the file's own `features.dtypes` win."""
        raw = {**dict(dtypes or {}), **self.features.dtypes}
        missing = [c for c in self.feature_columns if c not in raw]
        if missing:
            raise ValueError(f"{self.where}: raw types unknown for {missing}: give them in "
                             f"features.dtypes or read them from the data")
        return DatasetSpec(
            name=self.name, tasks=tuple(self.tasks),
            categorical=tuple(self.features.categorical), numeric=tuple(self.features.numeric),
            log_numeric=tuple(self.features.log_numeric),
            raw_dtypes={c: raw[c] for c in self.feature_columns},
            personalization={key: tuple(getattr(self.personalization, key))
                             for key in PERSONALIZATION_KEYS},
            partition_feature=self.partition_feature, description=self.description)

    @property
    def where(self) -> str:
        return self.path or f"dataset {self.name!r}"


def is_dataset_file(value: str) -> bool:
    """`--dataset` convention: a value ending in .yaml/.yml or holding a path separator is a
    file; anything else is a built-in name."""
    return value.endswith((".yaml", ".yml")) or os.sep in value or "/" in value


def _message(error: pydantic.ValidationError) -> str:
    parts = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"])
        if item["type"] == "extra_forbidden":
            parts.append(f"unknown key {where!r}")
        else:
            text = item["msg"].removeprefix("Value error, ")
            parts.append(f"{where}: {text}" if where else text)
    return "; ".join(parts)


def parse(document: Mapping, where: str) -> DatasetFile:
    """Validates a dataset-file mapping; ValueError naming `where` and each bad key."""
    if not isinstance(document, Mapping):
        raise ValueError(f"{where}: a dataset file is a YAML mapping of keys, got "
                         f"{type(document).__name__}")
    try:
        return DatasetFile(**dict(document), path=where)
    except pydantic.ValidationError as error:
        raise ValueError(f"{where}: {_message(error)}") from None


def load(path: str) -> DatasetFile:
    """Reads and validates a dataset file (local path or any `tf.io.gfile` URL)."""
    path = os.fspath(path)
    if "://" in path:
        import tensorflow as tf  # pylint: disable=g-import-not-at-top
        if not tf.io.gfile.exists(path):
            raise FileNotFoundError(f"dataset file {path} not found")
        with tf.io.gfile.GFile(path) as handle:
            text = handle.read()
    else:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"dataset file {path} not found")
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ValueError(f"{path}: not valid YAML: {error}") from None
    return parse(document, path)


def dump(dataset: DatasetFile) -> str:
    """The YAML text of a dataset file (keys in the documented order)."""
    document = dataset.model_dump(exclude_defaults=False)
    if not document.get("description"):
        document.pop("description", None)
    return yaml.safe_dump(document, sort_keys=False, default_flow_style=None)

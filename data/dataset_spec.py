"""`DatasetSpec`: which columns are features, labels and personalization ids, and their types.

A `DatasetSpec` is the single description of a dataset that the CSV writer, the standalone
`FeaturePreprocessor`, the TFX `preprocessing_fn` and the serving export all read
(docs/ARCHITECTURE.md §1). It is what a dataset file (`drgrad.data.dataset_file`) becomes once
every raw type is known. It holds names and types only, never data, and imports nothing
heavy: `raw_feature_spec()` imports TensorFlow on first call.
"""
import dataclasses
from typing import Dict, Mapping, Optional, Sequence, Tuple

RAW_DTYPES = ("int", "float", "string")
PERSONALIZATION_KEYS = ("user", "item", "author")


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """Names and types of one dataset's columns.

    Attributes:
      name: the dataset's name (a built-in's `drgrad data build NAME`; the served model name).
      tasks: task names, primary task first; each is a 0/1 integer label column in the CSV.
      categorical: columns turned into vocabulary ids (id 0 = unknown).
      numeric: columns z-scored.
      log_numeric: subset of `numeric` that gets `log1p` before the z-score.
      raw_dtypes: `{column: "int" | "float" | "string"}` for every feature column: the type
        TFX `CsvExampleGen` infers from the written CSV and the type a serving client sends.
      personalization: `{"user": [...], "item": [...], "author": [...]}`, column names, each a
        subset of `categorical` (empty lists where a dataset has no such ids).
      partition_feature: column to hash-partition examples on (e.g. the user id), or None.
      description: one line for `README`s and `--help`.
    """

    name: str
    tasks: Tuple[str, ...]
    categorical: Tuple[str, ...]
    numeric: Tuple[str, ...]
    log_numeric: Tuple[str, ...] = ()
    raw_dtypes: Mapping[str, str] = dataclasses.field(default_factory=dict)
    personalization: Mapping[str, Tuple[str, ...]] = dataclasses.field(default_factory=dict)
    partition_feature: Optional[str] = None
    description: str = ""

    def __post_init__(self):
        # Normalise sequences to tuples so specs are hashable-ish and JSON round trips compare.
        object.__setattr__(self, "tasks", tuple(self.tasks))
        object.__setattr__(self, "categorical", tuple(self.categorical))
        object.__setattr__(self, "numeric", tuple(self.numeric))
        object.__setattr__(self, "log_numeric", tuple(self.log_numeric))
        object.__setattr__(self, "raw_dtypes", dict(self.raw_dtypes))
        personalization = {key: tuple(self.personalization.get(key, ()))
                           for key in PERSONALIZATION_KEYS}
        unknown_keys = set(self.personalization) - set(PERSONALIZATION_KEYS)
        if unknown_keys:
            raise ValueError(f"DatasetSpec {self.name!r}: unknown personalization keys "
                             f"{sorted(unknown_keys)}; expected {list(PERSONALIZATION_KEYS)}")
        object.__setattr__(self, "personalization", personalization)
        self._validate()

    def _validate(self):
        where = f"DatasetSpec {self.name!r}"
        if not self.name:
            raise ValueError("DatasetSpec needs a name")
        if not self.tasks:
            raise ValueError(f"{where}: needs at least one task")
        features = self.categorical + self.numeric
        columns = features + self.tasks
        duplicates = sorted({c for c in columns if columns.count(c) > 1})
        if duplicates:
            raise ValueError(f"{where}: columns listed twice (feature/task overlap?): {duplicates}")
        if not features:
            raise ValueError(f"{where}: needs at least one feature")
        extra_log = sorted(set(self.log_numeric) - set(self.numeric))
        if extra_log:
            raise ValueError(f"{where}: log_numeric must be a subset of numeric; not numeric: "
                             f"{extra_log}")
        if set(self.raw_dtypes) != set(features):
            missing = sorted(set(features) - set(self.raw_dtypes))
            extra = sorted(set(self.raw_dtypes) - set(features))
            raise ValueError(f"{where}: raw_dtypes must name every feature exactly; "
                             f"missing {missing}, extra {extra}")
        bad = {c: t for c, t in self.raw_dtypes.items() if t not in RAW_DTYPES}
        if bad:
            raise ValueError(f"{where}: raw_dtypes must be one of {RAW_DTYPES}; got {bad}")
        float_categorical = [c for c in self.categorical if self.raw_dtypes[c] == "float"]
        if float_categorical:
            raise ValueError(f"{where}: categorical columns must be int or string, not float: "
                             f"{float_categorical}")
        string_numeric = [c for c in self.numeric if self.raw_dtypes[c] == "string"]
        if string_numeric:
            raise ValueError(f"{where}: numeric columns must be int or float: {string_numeric}")
        for key, names in self.personalization.items():
            outside = sorted(set(names) - set(self.categorical))
            if outside:
                raise ValueError(f"{where}: personalization[{key!r}] must be categorical "
                                 f"columns; not categorical: {outside}")
        if self.partition_feature is not None and self.partition_feature not in features:
            raise ValueError(f"{where}: partition_feature {self.partition_feature!r} is not a "
                             f"feature")

    @property
    def primary_task(self) -> str:
        return self.tasks[0]

    @property
    def features(self) -> Tuple[str, ...]:
        """Feature columns in CSV order: categorical first, then numeric."""
        return self.categorical + self.numeric

    @property
    def columns(self) -> Tuple[str, ...]:
        """All CSV columns in order: features, then one label column per task."""
        return self.features + self.tasks

    def raw_feature_spec(self) -> Dict[str, object]:
        """`{column: tf.io.FixedLenFeature([], dtype)}` for the features (labels excluded)."""
        import tensorflow as tf  # Deferred: specs are read by the CLI before TF is needed.

        dtypes = {"int": tf.int64, "float": tf.float32, "string": tf.string}
        return {column: tf.io.FixedLenFeature([], dtypes[self.raw_dtypes[column]])
                for column in self.features}

    def to_dict(self) -> Dict[str, object]:
        """JSON-ready dict; `DatasetSpec.from_dict(spec.to_dict()) == spec`."""
        return {
            "name": self.name,
            "tasks": list(self.tasks),
            "categorical": list(self.categorical),
            "numeric": list(self.numeric),
            "log_numeric": list(self.log_numeric),
            "raw_dtypes": dict(self.raw_dtypes),
            "personalization": {k: list(v) for k, v in self.personalization.items()},
            "partition_feature": self.partition_feature,
            "description": self.description,
        }

    @classmethod
    def from_dict(cls, config: Mapping[str, object]) -> "DatasetSpec":
        return cls(**dict(config))

"""Dataset specifications: which columns are features, labels and personalization ids.

A `DatasetSpec` is the single description of a dataset that the CSV writer, the standalone
`FeaturePreprocessor`, the TFX `preprocessing_fn` and the serving export all read
(docs/ARCHITECTURE.md §1). It holds names and types only, never data, and imports nothing
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
      name: registry name (`drgrad data build NAME`).
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


# --- census-income (UCI KDD), the MMoE / DRGrad public benchmark -----------------------------
# Raw file columns in order (42, no header); short names as in keras-mmoe / DeepCTR.
CENSUS_RAW_COLUMNS = (
    "age", "class_worker", "det_ind_code", "det_occ_code", "education", "wage_per_hour",
    "hs_college", "marital_stat", "major_ind_code", "major_occ_code", "race", "hisp_origin",
    "sex", "union_member", "unemp_reason", "full_or_part_emp", "capital_gains",
    "capital_losses", "stock_dividends", "tax_filer_stat", "region_prev_res",
    "state_prev_res", "det_hh_fam_stat", "det_hh_summ", "instance_weight", "mig_chg_msa",
    "mig_chg_reg", "mig_move_reg", "mig_same", "mig_prev_sunbelt", "num_emp",
    "fam_under_18", "country_father", "country_mother", "country_self", "citizenship",
    "own_or_self", "vet_question", "vet_benefits", "weeks_worked", "year", "income_50k",
)
CENSUS_NUMERIC = ("age", "wage_per_hour", "capital_gains", "capital_losses", "stock_dividends",
                  "num_emp", "weeks_worked")
CENSUS_LOG_NUMERIC = ("wage_per_hour", "capital_gains", "capital_losses", "stock_dividends")
# Nominal attributes written as integer codes in the UCI files; CsvExampleGen infers INT.
CENSUS_INT_CATEGORICAL = ("det_ind_code", "det_occ_code", "own_or_self", "vet_benefits", "year")
_CENSUS_DROPPED = ("instance_weight", "marital_stat", "income_50k")
CENSUS_CATEGORICAL = tuple(c for c in CENSUS_RAW_COLUMNS
                           if c not in CENSUS_NUMERIC and c not in _CENSUS_DROPPED)

CENSUS = DatasetSpec(
    name="census-income",
    tasks=("income", "marital"),
    categorical=CENSUS_CATEGORICAL,
    numeric=CENSUS_NUMERIC,
    log_numeric=CENSUS_LOG_NUMERIC,
    # Every census value is an integer or a text label; the 7 continuous columns are integers.
    raw_dtypes={**{c: ("int" if c in CENSUS_INT_CATEGORICAL else "string")
                   for c in CENSUS_CATEGORICAL},
                **{c: "int" for c in CENSUS_NUMERIC}},
    personalization={},
    partition_feature=None,
    description="UCI Census-Income (KDD): income > 50K (primary) and never married",
)

# --- synthetic (DRGrad paper, "Artificially Synthesized Dataset") ------------------------------
SYNTHETIC_NUM_SPARSE = 6
SYNTHETIC_NUM_DENSE = 26
SYNTHETIC_SPARSE = tuple(f"sparse_{i}" for i in range(SYNTHETIC_NUM_SPARSE))
SYNTHETIC_DENSE = tuple(f"dense_{i}" for i in range(SYNTHETIC_NUM_DENSE))

SYNTHETIC = DatasetSpec(
    name="synthetic",
    tasks=("label1", "label2"),
    categorical=SYNTHETIC_SPARSE,
    numeric=SYNTHETIC_DENSE,
    raw_dtypes={**{c: "int" for c in SYNTHETIC_SPARSE}, **{c: "float" for c in SYNTHETIC_DENSE}},
    personalization={},
    partition_feature=None,
    description="DRGrad synthetic set: 32 features (6 sparse), two tasks at angle theta",
)

# --- MovieLens 100K (research licence: read from a user-given path, never shipped) --------------
MOVIELENS = DatasetSpec(
    name="movielens-100k",
    tasks=("like", "love", "dislike"),
    categorical=("user_id", "item_id", "gender", "occupation", "zip_prefix", "primary_genre"),
    numeric=("age", "release_year"),
    raw_dtypes={"user_id": "int", "item_id": "int", "gender": "string", "occupation": "string",
                "zip_prefix": "string", "primary_genre": "string", "age": "int",
                "release_year": "int"},
    personalization={"user": ("user_id", "gender", "occupation", "zip_prefix"),
                     "item": ("item_id", "primary_genre"),
                     "author": ()},
    partition_feature="user_id",
    description="MovieLens 100K ratings: like (>= 4, primary), love (= 5), dislike (<= 2)",
)

# --- ByteRec / ICME 2019 Douyin sample (tests of the user/item/author path only) ----------------
BYTEREC_RAW_COLUMNS = ("uid", "user_city", "item_id", "author_id", "item_city", "channel",
                       "finish", "like", "music_id", "device", "time", "duration_time")
BYTEREC = DatasetSpec(
    name="byterec",
    tasks=("finish", "like"),
    categorical=("uid", "user_city", "device", "item_id", "item_city", "channel", "music_id",
                 "author_id"),
    numeric=("duration_time",),
    raw_dtypes={"uid": "int", "user_city": "int", "device": "int", "item_id": "int",
                "item_city": "int", "channel": "int", "music_id": "int", "author_id": "int",
                "duration_time": "int"},
    personalization={"user": ("uid", "user_city", "device"),
                     "item": ("item_id", "item_city", "channel", "music_id"),
                     "author": ("author_id",)},
    partition_feature="uid",
    description="ICME 2019 Douyin sample (1,000 rows): finish (primary) and like",
)

SPECS: Dict[str, DatasetSpec] = {spec.name: spec for spec in (CENSUS, SYNTHETIC, MOVIELENS,
                                                               BYTEREC)}
# Accepted alternative spellings on the command line.
ALIASES = {"census": "census-income", "movielens": "movielens-100k", "ml-100k": "movielens-100k"}


def get_spec(name: str) -> DatasetSpec:
    """Returns the registered spec for `name` (or an alias); ValueError for unknown names."""
    if not isinstance(name, str):
        raise TypeError(f"dataset name must be a string, got {type(name).__name__}")
    key = ALIASES.get(name, name)
    if key not in SPECS:
        raise ValueError(f"unknown dataset {name!r}; known datasets: {', '.join(sorted(SPECS))}")
    return SPECS[key]


def dataset_names() -> Sequence[str]:
    return tuple(sorted(SPECS))

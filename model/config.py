"""Plain, JSON-serializable descriptions of a model: `FeatureConfig` and `ModelConfig`.

`ModelConfig` is written next to every trained model (``model_config.json``) so warm start and
export can rebuild exactly the same network (docs/ARCHITECTURE.md §2). No TensorFlow import here.
"""
import dataclasses
import json
import re
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")


def _check_name(kind, name):
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"{kind} name must match {_NAME.pattern}, got {name!r}")


@dataclasses.dataclass(frozen=True)
class FeatureConfig:
    """The model inputs (after Transform / `FeaturePreprocessor`).

    Attributes:
      categorical: ``{raw column name: vocabulary size}``; inputs are int64 ids in
        ``[0, vocab_size)``, shape ``[B]`` (id 0 = unknown).
      numeric: names of float32 ``[B]`` inputs (already z-scored).
      personalization: categorical names whose embeddings feed the personalized gate (PPNet):
        user / item / author ids. Empty: no PPNet ("DRGrad w/o PPNet").
      embedding_dim: embedding width of every categorical feature.
    """

    categorical: Mapping[str, int] = dataclasses.field(default_factory=dict)
    numeric: Tuple[str, ...] = ()
    personalization: Tuple[str, ...] = ()
    embedding_dim: int = 8

    def __post_init__(self):
        if not isinstance(self.categorical, Mapping):
            raise ValueError(f"categorical must be a mapping name -> vocab size, got "
                             f"{type(self.categorical).__name__}")
        # Canonical (sorted) order: embedding layers are created in this order, so a config
        # read back from JSON (keys sorted) must rebuild exactly the same variable layout.
        categorical = {}
        for name, size in sorted(self.categorical.items()):
            _check_name("feature", name)
            if isinstance(size, bool) or not isinstance(size, int) or size < 1:
                raise ValueError(f"vocab size of {name!r} must be a positive int, got {size!r}")
            categorical[name] = int(size)
        object.__setattr__(self, "categorical", categorical)
        for field in ("numeric", "personalization"):
            value = getattr(self, field)
            if isinstance(value, str):
                raise ValueError(f"{field} must be a sequence of names, not a string")
            value = tuple(value)
            for name in value:
                _check_name("feature", name)
            if len(set(value)) != len(value):
                raise ValueError(f"{field} has duplicate names: {list(value)}")
            object.__setattr__(self, field, value)
        overlap = set(self.numeric) & set(categorical)
        if overlap:
            raise ValueError(f"features both categorical and numeric: {sorted(overlap)}")
        missing = [name for name in self.personalization if name not in categorical]
        if missing:
            raise ValueError(f"personalization features must be categorical: {missing}")
        if not categorical and not self.numeric:
            raise ValueError("FeatureConfig needs at least one categorical or numeric feature")
        if isinstance(self.embedding_dim, bool) or not isinstance(self.embedding_dim, int) or (
                self.embedding_dim < 1):
            raise ValueError(f"embedding_dim must be a positive int, got {self.embedding_dim!r}")

    @property
    def feature_names(self):
        return tuple(self.categorical) + tuple(self.numeric)

    def to_dict(self):
        return {"categorical": dict(self.categorical), "numeric": list(self.numeric),
                "personalization": list(self.personalization),
                "embedding_dim": self.embedding_dim}

    @classmethod
    def from_dict(cls, config):
        unknown = set(config) - {"categorical", "numeric", "personalization", "embedding_dim"}
        if unknown:
            raise ValueError(f"unknown FeatureConfig keys: {sorted(unknown)}")
        return cls(**config)

    def without_personalization(self):
        return dataclasses.replace(self, personalization=())


# Paper Table 5 ablations, one switch each: preset -> (backbone, strategy, strategy args,
# whether PPNet is kept). PPNet needs personalization features; census has none, so there
# `drgrad` and `drgrad_no_ppnet` are the same model.
PRESETS: Dict[str, Dict[str, Any]] = {
    "mmoe": {"backbone": "mmoe", "strategy": "equal_weight", "strategy_args": {},
             "ppnet": False},
    "split_mmoe": {"backbone": "split_mmoe", "strategy": "equal_weight", "strategy_args": {},
                   "ppnet": False},
    "split_mmoe_router": {"backbone": "split_mmoe", "strategy": "drgrad",
                          "strategy_args": {"router": True, "updater": "none"},
                          "ppnet": False},
    "drgrad_no_ppnet": {"backbone": "split_mmoe", "strategy": "drgrad", "strategy_args": {},
                        "ppnet": False},
    "drgrad": {"backbone": "split_mmoe", "strategy": "drgrad", "strategy_args": {},
               "ppnet": True},
}


@dataclasses.dataclass
class ModelConfig:
    """Everything needed to rebuild a model: `build_model(**config.build_kwargs())`."""

    feature_config: FeatureConfig
    tasks: Tuple[str, ...]
    backbone: str = "split_mmoe"
    strategy: str = "drgrad"
    backbone_args: Dict[str, Any] = dataclasses.field(default_factory=dict)
    strategy_args: Dict[str, Any] = dataclasses.field(default_factory=dict)
    task_weights: Optional[Dict[str, float]] = None
    learning_rate: float = 1e-3
    seed: Optional[int] = None
    positive_weights: Optional[Dict[str, float]] = None

    def __post_init__(self):
        if isinstance(self.feature_config, Mapping):
            self.feature_config = FeatureConfig.from_dict(dict(self.feature_config))
        if not isinstance(self.feature_config, FeatureConfig):
            raise ValueError("feature_config must be a FeatureConfig")
        self.tasks = check_tasks(self.tasks)
        self.backbone_args = dict(self.backbone_args or {})
        self.strategy_args = dict(self.strategy_args or {})
        if self.task_weights is not None:
            self.task_weights = {k: float(v) for k, v in dict(self.task_weights).items()}
        if self.positive_weights is not None:
            self.positive_weights = {k: float(v) for k, v in dict(self.positive_weights).items()}

    def build_kwargs(self):
        return {"feature_config": self.feature_config, "tasks": list(self.tasks),
                "backbone": self.backbone, "strategy": self.strategy,
                "backbone_args": dict(self.backbone_args),
                "strategy_args": dict(self.strategy_args), "task_weights": self.task_weights,
                "learning_rate": self.learning_rate, "seed": self.seed,
                "positive_weights": self.positive_weights}

    def to_dict(self):
        return {"feature_config": self.feature_config.to_dict(), "tasks": list(self.tasks),
                "backbone": self.backbone, "strategy": self.strategy,
                "backbone_args": dict(self.backbone_args),
                "strategy_args": dict(self.strategy_args), "task_weights": self.task_weights,
                "learning_rate": self.learning_rate, "seed": self.seed,
                "positive_weights": self.positive_weights}

    @classmethod
    def from_dict(cls, config):
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(config) - known
        if unknown:
            raise ValueError(f"unknown ModelConfig keys: {sorted(unknown)}")
        return cls(**config)

    def to_json(self):
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text):
        return cls.from_dict(json.loads(text))

    def save(self, path):
        with open(path, "w") as f:
            f.write(self.to_json() + "\n")

    @classmethod
    def load(cls, path):
        with open(path) as f:
            return cls.from_json(f.read())


def check_feature_config(feature_config) -> "FeatureConfig":
    """A `FeatureConfig` (or its dict form) as a `FeatureConfig`; anything else is an error."""
    if isinstance(feature_config, dict):
        feature_config = FeatureConfig.from_dict(feature_config)
    if not isinstance(feature_config, FeatureConfig):
        raise ValueError(f"feature_config must be a FeatureConfig, got {feature_config!r}")
    return feature_config


def check_tasks(tasks: Sequence[str]) -> Tuple[str, ...]:
    """Validates task names (primary first) and returns them as a tuple."""
    if isinstance(tasks, str) or not tasks:
        raise ValueError(f"tasks must be a non-empty sequence of names, got {tasks!r}")
    tasks = tuple(tasks)
    for task in tasks:
        _check_name("task", task)
    if len(set(tasks)) != len(tasks):
        raise ValueError(f"duplicate task names: {list(tasks)}")
    return tasks


def resolve_preset(preset, feature_config):
    """(backbone, strategy, strategy_args, feature_config) for a paper Table 5 preset."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; known: {', '.join(PRESETS)}")
    spec = PRESETS[preset]
    if not spec["ppnet"]:
        feature_config = feature_config.without_personalization()
    return spec["backbone"], spec["strategy"], dict(spec["strategy_args"]), feature_config

"""The knobs of `drgrad data simulate` (`Config`, `Task`), its presets and `--set` parsing.

The model the knobs drive is `drgrad.data.simulator`'s docstring; data/README.md lists them.
"""
import dataclasses
import datetime
import math
import typing
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

MAX_TASKS = 8
# The log's columns: features, the timestamp, then one 0/1 column per task.
CATEGORICAL = ("user_id", "item_id", "author_id", "hour", "device", "city")
NUMERIC = ("duration",)
DTYPES = {"user_id": "int", "item_id": "int", "author_id": "int", "hour": "int",
          "device": "string", "city": "string", "duration": "float"}
TIMESTAMP = "ts"


@dataclasses.dataclass(frozen=True)
class Task:
    """One label column. `cos`/`noise` None: the config's; `parent`: nested in that task."""

    name: str
    rate: float
    cos: Optional[float] = None
    noise: Optional[float] = None
    parent: Optional[str] = None
    opposes: bool = False
    duration_effect: float = 0.0


@dataclasses.dataclass(frozen=True)
class Config:
    """Every knob of the simulation (module docstring); `tasks[0]` is the primary task."""

    tasks: Tuple[Task, ...]
    conflict_task: Optional[str] = None
    conflict_user_fraction: float = 0.1
    days: int = 7
    rows_per_day: int = 100_000
    start_date: str = "2024-01-01"
    users: int = 100_000
    items: int = 20_000
    authors: int = 2_000
    zipf_users: float = 0.9
    zipf_items: float = 1.1
    zipf_authors: float = 1.0
    new_user_share: float = 0.05
    new_item_share: float = 0.1
    drift: float = 0.05
    factor_dim: int = 8
    task_factor_dim: int = 4
    author_share: float = 0.3
    cos: float = 0.5
    noise: float = 0.3
    signal_scale: float = 1.5
    context_scale: float = 0.3
    eval_fraction: float = 0.1
    test_fraction: float = 0.1
    seed: int = 0

    def __post_init__(self):
        object.__setattr__(self, "tasks", tuple(self.tasks))
        _check(self)

    @property
    def task_names(self) -> List[str]:
        return [task.name for task in self.tasks]

    def task_cos(self) -> np.ndarray:
        """c_t of every task for an ordinary user (primary: 1)."""
        values = [1.0]
        for task in self.tasks[1:]:
            value = self.cos if task.cos is None else task.cos
            values.append(-value if task.opposes else value)
        return np.array(values)

    def task_noise(self) -> np.ndarray:
        return np.array([self.noise if t.noise is None else t.noise for t in self.tasks])

    def to_dict(self) -> Dict:
        document = dataclasses.asdict(self)
        document["tasks"] = [dataclasses.asdict(task) for task in self.tasks]
        return document

    @classmethod
    def from_dict(cls, document: Mapping) -> "Config":
        document = dict(document)
        unknown = sorted(set(document) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(f"unknown simulator knobs {unknown}")
        document["tasks"] = tuple(Task(**task) for task in document.get("tasks", ()))
        return cls(**document)


def _check(config: Config) -> None:
    # (name, minimum, maximum, maximum included) of the scalar knobs.
    ranges = {"conflict_user_fraction": (0, 1, True), "new_user_share": (0, 1, False),
              "new_item_share": (0, 1, False), "author_share": (0, 1, True),
              "cos": (-1, 1, True), "eval_fraction": (0, 1, False),
              "test_fraction": (0, 1, False), "drift": (0, math.pi, True),
              "noise": (0, math.inf, False), "signal_scale": (0, math.inf, False),
              "context_scale": (0, math.inf, False), "zipf_users": (0, math.inf, False),
              "zipf_items": (0, math.inf, False), "zipf_authors": (0, math.inf, False)}
    for name, (low, high, closed) in ranges.items():
        value = getattr(config, name)
        if not (low <= value <= high if closed else low <= value < high):
            raise ValueError(f"simulator: {name} must be in [{low}, {high}{']' if closed else ')'}"
                             f", got {value!r}")
    if config.eval_fraction + config.test_fraction >= 1:
        raise ValueError(f"simulator: eval_fraction + test_fraction must be < 1 (train keeps the "
                         f"rest), got {config.eval_fraction} + {config.test_fraction}")
    for name in ("days", "rows_per_day", "users", "items", "authors", "factor_dim",
                 "task_factor_dim"):
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"simulator: {name} must be a positive integer, got {value!r}")
    try:
        datetime.date.fromisoformat(config.start_date)
    except (TypeError, ValueError):
        raise ValueError(f"simulator: start_date must be YYYY-MM-DD, got "
                         f"{config.start_date!r}") from None
    names = config.task_names
    if not 1 <= len(names) <= MAX_TASKS:
        raise ValueError(f"simulator: 1 to {MAX_TASKS} tasks, got {len(names)}")
    clashes = sorted(set(names) & (set(DTYPES) | {TIMESTAMP}))
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if clashes or duplicates:
        raise ValueError(f"simulator: task names must be distinct and not feature names; "
                         f"got {clashes + duplicates}")
    rates = {}
    for task in config.tasks:
        if not 0 < task.rate < 1:
            raise ValueError(f"simulator: task {task.name!r}: rate must be in (0, 1), got "
                             f"{task.rate!r}")
        if task.cos is not None and not -1 <= task.cos <= 1:
            raise ValueError(f"simulator: task {task.name!r}: cos must be in [-1, 1]")
        if task.noise is not None and not 0 <= task.noise < math.inf:
            raise ValueError(f"simulator: task {task.name!r}: noise must be >= 0")
        if task.parent is not None:
            if task.parent not in rates:
                raise ValueError(f"simulator: task {task.name!r}: parent {task.parent!r} must "
                                 f"be a task listed before it")
            if task.rate >= rates[task.parent]:
                raise ValueError(f"simulator: task {task.name!r} is nested in {task.parent!r}, "
                                 f"so its rate must be below {rates[task.parent]}")
        rates[task.name] = task.rate
    if config.conflict_task is not None and config.conflict_task not in names[1:]:
        raise ValueError(f"simulator: conflict_task must be an auxiliary task "
                         f"({', '.join(names[1:]) or 'none'}), got {config.conflict_task!r}")


PRESETS = {
    # Short-video feed: every behaviour is logged on the impression (no nesting); dislike
    # runs against click for everyone, like against click for the conflict users.
    "default": Config(tasks=(
        Task("click", 0.05), Task("like", 0.02), Task("finish", 0.3, duration_effect=-0.8),
        Task("share", 0.005), Task("follow", 0.003), Task("dislike", 0.01, opposes=True)),
        conflict_task="like"),
    # GradCraft's Kuaishou tasks (Bai et al., KDD 2024): three dense nested view tasks and
    # three sparse interactions; the rates are ours (dense vs sparse), not the paper's.
    "gradcraft": Config(tasks=(
        Task("EffectiveView", 0.5),
        Task("LongView", 0.25, parent="EffectiveView", duration_effect=0.3),
        Task("CompleteView", 0.12, parent="LongView", duration_effect=-0.8),
        Task("Like", 0.03), Task("Follow", 0.005), Task("Forward", 0.004)),
        conflict_task="Like"),
}


def _coerce(kind, text: str, key: str):
    """`text` as the knob's type (`Optional[X]` also takes "none")."""
    if typing.get_origin(kind) is typing.Union:
        if text.lower() in ("none", "null"):
            return None
        kind = next(arg for arg in typing.get_args(kind) if arg is not type(None))
    if kind is bool:
        if text.lower() not in ("true", "false"):
            raise ValueError(f"--set {key}: expected true or false, got {text!r}")
        return text.lower() == "true"
    try:
        return kind(text)
    except ValueError:
        raise ValueError(f"--set {key}: expected {kind.__name__}, got {text!r}") from None


def configure(preset: str = "default", knobs: Optional[Mapping] = None,
              settings: Sequence[str] = ()) -> Config:
    """The preset's `Config` with typed `knobs` (flags) and then `settings` applied.

    Settings are `KEY=VALUE` strings: a knob (`zipf_items=1.2`), `tasks=a,b` (keep and order
    tasks), or `tasks.NAME.FIELD=VALUE` (a task's field; `tasks.NAME.rate=R` adds a new task).
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; presets: {', '.join(sorted(PRESETS))}")
    document = PRESETS[preset].to_dict()
    document.update({key: value for key, value in (knobs or {}).items() if value is not None})
    knob_types = {f.name: f.type for f in dataclasses.fields(Config)}
    task_types = {f.name: f.type for f in dataclasses.fields(Task)}
    for setting in settings:
        key, sep, text = setting.partition("=")
        key = key.strip()
        if not sep:
            raise ValueError(f"--set expects KEY=VALUE, got {setting!r}")
        tasks = {task["name"]: task for task in document["tasks"]}
        if key == "tasks":
            wanted = [name.strip() for name in text.split(",") if name.strip()]
            missing = [name for name in wanted if name not in tasks]
            if missing:
                raise ValueError(f"--set tasks: unknown tasks {missing}; known: {list(tasks)}")
            document["tasks"] = [tasks[name] for name in wanted]
            if document["conflict_task"] not in wanted[1:]:
                document["conflict_task"] = None  # It was dropped (or is now the primary).
        elif key.startswith("tasks."):
            name, _, field = key[len("tasks."):].rpartition(".")
            if field not in task_types or field == "name" or not name:
                raise ValueError(f"--set {key}: expected tasks.NAME.FIELD with FIELD one of "
                                 f"{sorted(set(task_types) - {'name'})}")
            if name not in tasks:
                if field != "rate":
                    raise ValueError(f"--set {key}: no task {name!r}; add it with "
                                     f"tasks.{name}.rate=R first")
                document["tasks"].append(dataclasses.asdict(Task(name, 0.5)))
                tasks = {task["name"]: task for task in document["tasks"]}
            tasks[name][field] = _coerce(task_types[field], text, key)
        elif key in knob_types:
            document[key] = _coerce(knob_types[key], text, key)
        else:
            raise ValueError(f"--set {key}: unknown knob; knobs: "
                             f"{', '.join(sorted(knob_types))}")
    return Config.from_dict(document)

"""Benchmark cells and named grids (`drgrad bench --grid ...`).

A *cell* is one model configuration; the harness trains it once per seed. A grid is a named
preset from `GRIDS` or a comma-separated list whose items are

* a `GRIDS` name (expands to its cells),
* a `model.config.PRESETS` name (the paper's Table 5 ablations: ``mmoe``, ``split_mmoe``,
  ``split_mmoe_router``, ``drgrad_no_ppnet``, ``drgrad``), or
* ``backbone:strategy[:json]`` where ``json`` is an object of strategy arguments, optionally
  with a nested ``"backbone_args"`` object, e.g.
  ``split_mmoe:drgrad:{"variant": "paired", "backbone_args": {"num_experts": 4}}``.

Cells have a *role*: ``baseline`` (what DRGrad is tested against), ``ours`` (DRGrad and its
ablations) or ``single_task`` (trained on one task alone: the other tasks' loss weights are 0,
which is the same gradient as a single-task network of that backbone). Split-MMoE cells run the
``drgrad`` strategy with ``router=False, updater="none"``: exactly the plain summed-loss update
of ``equal_weight`` (μ stays ½, ½) but with the router's statistics (ξ, λ, norms) logged, so the
paper's Figs. 4–7 can be drawn for Split-MMoE and DRGrad alike.

A cell may flip a share of some tasks' training labels (`Cell.flip_labels`,
`drgrad.data.label_noise`; `with_flipped_labels` names such a cell ``<name> [task=fraction]``):
the ``census-noise`` grid, and ``drgrad bench --flip-labels TASK=FRACTION`` for any grid.
"""
import dataclasses
import json
import re
from typing import Any, Dict, Mapping, Optional, Tuple

from drgrad.data import label_noise
from drgrad.model.config import PRESETS as MODEL_PRESETS

#: The authors' protocol (logwhistle/drgrad_for_aaai25, main.py / model.py): the
#: `drgrad.data.census.load_authors` split, Adam 5e-4 with β2 0.9999, batch 32, 16 passes, no
#: early stopping, positives of income weighing 3 in its loss, test evaluated once at the end.
AUTHORS_PROTOCOL = {"epochs": 16, "batch_size": 32, "learning_rate": 5e-4, "beta_2": 0.9999,
                    "positive_weights": {"income": 3.0}}
#: ``--protocol`` names of the authors' protocol and of its one-change ablations (issue #18):
#: ``authors-pinned-split`` trains and tests on the pinned split (docs/REFERENCE.md),
#: ``authors-unweighted`` keeps income positives at weight 1. Batch size: ``--batch-size``.
AUTHORS_VARIANTS = {"authors": {}, "authors-pinned-split": {"split": "pinned"},
                    "authors-unweighted": {"positive_weights": None}}
ROLES = ("baseline", "ours", "single_task")
_CELL_NAME = re.compile(r"^[A-Za-z0-9_.\-:{}\[\]\",=+/ ]+$")

# The plain Split-MMoE update, with the router's statistics logged (see the module docstring).
SPLIT_NO_ROUTE = {"router": False, "updater": "none"}


@dataclasses.dataclass(frozen=True)
class Cell:
    """One benchmark configuration.

    Attributes:
      name: unique label in a grid (a row of the tables, a directory name once sanitized).
      backbone, strategy: as in `model.build_model`; ignored when `model_preset` is set.
      strategy_args, backbone_args: keyword arguments (JSON-serializable).
      model_preset: a `model.config.PRESETS` name (sets backbone, strategy, PPNet);
        `strategy_args` then update the preset's own.
      single_task: index of the one task this cell trains on (others get loss weight 0).
      role: "baseline", "ours" or "single_task".
      paper: key of the paper's reference row (`drgrad.bench.paper`), if it has one.
      needs_personalization: skip the cell on datasets without user/item features (there it
        would be the same model as its w/o-PPNet twin).
      flip_labels: ``{task: fraction}``: that share of the task's training labels flipped at
        random in each run (`drgrad.data.label_noise`, drawn with the run's seed).
    """

    name: str
    backbone: Optional[str] = None
    strategy: Optional[str] = None
    strategy_args: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    backbone_args: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    model_preset: Optional[str] = None
    single_task: Optional[int] = None
    role: str = "baseline"
    paper: Optional[str] = None
    needs_personalization: bool = False
    flip_labels: Mapping[str, float] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name or not _CELL_NAME.match(self.name):
            raise ValueError(f"bad cell name {self.name!r}")
        if self.model_preset is not None:
            if self.model_preset not in MODEL_PRESETS:
                raise ValueError(f"cell {self.name!r}: unknown model preset "
                                 f"{self.model_preset!r}; known: {', '.join(MODEL_PRESETS)}")
            if self.backbone is not None or self.strategy is not None:
                raise ValueError(f"cell {self.name!r}: give model_preset or backbone/strategy")
        elif not self.backbone or not self.strategy:
            raise ValueError(f"cell {self.name!r} needs a backbone and a strategy")
        for field in ("strategy_args", "backbone_args"):
            value = getattr(self, field)
            if not isinstance(value, Mapping):
                raise ValueError(f"cell {self.name!r}: {field} must be a JSON object")
            object.__setattr__(self, field, dict(value))
        if self.role not in ROLES:
            raise ValueError(f"cell {self.name!r}: role must be one of {ROLES}, got {self.role!r}")
        if (self.role == "single_task") != (self.single_task is not None):
            raise ValueError(f"cell {self.name!r}: role 'single_task' and single_task=<index> "
                             "go together")
        if self.single_task is not None and (isinstance(self.single_task, bool) or not isinstance(
                self.single_task, int) or self.single_task < 0):
            raise ValueError(f"cell {self.name!r}: single_task must be a task index >= 0")
        try:
            object.__setattr__(self, "flip_labels", label_noise.check_flips(self.flip_labels))
        except ValueError as error:
            raise ValueError(f"cell {self.name!r}: {error}") from None

    def resolved(self):
        """``(backbone, strategy, strategy_args)`` after applying `model_preset`."""
        if self.model_preset is None:
            return self.backbone, self.strategy, dict(self.strategy_args)
        preset = MODEL_PRESETS[self.model_preset]
        return preset["backbone"], preset["strategy"], {**preset["strategy_args"],
                                                        **self.strategy_args}

    def task_weights(self, tasks):
        """``{task: weight}`` for `drgrad.training.train.train`, or None (all 1.0)."""
        if self.single_task is None:
            return None
        if self.single_task >= len(tasks):
            raise ValueError(f"cell {self.name!r} trains task #{self.single_task}, but the "
                             f"dataset has tasks {list(tasks)}")
        return {t: (1.0 if k == self.single_task else 0.0) for k, t in enumerate(tasks)}

    def train_kwargs(self):
        """Keyword arguments of `drgrad.training.train.train` for this cell (tasks-independent part)."""
        kwargs = {"backbone_args": dict(self.backbone_args),
                  "strategy_args": dict(self.strategy_args),
                  "flip_labels": dict(self.flip_labels)}
        if self.model_preset is not None:
            kwargs["preset"] = self.model_preset
        else:
            kwargs["backbone"], kwargs["strategy"] = self.backbone, self.strategy
        return kwargs

    def to_dict(self):
        """The cell as JSON-ready fields; ``flip_labels`` only when set, so a clean cell's
        record is the one written before label noise existed (its finished runs are reused)."""
        fields = dataclasses.asdict(self)
        if not self.flip_labels:
            del fields["flip_labels"]
        return fields


def with_flipped_labels(cell, flips):
    """``cell`` training on labels flipped as ``flips`` (``{task: fraction}``) says, named
    ``<cell.name> [<flips as text>]`` (`label_noise.flip_text`, e.g. ``mmoe [marital=0.2]``)."""
    if cell.flip_labels:
        raise ValueError(f"cell {cell.name!r} already flips labels "
                         f"({label_noise.flip_text(cell.flip_labels)})")
    flips = label_noise.check_flips(flips)
    return dataclasses.replace(cell, name=f"{cell.name} [{label_noise.flip_text(flips)}]",
                               flip_labels=flips)


def system_name(name, flips):
    """The name of the cell that ``with_flipped_labels(cell, flips)`` named ``name``."""
    suffix = f" [{label_noise.flip_text(flips)}]"
    return name[:-len(suffix)] if flips and name.endswith(suffix) else name


def _infer_role(strategy, strategy_args):
    """DRGrad with neither router nor updater is plain Split-MMoE: a baseline."""
    if strategy != "drgrad":
        return "baseline"
    plain = (strategy_args.get("router", True) is False
             and strategy_args.get("updater", "literal") == "none")
    return "baseline" if plain else "ours"


def _infer_paper(backbone, strategy, strategy_args):
    """Key of the paper's reference row for a cell (`drgrad.bench.paper`)."""
    if strategy == "drgrad":
        return "drgrad" if _infer_role(strategy, strategy_args) == "ours" else backbone
    if strategy == "equal_weight":
        return backbone
    return strategy


def _model_preset_cell(name):
    """A cell for a `model.config.PRESETS` entry (its paper key is its name)."""
    preset = MODEL_PRESETS[name]
    return Cell(name, model_preset=name, role=_infer_role(preset["strategy"],
                                                          preset["strategy_args"]),
                paper=name, needs_personalization=preset["ppnet"])


def parse_cell(text):
    """One grid item ``backbone:strategy[:json]`` or a model preset name -> `Cell`."""
    text = text.strip()
    if text in MODEL_PRESETS:
        return _model_preset_cell(text)
    parts = text.split(":", 2)
    if len(parts) < 2 or not parts[0] or not parts[1]:
        raise ValueError(f"grid item {text!r} is not a preset, a model preset "
                         f"({', '.join(MODEL_PRESETS)}) or backbone:strategy[:json-args]")
    backbone, strategy = parts[0].strip(), parts[1].strip()
    args = {}
    if len(parts) == 3:
        try:
            args = json.loads(parts[2])
        except json.JSONDecodeError as error:
            raise ValueError(f"grid item {text!r}: bad JSON arguments ({error})") from None
        if not isinstance(args, dict):
            raise ValueError(f"grid item {text!r}: arguments must be a JSON object")
    backbone_args = args.pop("backbone_args", {})
    if not isinstance(backbone_args, dict):
        raise ValueError(f"grid item {text!r}: backbone_args must be a JSON object")
    return Cell(text, backbone=backbone, strategy=strategy, strategy_args=args,
                backbone_args=backbone_args, role=_infer_role(strategy, args),
                paper=_infer_paper(backbone, strategy, args))


def split_items(text):
    """Splits a grid on the commas that are outside JSON braces/brackets."""
    items, depth, start = [], 0, 0
    for i, char in enumerate(text):
        if char in "{[":
            depth += 1
        elif char in "}]":
            depth -= 1
            if depth < 0:
                raise ValueError(f"unbalanced brackets in grid {text!r}")
        elif char == "," and depth == 0:
            items.append(text[start:i])
            start = i + 1
    if depth != 0:
        raise ValueError(f"unbalanced brackets in grid {text!r}")
    items.append(text[start:])
    return [item.strip() for item in items if item.strip()]


def parse_grid(text) -> Tuple[Cell, ...]:
    """A grid string (see the module docstring) -> unique cells, in order."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("--grid must name a preset or list cells")
    cells = []
    for item in split_items(text):
        cells.extend(GRIDS[item] if item in GRIDS else (parse_cell(item),))
    names = [c.name for c in cells]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"grid names these cells more than once: {duplicates}")
    return tuple(cells)


def _c(name, backbone, strategy, role=None, paper=None, backbone_args=None, single_task=None,
       **strategy_args):
    role = role or _infer_role(strategy, strategy_args)
    paper = paper if paper is not None else _infer_paper(backbone, strategy, strategy_args)
    return Cell(name, backbone=backbone, strategy=strategy, strategy_args=strategy_args,
                backbone_args=dict(backbone_args or {}), role=role, paper=paper or None,
                single_task=single_task)


def _split_mmoe(name="split_mmoe", **backbone_args):
    return _c(name, "split_mmoe", "drgrad", paper="split_mmoe",
              backbone_args={"ppnet": False, **backbone_args}, **SPLIT_NO_ROUTE)


def _drgrad(name="drgrad", backbone_args=None, **strategy_args):
    return _c(name, "split_mmoe", "drgrad", paper="drgrad",
              backbone_args={"ppnet": False, **(backbone_args or {})}, **strategy_args)


_GRADIENT_METHODS = ("pcgrad", "cagrad", "nash_mtl", "adatask", "igbv2")

# Small shared capacity (docs/REFERENCE.md: a 32-unit shared layer shows negative
# transfer on the `angle` synthetic set; 4 experts × 8 units is the same width for MMoE).
NARROW_EXPERTS = {"num_experts": 4, "expert_units": 8}

GRIDS: Dict[str, Tuple[Cell, ...]] = {
    "quick": (
        _c("mmoe", "mmoe", "equal_weight", backbone_args={"num_experts": 2, "expert_units": 16}),
        _split_mmoe(num_experts=2, expert_units=16),
        _drgrad(backbone_args={"num_experts": 2, "expert_units": 16}),
    ),
    "paper-table5": (
        _model_preset_cell("mmoe"),
        # Same update as model preset "split_mmoe" (equal_weight), router statistics logged.
        Cell("split_mmoe", model_preset="split_mmoe_router", strategy_args={"router": False},
             role="baseline", paper="split_mmoe"),
        _model_preset_cell("split_mmoe_router"),
        _model_preset_cell("drgrad_no_ppnet"),
        _model_preset_cell("drgrad"),
    ),
    "paper-table3": (
        _c("mmoe", "mmoe", "equal_weight"),
        _split_mmoe(),
        _c("snr", "snr", "equal_weight"),
        _c("ple", "ple", "equal_weight"),
        _c("ac_mmoe", "ac_mmoe", "equal_weight"),
        *(_c(m, "mmoe", m) for m in _GRADIENT_METHODS),
        _drgrad("drgrad"),
    ),
    "gradcraft": (
        _c("ple", "ple", "equal_weight"),
        *(_c(f"ple+{m}", "ple", m) for m in _GRADIENT_METHODS),
        _c("ple+gradcraft", "ple", "gradcraft"),
        _drgrad("drgrad"),   # DRGrad needs its split backbone; shown for reference.
    ),
    # GradCraft's table (Bai et al., KDD 2024; the slides' Wechat table) on a PLE backbone: the
    # Single column (one PLE per task, the other tasks' loss weights 0; six tasks as in the
    # simulator's `gradcraft` preset), the eleven multi-task columns, MetaBalance, DRGrad as
    # released (its tower routing on PLE) and DRGrad as the paper reads it (its own Split-MMoE
    # backbone with PPNet) as its own column.
    "gradcraft-table": (
        *(_c(f"single_task/{k}", "ple", "equal_weight", role="single_task", paper="",
             single_task=k) for k in range(6)),
        _c("ple", "ple", "equal_weight"),
        *(_c(f"ple+{m}", "ple", m) for m in (
            "uncertainty", "dwa", "mgda", "pcgrad", "pcgrad_plus", "gradvac", "cagrad", "imtl",
            "dbmtl", "gradcraft", "metabalance")),
        _c("ple+drgrad_released", "ple", "drgrad_released", role="ours", paper=""),
        _model_preset_cell("drgrad"),
    ),
    # The released DRGrad (issue #18, docs/RESULTS.md "DRGrad as released"): its CGC backbone
    # with and without its tower routing, beside MMoE (the paper's 0.9387 row), PLE and the
    # paper reading of DRGrad. Run with `--protocol authors` (and the pinned protocol).
    "drgrad-released": (
        _c("mmoe", "mmoe", "equal_weight"),
        _c("cgc2", "cgc2", "equal_weight", paper=""),
        _c("cgc2+drgrad_released", "cgc2", "drgrad_released", role="ours", paper="drgrad"),
    ),
    "drgrad-released-extra": (
        _c("ple", "ple", "equal_weight"),
        _drgrad("drgrad"),
    ),
    "narrow": (
        _c("single_task/0", "shared_bottom", "equal_weight", role="single_task", paper="",
           single_task=0),
        _c("single_task/1", "shared_bottom", "equal_weight", role="single_task", paper="",
           single_task=1),
        _c("shared_bottom_32", "shared_bottom", "equal_weight", paper="",
           backbone_args={"bottom_units": [32]}),
        _c("mmoe", "mmoe", "equal_weight", backbone_args=NARROW_EXPERTS),
        _split_mmoe(**NARROW_EXPERTS),
        _drgrad("drgrad", backbone_args=NARROW_EXPERTS),
        _drgrad("drgrad_paired_ema", backbone_args=NARROW_EXPERTS, variant="paired",
                updater="ema"),
    ),
    "drgrad-variants": (
        _split_mmoe(),
        _drgrad("drgrad"),                                    # literal router, literal updater
        _drgrad("router=paired", variant="paired"),
        _drgrad("updater=ema", updater="ema"),
        _drgrad("router=paired,updater=ema", variant="paired", updater="ema"),
        _drgrad("gamma=0.5", gamma=0.5),
        _drgrad("gamma=2", gamma=2.0),
        _drgrad("router_only", updater="none"),
    ),
    # Routing at the representations v1 / vs: DRGrad's variant="upstream" (literal
    # formula, route_level="upstream", one ξ per batch), with the literal and EMA updaters.
    "upstream": (
        _split_mmoe(),
        _drgrad("drgrad"),
        _drgrad("router=upstream", variant="upstream"),
        _drgrad("router=upstream,updater=ema", variant="upstream", updater="ema"),
    ),
}


def _grid_cell(grid, name):
    return next(cell for cell in GRIDS[grid] if cell.name == name)


#: The paper's "noise processing" claim under the pinned protocol (issue #18): shares of
#: census's auxiliary (marital) training labels flipped; 0 is each system's clean reference.
NOISE_LEVELS = (0.0, 0.2, 0.4)
GRIDS["census-noise"] = tuple(
    with_flipped_labels(cell, {"marital": level}) for level in NOISE_LEVELS
    for cell in (_grid_cell("paper-table3", "mmoe"), _grid_cell("paper-table3", "drgrad"),
                 _grid_cell("drgrad-released", "cgc2+drgrad_released"),
                 _grid_cell("paper-table3", "pcgrad"), _grid_cell("gradcraft", "ple+gradcraft")))

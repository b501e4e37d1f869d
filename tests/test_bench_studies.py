"""drgrad.bench.census_study and drgrad.bench.synthetic_study: the cell lists behind docs/RESULTS.md."""
import importlib

from drgrad.bench import harness
from drgrad.bench.presets import GRIDS


def _study(name="census_study"):
    return importlib.import_module(f"drgrad.bench.{name}")


def test_study_cells_cover_table3_variants_and_routing_levels_once():
    study = _study()
    cells = study.study_cells()
    names = [cell.name for cell in cells]
    assert len(names) == len(set(names))
    for preset in ("paper-table3", "drgrad-variants", "upstream"):
        assert {cell.name for cell in GRIDS[preset]} <= set(names), preset
    assert set(study.FIVE_SEED_CELLS) <= set(names)
    per_example = cells[names.index(study.PER_EXAMPLE_UPSTREAM)]
    assert per_example.role == "ours"
    assert per_example.strategy_args == {"variant": "upstream", "upstream_mode": "example"}
    # A name the study's presets share is one configuration (its run dirs serve both).
    for preset in ("paper-table3", "drgrad-variants", "upstream", "gradcraft"):
        for cell in GRIDS[preset]:
            if cell.name in names:
                assert cells[names.index(cell.name)] == cell, (preset, cell.name)
    harness._check_cells(cells, ["income", "marital"])  # every cell builds its strategy


def test_synthetic_study_single_task_references_have_the_narrow_width():
    study = _study("synthetic_study")
    shared_32 = next(c for c in GRIDS["narrow"] if c.name == "shared_bottom_32")
    for k, cell in enumerate(study.NARROW_SINGLE_TASK):
        assert (cell.role, cell.single_task) == ("single_task", k)
        assert cell.backbone_args == shared_32.backbone_args == {"bottom_units": [32]}
        assert cell.task_weights(["label1", "label2"]) == {
            "label1": float(k == 0), "label2": float(k == 1)}
    names = [c.name for c in GRIDS["narrow"] + study.NARROW_SINGLE_TASK]
    assert len(names) == len(set(names))

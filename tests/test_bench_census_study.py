"""bench/census_study.py: the cell list behind docs/RESULTS.md's census tables."""
import importlib.util
import os

from model.bench import harness
from model.bench.presets import GRIDS

_PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench",
                     "census_study.py")


def _study():
    spec = importlib.util.spec_from_file_location("census_study", _PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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

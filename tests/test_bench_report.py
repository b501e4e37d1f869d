"""drgrad.bench.report and drgrad.bench.presets against hand-computed values on a fixed CSV.

Paired t-test with 3 seeds (2 degrees of freedom): the t CDF has the closed form
F(t) = 1/2 + t / (2 sqrt(2 + t²)), so the two-sided p-value is p = 1 − |t| / sqrt(2 + t²),
with t = mean(d) / (sd(d) / sqrt(3)) over the paired differences d.
"""
import math
import re

import pytest

from drgrad.bench import harness, presets, report

TASKS = ["income", "marital"]

# cell, role, paper, seed, test_income, test_marital, val_income, val_marital
FIXED = [
    ("mmoe", "baseline", "mmoe", 0, 0.94, 0.990, 0.93, 0.980),
    ("mmoe", "baseline", "mmoe", 1, 0.96, 0.990, 0.95, 0.980),
    ("mmoe", "baseline", "mmoe", 2, 0.95, 0.990, 0.94, 0.980),
    ("ple", "baseline", "ple", 0, 0.955, 0.980, 0.95, 0.980),
    ("ple", "baseline", "ple", 1, 0.955, 0.980, 0.95, 0.980),
    ("ple", "baseline", "ple", 2, 0.955, 0.980, 0.95, 0.980),
    ("drgrad", "ours", "drgrad", 0, 0.95, 0.991, 0.96, 0.990),
    ("drgrad", "ours", "drgrad", 1, 0.96, 0.993, 0.96, 0.990),
    ("drgrad", "ours", "drgrad", 2, 0.97, 0.995, 0.96, 0.990),
]


def _p_df2(t):
    return 1.0 - abs(t) / math.sqrt(2.0 + t * t)


@pytest.fixture(name="rows")
def fixture_rows(tmp_path):
    rows = []
    for cell, role, key, seed, ti, tm, vi, vm in FIXED:
        rows.append({"cell": cell, "seed": seed, "cos": None, "status": "ok", "role": role,
                     "paper": key, "test_income": ti, "test_marital": tm, "val_income": vi,
                     "val_marital": vm, "best_epoch": 3, "epochs": 5, "train_seconds": 10.0,
                     "step_ms": 2.5, "run_dir": str(tmp_path / cell)})
    rows.append({"cell": "snr", "seed": 0, "cos": None, "status": "failed", "role": "baseline",
                 "paper": "snr", "error": "ValueError: boom", "run_dir": str(tmp_path)})
    path = str(tmp_path / "results.csv")
    harness.write_results(path, rows, TASKS)
    return harness.read_results(path)   # round trip through the CSV, as the CLI does


def test_mean_std_hand_computed(rows):
    summary = report.summarize(rows, TASKS)[None]
    mean, std = summary["drgrad"]["test"]["income"]
    assert mean == pytest.approx(0.96, abs=1e-12)
    assert std == pytest.approx(0.01, abs=1e-12)            # sqrt((0.01² + 0 + 0.01²) / 2)
    mean, std = summary["drgrad"]["test"]["marital"]
    assert mean == pytest.approx(0.993, abs=1e-12)
    assert std == pytest.approx(0.002, abs=1e-12)
    assert summary["ple"]["test"]["income"] == pytest.approx((0.955, 0.0), abs=1e-12)
    assert summary["drgrad"]["val_mean"] == pytest.approx(0.975, abs=1e-12)
    assert "snr" not in summary                             # failed runs are not averaged


def test_delta_vs_mmoe(rows):
    summary = report.summarize(rows, TASKS)[None]
    assert summary["drgrad"]["delta_mmoe"]["income"] == pytest.approx(0.01, abs=1e-12)
    assert summary["drgrad"]["delta_mmoe"]["marital"] == pytest.approx(0.003, abs=1e-12)
    assert summary["mmoe"]["delta_mmoe"]["income"] is None


def test_paired_ttest_against_best_baseline(rows):
    summary = report.summarize(rows, TASKS)[None]
    drgrad = summary["drgrad"]
    # income: best baseline is ple (0.955 > 0.950); d = (-0.005, 0.005, 0.015),
    # mean 0.005, sd 0.01 -> t = sqrt(3) / 2.
    assert drgrad["best_baseline"]["income"] == "ple"
    assert drgrad["p_best"]["income"] == pytest.approx(_p_df2(math.sqrt(3) / 2), abs=1e-9)
    assert drgrad["p_best"]["income"] == pytest.approx(0.477767, abs=1e-6)
    # marital: best baseline is mmoe (0.990 > 0.980); d = (0.001, 0.003, 0.005) -> t = 1.5 sqrt 3.
    assert drgrad["best_baseline"]["marital"] == "mmoe"
    assert drgrad["p_best"]["marital"] == pytest.approx(_p_df2(1.5 * math.sqrt(3)), abs=1e-9)
    # mmoe against the best *other* baseline (ple) on income: d = (-0.015, 0.005, -0.005).
    assert summary["mmoe"]["best_baseline"]["income"] == "ple"
    assert summary["mmoe"]["p_best"]["income"] == pytest.approx(_p_df2(-math.sqrt(3) / 2),
                                                                abs=1e-9)


def test_paired_ttest_degenerate_cases():
    assert math.isnan(report.paired_ttest({0: 0.9}, {0: 0.8}))                  # one pair
    assert math.isnan(report.paired_ttest({0: 0.9, 1: 0.8}, {0: 0.8, 1: 0.7}))  # sd(d) = 0
    assert math.isnan(report.paired_ttest({0: 0.9, 1: 0.8}, {2: 0.8, 3: 0.7}))  # no common seed
    # Pairs are matched by seed, not by position.
    a = {0: 0.95, 1: 0.96, 2: 0.97}
    b = {2: 0.95, 0: 0.94, 1: 0.96}
    assert report.paired_ttest(a, b) == pytest.approx(_p_df2(math.sqrt(3)), abs=1e-9)


def test_rendered_table_matches_statistics(rows):
    text = report.render(rows, TASKS, "census")
    line = next(l for l in text.splitlines() if l.startswith("| drgrad |"))
    cols = [c.strip() for c in line.strip("|").split("|")]
    assert cols[:3] == ["drgrad", "ours", "3"]
    assert cols[3:7] == ["0.9600 ± 0.0100", "+0.0100", "0.478", "0.9550"]
    assert cols[7:11] == ["0.9930 ± 0.0020", "+0.0030", "0.122", "0.9949"]
    assert "snr (seed 0, cos —): failed — ValueError: boom" in text
    assert re.search(r"Best baseline per task: income: ple, marital: mmoe", text)


def test_single_task_delta_and_sweep_table(tmp_path):
    rows = []
    for cos in (0.5, -0.5):
        for cell, role, st, l1, l2 in (("single_task/0", "single_task", 0, 0.90, 0.5),
                                       ("single_task/1", "single_task", 1, 0.5, 0.80),
                                       ("mmoe", "baseline", None, 0.89, 0.81)):
            for seed in (0, 1):
                rows.append({"cell": cell, "seed": seed, "cos": cos, "status": "ok",
                             "role": role, "paper": "mmoe" if cell == "mmoe" else "",
                             "single_task": st, "test_label1": l1 + 0.01 * seed,
                             "test_label2": l2, "val_label1": l1, "val_label2": l2,
                             "run_dir": str(tmp_path)})
    path = str(tmp_path / "r.csv")
    harness.write_results(path, rows, ["label1", "label2"])
    rows = harness.read_results(path)
    summary = report.summarize(rows, ["label1", "label2"])
    assert summary[0.5]["mmoe"]["delta_single"]["label1"] == pytest.approx(-0.01, abs=1e-12)
    assert summary[-0.5]["mmoe"]["delta_single"]["label2"] == pytest.approx(0.01, abs=1e-12)
    text = report.render(rows, ["label1", "label2"], "synthetic")
    assert "| mmoe | -0.0100 | -0.0100 |" in text
    assert "| mmoe | +0.0100 | +0.0100 |" in text


def test_parse_grid_cells_and_presets():
    cells = presets.parse_grid(
        'quick,mmoe:pcgrad,split_mmoe:drgrad:{"variant": "paired", "backbone_args": '
        '{"num_experts": 4, "expert_units": 8}},drgrad_no_ppnet')
    names = [c.name for c in cells]
    assert names[:3] == ["mmoe", "split_mmoe", "drgrad"]
    custom = cells[4]
    assert (custom.backbone, custom.strategy, custom.role) == ("split_mmoe", "drgrad", "ours")
    assert custom.strategy_args == {"variant": "paired"}
    assert custom.backbone_args == {"num_experts": 4, "expert_units": 8}
    assert cells[3].role == "baseline" and cells[3].paper == "pcgrad"
    assert cells[5].train_kwargs()["preset"] == "drgrad_no_ppnet"
    split = presets.GRIDS["paper-table5"][1]
    assert split.resolved() == ("split_mmoe", "drgrad", {"router": False, "updater": "none"})
    assert split.role == "baseline"
    single = presets.GRIDS["narrow"][1]
    assert single.task_weights(["a", "b"]) == {"a": 0.0, "b": 1.0}
    with pytest.raises(ValueError, match="task #1"):
        single.task_weights(["a"])


@pytest.mark.parametrize("grid, message", [
    ("", "must name"),
    ("nonsense", "not a preset"),
    ("mmoe:drgrad:{bad json}", "bad JSON"),
    ("mmoe:drgrad:[1, 2]", "JSON object"),
    ("mmoe,mmoe", "more than once"),
    ("mmoe:drgrad:{\"a\": 1", "unbalanced"),
])
def test_parse_grid_rejects_bad_input(grid, message):
    with pytest.raises(ValueError, match=message):
        presets.parse_grid(grid)


def test_every_preset_is_well_formed():
    expected = {"quick", "paper-table3", "paper-table5", "gradcraft", "narrow",
                "drgrad-variants"}
    assert expected <= set(presets.GRIDS)
    assert len(presets.GRIDS["quick"]) == 3
    for name, cells in presets.GRIDS.items():
        assert len({c.name for c in cells}) == len(cells), name
        assert any(c.role == "ours" for c in cells), name


def test_table2_layout(tmp_path):
    rows = [{"cell": cell, "seed": 0, "cos": cos, "status": "ok", "role": role, "paper": key,
             "test_label1": 0.9, "test_label2": 0.8, "val_label1": 0.9, "val_label2": 0.8,
             "run_dir": str(tmp_path)}
            for cos in (0.5, -0.5)
            for cell, role, key in (("mmoe", "baseline", "mmoe"), ("drgrad", "ours", "drgrad"))]
    text = report.render(rows, ["label1", "label2"], "synthetic")
    assert ("| task | cooperate (cos +0.5): mmoe | cooperate (cos +0.5): drgrad | "
            "conflict (cos -0.5): mmoe | conflict (cos -0.5): drgrad |") in text
    assert "| label1 | 0.9000 (0.9521) | 0.9000 (0.9710) | 0.9000 (0.8735) | 0.9000 (0.9212) |" \
        in text


def test_gauc_columns_in_report(tmp_path):
    rows = [{"cell": "ple", "seed": seed, "cos": None, "status": "ok", "role": "baseline",
             "paper": "ple", "test_income": 0.9, "test_marital": 0.9, "val_income": 0.9,
             "val_marital": 0.9, "gauc_income": 0.60 + 0.02 * seed, "gauc_marital": None,
             "run_dir": str(tmp_path)} for seed in (0, 1)]
    path = str(tmp_path / "results.csv")
    harness.write_results(path, rows, TASKS)
    rows = harness.read_results(path)
    summary = report.summarize(rows, TASKS)[None]
    assert summary["ple"]["gauc"]["income"][0] == pytest.approx(0.61, abs=1e-12)
    assert math.isnan(summary["ple"]["gauc"]["marital"][0])
    text = report.render(rows, TASKS, "census")
    assert "| income GAUC | marital GAUC |" in text
    assert "| 0.6100 ± 0.0141 | — ± — |" in text          # std = sqrt(2 · 0.01² / 1)


GRADCRAFT_TASKS = ["a", "b"]


def _gradcraft_results(tmp_path):
    """Single: a 0.80 / GAUC 0.60 (cell on task a), b 0.90 / 0.70 (cell on task b); EW over
    two seeds; MGDA; DRGrad on split_mmoe without a GAUC for b."""
    def row(cell, backbone, strategy, seed, a, b, ga, gb, role="baseline", single=None):
        return {"cell": cell, "seed": seed, "cos": None, "status": "ok", "role": role,
                "single_task": single, "backbone": backbone, "strategy": strategy,
                "test_a": a, "test_b": b, "val_a": a, "val_b": b, "gauc_a": ga, "gauc_b": gb,
                "run_dir": str(tmp_path)}
    rows = [row("single_task/0", "ple", "equal_weight", 0, 0.80, 0.50, 0.60, 0.50,
                "single_task", 0),
            row("single_task/1", "ple", "equal_weight", 0, 0.50, 0.90, 0.50, 0.70,
                "single_task", 1),
            row("ple", "ple", "equal_weight", 0, 0.81, 0.90, 0.62, 0.70),
            row("ple", "ple", "equal_weight", 1, 0.83, 0.90, 0.64, 0.70),
            row("ple+mgda", "ple", "mgda", 0, 0.78, 0.927, 0.60, 0.735),
            row("drgrad", "split_mmoe", "drgrad", 0, 0.80, 0.90, 0.60, None, "ours")]
    path = str(tmp_path / "results.csv")
    harness.write_results(path, rows, GRADCRAFT_TASKS)
    return harness.read_results(path)


def test_gradcraft_table_rows_and_improvements(tmp_path):
    from drgrad.bench import gradcraft_table
    rows = gradcraft_table.table_rows(_gradcraft_results(tmp_path), GRADCRAFT_TASKS)
    assert [r["method"] for r in rows] == ["Single", "EW", "MGDA",
                                           "DRGrad, paper reading (split_mmoe)"]
    single, ew, mgda, drgrad = rows
    assert single["auc"] == pytest.approx({"a": 0.80, "b": 0.90})
    assert ew["auc"] == pytest.approx({"a": 0.82, "b": 0.90})        # mean of the two seeds
    # RI = mean over tasks of (M_t − Single_t) / Single_t.
    ri = gradcraft_table.relative_improvement
    assert ri(ew["auc"], single["auc"], GRADCRAFT_TASKS) == pytest.approx(0.0125)   # (0.025+0)/2
    assert ri(ew["gauc"], single["gauc"], GRADCRAFT_TASKS) == pytest.approx(0.025)  # (0.05+0)/2
    # MGDA: (−0.025 + 0.03) / 2.
    assert ri(mgda["auc"], single["auc"], GRADCRAFT_TASKS) == pytest.approx(0.0025)
    assert gradcraft_table.average(mgda["auc"], GRADCRAFT_TASKS) == pytest.approx(0.8535)
    assert ri(drgrad["gauc"], single["gauc"], GRADCRAFT_TASKS) is None

    text = gradcraft_table.render_table(rows, GRADCRAFT_TASKS, {"EW": 1.0, "MGDA": 2.5})
    lines = text.splitlines()
    assert lines[0] == ("| method | AUC a | AUC b | AV-A | RI-A | GAUC a | GAUC b | AV-G | RI-G "
                        "| step × EW |")
    assert lines[2] == ("| Single | 0.8000 | 0.9000 | 0.8500 | +0.000% | 0.6000 | 0.7000 "
                        "| 0.6500 | +0.000% | — |")
    assert lines[3] == ("| EW | 0.8200 | 0.9000 | 0.8600 | +1.250% | 0.6300 | 0.7000 | 0.6650 "
                        "| +2.500% | 1.00 |")
    assert lines[4] == ("| MGDA | 0.7800 | 0.9270 | 0.8535 | +0.250% | 0.6000 | 0.7350 "
                        "| 0.6675 | +2.500% | 2.50 |")
    assert lines[5] == ("| DRGrad, paper reading (split_mmoe) | 0.8000 | 0.9000 | 0.8500 "
                        "| +0.000% | 0.6000 | — | — | — | — |")

"""`drgrad bench` end to end on the `quick` preset (synthetic, tiny slice): results.csv,
report.md and the PNGs are written, the report's numbers equal the CSV's, a failing cell is
recorded without stopping the benchmark, and a rerun reuses the finished runs.

The end-to-end tests share one benchmark (module fixture, 6 short trainings: about 2 minutes on
2 idle cores) and are marked e2e; the argument checks are fast and unmarked."""
import csv
import os
import re
import statistics

import pytest

from drgrad.bench import cli as bench_cli
from drgrad.bench import harness

TASKS = ("label1", "label2")
BAD_CELL = 'mmoe:drgrad:{"gamma": 2}'        # drgrad needs a split backbone: fails at build


@pytest.fixture(scope="module", name="bench_dir")
def fixture_bench_dir(tmp_path_factory):
    from drgrad.cli.main import main
    out = str(tmp_path_factory.mktemp("bench") / "quick")
    code = main(["bench", "--dataset", "synthetic", "--grid", f"quick,{BAD_CELL}",
                 "--seeds", "2", "--rows", "600", "--epochs", "1", "--cos", "0.5",
                 "--batch-size", "64", "--log-every", "1", "--out", out])
    assert code == 0
    return out


def _csv_rows(out):
    with open(os.path.join(out, "results.csv"), newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.e2e
def test_writes_results_report_and_figures(bench_dir):
    rows = _csv_rows(bench_dir)
    assert [(r["cell"], r["seed"]) for r in rows] == [
        (c, str(s)) for c in ("mmoe", "split_mmoe", "drgrad", BAD_CELL) for s in (0, 1)]
    ok = [r for r in rows if r["status"] == "ok"]
    assert len(ok) == 6
    for row in ok:
        for task in TASKS:
            assert 0.0 <= float(row[f"test_{task}"]) <= 1.0
            assert 0.0 <= float(row[f"val_{task}"]) <= 1.0
        assert row["best_epoch"] == "1" and float(row["train_seconds"]) > 0
        assert float(row["step_ms"]) > 0
        assert os.path.isfile(os.path.join(row["run_dir"], "metrics.json"))
    drgrad = [r for r in ok if r["cell"] == "drgrad"]
    assert all(0.0 < float(r["mu_final"]) < 1.0 for r in drgrad)
    failed = [r for r in rows if r["cell"] == BAD_CELL]
    assert all(r["status"] == "failed" and "split backbone" in r["error"] for r in failed)
    figures = sorted(os.listdir(os.path.join(bench_dir, "figures")))
    assert figures == ["auc_curves_cos+0.50.png", "gradients_cos+0.50.png", "mu_cos+0.50.png"]
    for name in figures:
        with open(os.path.join(bench_dir, "figures", name), "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"


@pytest.mark.e2e
def test_report_numbers_equal_the_csv(bench_dir):
    rows = [r for r in _csv_rows(bench_dir) if r["status"] == "ok"]
    with open(os.path.join(bench_dir, "report.md")) as f:
        text = f.read()
    table = {}
    for line in text.splitlines():
        match = re.match(r"^\| (mmoe|split_mmoe|drgrad) \|", line)
        if match and match.group(1) not in table:      # the results table comes first
            table[match.group(1)] = [c.strip() for c in line.strip().strip("|").split("|")]
    assert set(table) == {"mmoe", "split_mmoe", "drgrad"}
    for cell, cols in table.items():
        for k, task in enumerate(TASKS):
            values = [float(r[f"test_{task}"]) for r in rows if r["cell"] == cell]
            mean_text, std_text = cols[3 + 4 * k].split(" ± ")
            assert float(mean_text) == pytest.approx(statistics.mean(values), abs=5e-5)
            assert float(std_text) == pytest.approx(statistics.stdev(values), abs=5e-5)
            mmoe = [float(r[f"test_{task}"]) for r in rows if r["cell"] == "mmoe"]
            delta = cols[4 + 4 * k]
            if cell == "mmoe":
                assert delta == "—"
            else:
                assert float(delta) == pytest.approx(
                    statistics.mean(values) - statistics.mean(mmoe), abs=5e-5)
    assert f"{BAD_CELL} (seed 0, cos +0.50): failed" in text
    assert "## μ′ (updater) and router dynamics" in text


@pytest.mark.e2e
def test_rerun_reuses_finished_runs(bench_dir, capsys):
    before = _csv_rows(bench_dir)
    harness.run_bench("synthetic", "quick", bench_dir, seeds=2, rows=600, epochs=1,
                      cos_values=[0.5], batch_size=64, log_every=1, plots=False)
    assert capsys.readouterr().out.count(": reused") == 6
    after = _csv_rows(bench_dir)
    assert [r["test_label1"] for r in after] == [r["test_label1"] for r in before[:6]]


@pytest.mark.e2e
def test_reuse_refuses_a_changed_protocol(bench_dir):
    with pytest.raises(ValueError, match="another configuration"):
        harness.run_bench("synthetic", "quick", bench_dir, seeds=1, rows=600, epochs=2,
                          cos_values=[0.5], batch_size=64, plots=False)


@pytest.mark.parametrize("argv, message", [
    (["--dataset", "census", "--cos", "0.5"], "synthetic only"),
    (["--dataset", "synthetic", "--cos", "2"], r"in \[-1, 1\]"),
    (["--dataset", "synthetic", "--cos", "0.5,x"], "numbers"),
    (["--dataset", "synthetic", "--cos", "0.5,0.5"], "duplicate"),
])
def test_cli_rejects_bad_input(argv, message, tmp_path):
    import argparse
    parser = argparse.ArgumentParser()
    bench_cli.register(parser.add_subparsers())
    args = parser.parse_args(["bench", "--grid", "quick", "--out", str(tmp_path)] + argv)
    with pytest.raises(ValueError, match=message):
        args.func(args)
    assert not os.path.exists(os.path.join(tmp_path, "results.csv"))


def test_run_bench_checks_arguments_before_training(tmp_path):
    with pytest.raises(ValueError, match="seeds"):
        harness.run_bench("synthetic", "quick", str(tmp_path), seeds=0)
    with pytest.raises(ValueError, match="dataset"):
        harness.run_bench("mnist", "quick", str(tmp_path))
    with pytest.raises(ValueError, match="not a preset"):
        harness.run_bench("synthetic", "nope", str(tmp_path))
    assert os.listdir(tmp_path) == []


def test_command_line_round_trips():
    import argparse
    import shlex
    parser = argparse.ArgumentParser()
    bench_cli.register(parser.add_subparsers())
    argv = ["bench", "--dataset", "synthetic", "--grid", 'quick,mmoe:pcgrad:{"seed": 1}',
            "--cos=-0.5,0.5", "--seeds", "2", "--rows", "600", "--out", "/tmp/x y"]
    args = parser.parse_args(argv)
    line = bench_cli.command_line(args)
    assert line.startswith("drgrad bench --dataset synthetic")
    again = parser.parse_args(shlex.split(line)[1:])
    assert vars(again) == vars(args)


def test_report_only_rewrites_report_from_the_csv(tmp_path):
    from drgrad.cli.main import main
    out = str(tmp_path)
    rows = [{"cell": "mmoe", "seed": s, "cos": None, "status": "ok", "role": "baseline",
             "paper": "mmoe", "test_income": 0.95 + 0.001 * s, "test_marital": 0.99,
             "val_income": 0.95, "val_marital": 0.99, "run_dir": out} for s in (0, 1)]
    harness.write_results(os.path.join(out, "results.csv"), rows, ["income", "marital"])
    assert main(["bench", "--dataset", "census", "--grid", "quick", "--out", out,
                 "--report-only", "--no-plots"]) == 0
    with open(os.path.join(out, "report.md")) as f:
        text = f.read()
    assert "| mmoe | baseline | 2 | 0.9505 ± 0.0007 | — | — | 0.9387 |" in text
    assert main(["bench", "--dataset", "census", "--grid", "quick", "--out",
                 str(tmp_path / "empty"), "--report-only"]) == 1       # clear one-line error


@pytest.mark.parametrize("grid, message", [
    ("mmoe:no_such_strategy", "unknown strategy"),
    ("no_such_backbone:equal_weight", "unknown backbone"),
    ('split_mmoe:drgrad:{"gamma": -1}', "gamma"),
    ('split_mmoe:drgrad:{"not_an_arg": 1}', "not_an_arg"),
])
def test_run_bench_rejects_bad_cells_up_front(grid, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        harness.run_bench("synthetic", grid, str(tmp_path), seeds=1)
    assert os.listdir(tmp_path) == []


def test_lock_keeps_two_processes_off_one_run(tmp_path):
    run_dir = str(tmp_path / "runs" / "all" / "mmoe" / "seed-0")
    lock = harness._acquire(run_dir)  # pylint: disable=protected-access
    assert lock == run_dir + ".lock" and os.path.isfile(lock)
    assert harness._acquire(run_dir) is None      # held by a live process (this one)  # pylint: disable=protected-access
    with open(lock, "w") as f:
        f.write("999999999")                       # no such process: a stale lock
    assert harness._acquire(run_dir) == lock      # pylint: disable=protected-access


def test_no_train_reports_missing_runs_as_not_run(tmp_path):
    out = str(tmp_path)
    rows = harness.run_bench("synthetic", "quick", out, seeds=2, rows=600, cos_values=[0.5],
                             train_missing=False, plots=False, verbose=False)
    assert [r["status"] for r in rows] == ["not run"] * 6
    assert not os.path.exists(os.path.join(out, "runs"))
    with open(os.path.join(out, "report.md")) as f:
        assert "- drgrad (seed 1, cos +0.50): not run — no finished run (--no-train)" in f.read()

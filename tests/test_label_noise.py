"""Label noise (issue #18): `drgrad.data.label_noise`, `drgrad bench --flip-labels`, the
`census-noise` grid and its report table."""
import json
import math
import os

import numpy as np
import pandas as pd
import pytest

from drgrad.bench import harness
from drgrad.bench.presets import GRIDS, NOISE_LEVELS, parse_grid, system_name
from drgrad.data import label_noise


def _frame(n=101, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"x": np.arange(n), "income": rng.integers(0, 2, n),
                         "marital": rng.integers(0, 2, n)},
                        index=np.arange(1000, 1000 + n))    # a subsample's index, not 0..n-1


def _flipped_rows(before, after, task):
    return set(np.flatnonzero(before[task].to_numpy() != after[task].to_numpy()))


@pytest.mark.parametrize("n,fraction,count", [(101, 0.2, 20), (101, 0.4, 40), (10, 0.25, 2),
                                              (10, 0.35, 4), (7, 1.0, 7), (7, 0.0, 0)])
def test_flips_exactly_round_fraction_times_n(n, fraction, count):
    # round() is Python's: 0.25 × 10 = 2.5 rounds to 2 (half to even), 0.35 × 10 = 3.5 to 4.
    frame = _frame(n)
    flipped = label_noise.flip_column(frame, "marital", fraction, seed=3)
    assert len(_flipped_rows(frame, flipped, "marital")) == count
    changed = frame["marital"].to_numpy() != flipped["marital"].to_numpy()
    assert (flipped["marital"].to_numpy()[changed] == 1 - frame["marital"].to_numpy()[changed]).all()
    assert flipped["marital"].dtype == frame["marital"].dtype
    assert list(flipped.index) == list(frame.index)


def test_flip_rows_are_seeded_and_nested():
    frame = _frame()

    def rows(fraction, seed, task="marital"):
        return _flipped_rows(frame, label_noise.flip_column(frame, task, fraction, seed), task)

    assert rows(0.2, 0) == rows(0.2, 0) and rows(0.2, 0) != rows(0.2, 1)
    # The 20 % rows of a seed are among its 40 % rows; another task draws other rows.
    assert rows(0.2, 0) < rows(0.4, 0)
    assert rows(0.2, 0, "income") != rows(0.2, 0)


def test_only_the_train_split_and_the_named_task_change():
    frames = {"train": _frame(), "eval": _frame(50, 1), "test": _frame(60, 2)}
    copies = {split: frame.copy() for split, frame in frames.items()}
    noisy = label_noise.flip_train_labels(frames, {"marital": 0.4}, seed=0)
    assert noisy["eval"] is frames["eval"] and noisy["test"] is frames["test"]
    assert len(_flipped_rows(frames["train"], noisy["train"], "marital")) == 40
    pd.testing.assert_frame_equal(noisy["train"].drop(columns="marital"),
                                  frames["train"].drop(columns="marital"))
    for split, frame in frames.items():          # never in place
        pd.testing.assert_frame_equal(frame, copies[split])
    both = label_noise.flip_train_labels(frames, {"marital": 0.4, "income": 0.2}, seed=0)
    assert _flipped_rows(frames["train"], both["train"], "marital") == _flipped_rows(
        frames["train"], noisy["train"], "marital")
    assert len(_flipped_rows(frames["train"], both["train"], "income")) == 20


def test_bad_flips_are_refused():
    frame = _frame(10)
    with pytest.raises(ValueError, match="0/1 labels"):
        label_noise.flip_column(frame, "x", 0.5, seed=0)
    with pytest.raises(ValueError, match="no label column 'nope'"):
        label_noise.flip_column(frame, "nope", 0.5, seed=0)
    for fraction in (-0.1, 1.5, float("nan"), True, "0.2"):
        with pytest.raises(ValueError, match="must be a number in \\[0, 1\\]"):
            label_noise.check_flips({"marital": fraction})
    with pytest.raises(ValueError, match="unknown task 'nope'"):
        label_noise.check_flips({"nope": 0.2}, ("income", "marital"))
    with pytest.raises(ValueError, match="seed must be"):
        label_noise.flip_column(frame, "marital", 0.5, seed=-1)
    for text in ("marital", "=0.2", "marital=x", "marital=2"):
        with pytest.raises(ValueError, match="TASK=FRACTION|\\[0, 1\\]"):
            label_noise.parse_flip(text)
    assert label_noise.parse_flip(" marital=0.25") == ("marital", 0.25)
    assert label_noise.flip_text({"marital": 0.2, "income": 0}) == "income=0.0,marital=0.2"
    assert label_noise.flip_text(None) == ""


@pytest.mark.parametrize("spec,message", [
    ("marital", "expected TASK=FRACTION"), ("marital=1.5", "must be a number in [0, 1]"),
    ("marital=nan", "must be a number in [0, 1]"), ("=0.2", "expected TASK=FRACTION")])
def test_cli_rejects_a_bad_spec_in_one_line(tmp_path, capsys, spec, message):
    from drgrad.cli.main import main
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", "--dataset", "census", "--grid", "mmoe", "--out", str(tmp_path),
              "--flip-labels", spec])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("drgrad bench: error: argument --flip-labels: ") and message in error


def test_cli_rejects_an_unknown_or_repeated_task_before_training(tmp_path, capsys):
    from drgrad.cli.main import main
    base = ["bench", "--dataset", "census", "--grid", "mmoe", "--out", str(tmp_path / "x")]
    assert main([*base, "--flip-labels", "nope=0.2"]) == 1
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("drgrad bench: error: cell 'mmoe [nope=0.2]': label flips name "
                            "unknown task 'nope'")
    assert main([*base, "--flip-labels", "marital=0.2", "--flip-labels", "marital=0.4"]) == 1
    assert "--flip-labels names task 'marital' twice" in capsys.readouterr().err
    assert main(["bench", "--dataset", "census", "--grid", "census-noise", "--out",
                 str(tmp_path / "y"), "--flip-labels", "income=0.1"]) == 1
    assert "already flips labels (marital=0.0)" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "x") and not os.path.exists(tmp_path / "y")


def test_census_noise_grid():
    cells = GRIDS["census-noise"]
    systems = ["mmoe", "drgrad", "cgc2+drgrad_released", "pcgrad", "ple+gradcraft"]
    assert [c.name for c in cells] == [f"{s} [marital={level!r}]" for level in NOISE_LEVELS
                                       for s in systems]
    assert NOISE_LEVELS == (0.0, 0.2, 0.4)
    clean = {c.name: c for grid in ("paper-table3", "gradcraft", "drgrad-released")
             for c in GRIDS[grid]}
    for cell in cells:
        system = system_name(cell.name, cell.flip_labels)
        assert cell.to_dict() == {**clean[system].to_dict(), "name": cell.name,
                                  "flip_labels": cell.flip_labels}
        assert cell.train_kwargs()["flip_labels"] == cell.flip_labels
    harness._check_cells(cells, ["income", "marital"])
    with pytest.raises(ValueError, match="unknown task 'marital'"):
        harness._check_cells(cells, ["label1", "label2"])
    # A clean cell's record has no flip_labels: runs written before label noise are reused.
    assert "flip_labels" not in parse_grid("mmoe")[0].to_dict()


def _row(cell, seed, income, flips, paper="", role="baseline", status="ok"):
    return {"cell": cell, "seed": seed, "flip_labels": flips, "status": status, "role": role,
            "paper": paper, "test_income": income}


def test_noise_table_pairs_each_level_with_its_mmoe():
    rows = [_row("mmoe [marital=0.0]", s, v, "marital=0.0", paper="mmoe")
            for s, v in enumerate((0.950, 0.951, 0.952))]
    rows += [_row("pcgrad [marital=0.0]", s, v, "marital=0.0", paper="pcgrad")
             for s, v in enumerate((0.951, 0.952, 0.953))]
    rows += [_row("mmoe [marital=0.4]", s, v, "marital=0.4", paper="mmoe")
             for s, v in enumerate((0.940, 0.940, 0.940))]
    rows += [_row("pcgrad [marital=0.4]", s, v, "marital=0.4", paper="pcgrad")
             for s, v in enumerate((0.941, 0.942, 0.943))]
    rows += [_row("pcgrad [marital=0.4]", 3, None, "marital=0.4", status="failed"),
             _row("mmoe", 0, 0.9, None, paper="mmoe")]          # no flips: not in the table
    lines = harness.noise_notes(rows, ["income"])
    assert lines[0] == "## Label noise: income test AUC by flipped training labels"
    assert lines[4:6] == ["| method | marital=0.0 | marital=0.4 |", "|---|---|---|"]
    # Level 0.4: differences 0.001, 0.002, 0.003: t = 0.002 / (0.001 / √3) = √12 on 2 degrees
    # of freedom, p = 1 − √12 / √(2 + 12) = 1 − √(6/7) = 0.0742. Level 0: every difference
    # 0.001, t undefined: "—".
    assert 1 - math.sqrt(6 / 7) == pytest.approx(0.07418, abs=1e-5)
    assert lines[6] == "| mmoe | 0.9510 ± 0.0010 | 0.9400 ± 0.0000 |"
    assert lines[7] == ("| pcgrad | 0.9520 ± 0.0010 (+0.0010, p —) | "
                        "0.9420 ± 0.0010 (+0.0020, p 0.0742) |")
    assert harness.noise_notes(rows[-1:], ["income"]) == []


def test_tiny_grid_run_records_its_flip_level(tmp_path, monkeypatch):
    flips_seen = []
    flip = label_noise.flip_train_labels

    def recording(frames, flips, seed):
        noisy = flip(frames, flips, seed)
        flips_seen.append({task: int((frames["train"][task] != noisy["train"][task]).sum())
                           for task in ("income", "marital")})
        return noisy

    monkeypatch.setattr(label_noise, "flip_train_labels", recording)
    rows = harness.run_bench("census", "mmoe", str(tmp_path), seeds=1, epochs=1, rows=300,
                             batch_size=64, plots=False, verbose=False,
                             flip_labels={"marital": 0.4})
    row, = rows
    assert row["status"] == "ok", row["error"]
    assert (row["cell"], row["flip_labels"]) == ("mmoe [marital=0.4]", "marital=0.4")
    assert flips_seen == [{"income": 0, "marital": 120}]       # round(0.4 × 300) train rows
    with open(os.path.join(row["run_dir"], "metrics.json")) as f:
        metrics = json.load(f)
    assert metrics["flip_labels"] == {"marital": 0.4} and metrics["beta_2"] == 0.999
    with open(os.path.join(os.path.dirname(row["run_dir"]), "cell.json")) as f:
        assert json.load(f)["cell"]["flip_labels"] == {"marital": 0.4}
    saved, = harness.read_results(os.path.join(tmp_path, "results.csv"))
    assert saved["flip_labels"] == "marital=0.4"
    with open(os.path.join(tmp_path, "report.md")) as f:
        report = f.read()
    assert "| method | marital=0.4 |" in report and "| mmoe | " in report


def test_streamed_train_splits_are_refused_before_reading(tmp_path):
    from test_data_user_logs import TASKS, user_log, write_yaml

    from drgrad.training.train import train
    user_log(40).to_parquet(str(tmp_path / "part-0.parquet"), index=False)
    path = write_yaml(str(tmp_path), "parquet")
    with pytest.raises(ValueError, match="flipping labels needs the train split in memory; "
                                         ".* streams it from files"):
        train(path, str(tmp_path / "run"), flip_labels={TASKS[1]: 0.2}, verbose=0)
    assert not os.path.exists(tmp_path / "run")

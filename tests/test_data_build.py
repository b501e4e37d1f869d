"""Tests for data.datasets (CSV spans + manifest) and the `drgrad data` CLI."""
import csv
import json
import os

import numpy as np
import pandas as pd
import pytest
from tfx_bsl.coders import csv_decoder

from drgrad.data import datasets
from drgrad.data.specs import get_spec
from drgrad.cli import main as cli

_TYPE_NAMES = {csv_decoder.ColumnType.INT: "int", csv_decoder.ColumnType.FLOAT: "float",
               csv_decoder.ColumnType.STRING: "string"}


def inferred_types(path):
    """Column types exactly as TFX CsvExampleGen infers them (tfx_bsl's own per-cell rule)."""
    with open(path, newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        widest = [csv_decoder.ColumnType.UNKNOWN] * len(header)
        for row in reader:
            assert len(row) == len(header)
            for index, cell in enumerate(row):
                kind = csv_decoder._InferValueType(cell.encode())  # pylint: disable=protected-access
                widest[index] = max(widest[index], kind)
    return {name: _TYPE_NAMES[kind] for name, kind in zip(header, widest)}


def _spec_types(spec):
    return {**spec.raw_dtypes, **{task: "int" for task in spec.tasks}}


@pytest.mark.parametrize("name, options", [
    ("census-income", {}),
    ("synthetic", {"generator": "angle", "regime": "conflict"}),
])
def test_build_layout_manifest_and_csv_types(tmp_path, name, options):
    result = datasets.build(name, tmp_path, rows=200, seed=1, **options)
    spec = get_spec(name)
    root = tmp_path / spec.name
    assert result["path"] == str(root)
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["dataset"] == spec.name
    assert manifest["tasks"] == list(spec.tasks)
    assert manifest["spans"] == {"1": {"date": None,
                                       "rows": {"train": 200, "eval": 200, "test": 200}}}
    assert manifest["options"] == options
    for split in datasets.SPLITS:
        path = root / "span-1" / split / "part-00000.csv"
        assert inferred_types(path) == _spec_types(spec)
        assert datasets.infer_csv_types(path) == _spec_types(spec)
        frame = pd.read_csv(path, keep_default_na=False)
        assert list(frame.columns) == list(spec.columns)
        assert len(frame) == 200
    # No staging directory is left behind.
    assert sorted(os.listdir(tmp_path)) == [spec.name]


def test_written_csv_round_trips_the_frames(tmp_path):
    frames = datasets.load_frames("census-income", rows=50, seed=2)
    datasets.build("census-income", tmp_path, rows=50, seed=2)
    back = datasets.read_split(tmp_path / "census-income", "eval")
    pd.testing.assert_frame_equal(back, frames["eval"], check_dtype=False)


def test_existing_dataset_is_kept_unless_overwrite(tmp_path):
    datasets.build("synthetic", tmp_path, rows=10)
    marker = tmp_path / "synthetic" / "span-1" / "train" / "part-00000.csv"
    before = marker.read_text()
    with pytest.raises(FileExistsError, match="already exists; remove it or pass --overwrite"):
        datasets.build("synthetic", tmp_path, rows=10, seed=7)
    assert marker.read_text() == before
    datasets.build("synthetic", tmp_path, rows=10, seed=7, overwrite=True)
    assert marker.read_text() != before
    assert sorted(os.listdir(tmp_path)) == ["synthetic"]


def test_failed_build_leaves_nothing(tmp_path):
    with pytest.raises(ValueError, match="regime must be one of"):
        datasets.build("synthetic", tmp_path, regime="chaos")
    assert os.listdir(tmp_path) == []


def test_split_days_stream(tmp_path):
    result = datasets.split_days("synthetic", tmp_path, days=3, rows=100, seed=0)
    manifest = result["manifest"]
    assert list(manifest["spans"]) == ["1", "2", "3"]
    assert [span["date"] for span in manifest["spans"].values()] == [
        "2024-01-01", "2024-01-02", "2024-01-03"]
    total = 0
    for number, span in manifest["spans"].items():
        assert set(span["rows"]) == {"train", "eval"}
        for split, rows in span["rows"].items():
            path = tmp_path / "synthetic" / f"span-{number}" / split / "part-00000.csv"
            assert len(pd.read_csv(path)) == rows
            total += rows
    assert total == 200  # 100 train + 100 eval rows dealt into the days, none lost.


def test_stream_days_by_hand():
    frame = pd.DataFrame({"x": np.arange(8)})
    spans = datasets.stream_days({"train": frame.iloc[:6], "eval": frame.iloc[6:]}, days=2,
                                 seed=0, start_date="2023-12-31")
    rng = np.random.RandomState(0)
    day = rng.randint(0, 2, size=8)
    is_eval = rng.uniform(size=8) < 0.1
    assert [date for date, _ in spans] == ["2023-12-31", "2024-01-01"]
    for d, (_, splits) in enumerate(spans):
        assert list(splits["train"]["x"]) == list(np.flatnonzero((day == d) & ~is_eval))
        assert list(splits["eval"]["x"]) == list(np.flatnonzero((day == d) & is_eval))


@pytest.mark.parametrize("text, kind", [("12", "int"), ("-3", "int"), ("1.5", "float"),
                                        ("nan", "float"), ("1e5", "float"), ("553xx", "string"),
                                        ("?", "string"), (str(2 ** 63), "string")])
def test_csv_value_type_matches_tfx_bsl(text, kind):
    assert datasets.csv_value_type(text) == kind
    inferred = csv_decoder._InferValueType(text.encode())  # pylint: disable=protected-access
    assert _TYPE_NAMES[inferred] == kind


def test_check_frame_rejects_numeric_looking_strings():
    spec = get_spec("movielens-100k")
    frame = pd.DataFrame({c: [1] for c in spec.columns})
    for column in ("gender", "occupation", "zip_prefix", "primary_genre"):
        frame[column] = ["x"]
    frame["zip_prefix"] = ["553"]
    with pytest.raises(ValueError, match="'zip_prefix' holds only numbers"):
        datasets.check_frame(spec, frame, "toy")


def test_unknown_options_are_rejected():
    with pytest.raises(ValueError, match="takes no options"):
        datasets.load_frames("census-income", generator="paper")


# --- CLI ----------------------------------------------------------------------------------
def test_cli_build(tmp_path, capsys):
    code = cli.main(["data", "build", "synthetic", "--out", str(tmp_path), "--rows", "20",
                     "--regime", "conflict", "--generator", "paper"])
    assert code == 0
    out = capsys.readouterr().out
    assert f"wrote synthetic to {tmp_path}/synthetic" in out
    assert "span-1: train 20, eval 20, test 20" in out
    manifest = json.loads((tmp_path / "synthetic" / "manifest.json").read_text())
    assert manifest["options"] == {"generator": "paper", "regime": "conflict"}


def test_cli_split_days(tmp_path, capsys):
    code = cli.main(["data", "split-days", "synthetic", "--out", str(tmp_path), "--rows", "30",
                     "--days", "2"])
    assert code == 0
    out = capsys.readouterr().out
    assert "span-1 (2024-01-01)" in out and "span-2 (2024-01-02)" in out


@pytest.mark.parametrize("argv, message", [
    (["data", "build", "imagenet", "--out", "X"], "unknown dataset 'imagenet'"),
    (["data", "build", "census", "--out", "X", "--regime", "conflict"],
     "--regime only apply to the synthetic dataset"),
    (["data", "build", "synthetic", "--out", "X", "--cos", "2"], r"cos must be in \[-1, 1\]"),
    (["data", "build", "movielens-100k", "--out", "X"], "needs --source"),
    (["data", "build", "census", "--out", "X", "--source", "/nonexistent/census"],
     "source directory not found: /nonexistent/census"),
])
def test_cli_bad_input_is_one_clear_line(tmp_path, capsys, argv, message):
    argv = [str(tmp_path / a) if a == "X" else a for a in argv]
    assert cli.main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("drgrad data: error: ")
    assert len(err.splitlines()) == 1
    assert pytest.importorskip("re").search(message, err)
    assert not os.listdir(tmp_path)


def test_cli_rejects_bad_rows(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["data", "build", "synthetic", "--out", "x", "--rows", "0"])
    assert exit_info.value.code == 2
    assert "expected a positive integer" in capsys.readouterr().err

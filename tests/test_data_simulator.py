"""Tests for `drgrad data simulate` (data/simulator.py, data/simulator_output.py)."""
import filecmp
import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml

from drgrad.cli.main import main as drgrad_main
from drgrad.data import dataset_file, datasets, simulator, simulator_config, simulator_output
from drgrad.data.simulator import SPLITS

SMALL = {"users": 3000, "items": 1500, "authors": 150, "seed": 7}


def _config(preset="default", **knobs):
    return simulator_config.configure(preset, {**SMALL, **knobs})


def _read(dataset_dir, span, split="train"):
    """One split of one span read back with its file format's own reader."""
    folder = os.path.join(dataset_dir, f"span-{span}", split)
    frames = []
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if name.endswith(".csv"):
            frames.append(pd.read_csv(path, keep_default_na=False))
        elif name.endswith(".parquet"):
            import pyarrow.parquet as pq
            frames.append(pq.read_table(path).to_pandas())
        else:
            import tensorflow as tf
            manifest = json.load(open(os.path.join(dataset_dir, "manifest.json")))
            dtypes = {**manifest["raw_dtypes"], "ts": "int",
                      **{task: "int" for task in manifest["tasks"]}}
            kinds = {"int": tf.int64, "float": tf.float32, "string": tf.string}
            spec = {c: tf.io.FixedLenFeature([], kinds[dtypes[c]]) for c in manifest["columns"]}
            records = list(tf.data.TFRecordDataset(path, compression_type="GZIP"))
            parsed = tf.io.parse_example(tf.stack(records), spec)
            frame = pd.DataFrame({c: parsed[c].numpy() for c in manifest["columns"]})
            for column in ("device", "city"):
                frame[column] = frame[column].str.decode("utf-8")
            frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def _tolerance(rate, rows):
    """Calibrated on a day-0 sample: within 10 % of the rate, or 4 binomial sigmas."""
    return max(0.1 * rate, 4 * np.sqrt(rate * (1 - rate) / rows))


def _all_rows(dataset_dir, days):
    return pd.concat([_read(dataset_dir, span, split) for span in range(1, days + 1)
                      for split in SPLITS], ignore_index=True)


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    """3 days x 60,000 rows (two chunks a day), 30 % conflict users, cos 0.8, CSV."""
    config = _config(days=3, rows_per_day=60_000, conflict_user_fraction=0.3, cos=0.8)
    result = simulator_output.simulate(config, tmp_path_factory.mktemp("sim"), "shortvideo",
                                       workers=1)
    rows = {span: pd.concat([_read(result["path"], span, split) for split in SPLITS],
                            ignore_index=True) for span in (1, 2, 3)}
    return config, result, rows


@pytest.fixture(scope="module")
def format_runs(tmp_path_factory):
    """The same 2-day simulation in each format, written by one process."""
    config = _config(days=2, rows_per_day=4000)
    root = tmp_path_factory.mktemp("formats")
    return config, {fmt: simulator_output.simulate(config, root / fmt, "logs", fmt=fmt,
                                                   workers=1)["path"]
                    for fmt in simulator_output.FORMATS}


def _files(folder):
    return sorted(os.path.relpath(os.path.join(dirpath, name), folder)
                  for dirpath, _, names in os.walk(folder) for name in names)


def test_same_seed_same_bytes_whatever_the_workers(format_runs, tmp_path):
    config, paths = format_runs
    for fmt, path in paths.items():
        again = simulator_output.simulate(config, tmp_path / fmt, "logs", fmt=fmt,
                                          workers=2)["path"]
        assert _files(again) == _files(path)
        match, mismatch, errors = filecmp.cmpfiles(path, again, _files(path), shallow=False)
        assert (mismatch, errors) == ([], []), fmt
    other = simulator_output.simulate(simulator_config.configure("default", {**SMALL, "seed": 8,
                                                                      "days": 2,
                                                                      "rows_per_day": 4000}),
                                      tmp_path / "other", "logs", workers=1)["path"]
    assert not filecmp.cmp(os.path.join(paths["csv"], "span-1", "train", "part-00000.csv"),
                           os.path.join(other, "span-1", "train", "part-00000.csv"),
                           shallow=False)


def test_formats_read_back_the_same_rows(format_runs):
    config, paths = format_runs
    for span in (1, 2):
        for split in SPLITS:
            csv = _read(paths["csv"], span, split)
            assert len(csv) > 0
            for fmt in ("parquet", "tfrecord"):
                other = _read(paths[fmt], span, split)
                assert list(other.columns) == list(csv.columns)
                for column in csv.columns:
                    if column == "duration":  # tf.Example floats are float32.
                        np.testing.assert_allclose(other[column], csv[column], rtol=1e-6)
                    else:
                        assert other[column].tolist() == csv[column].tolist(), (fmt, column)


def test_the_dataset_file_reader_reads_every_format(format_runs):
    from drgrad.data import sources

    config, paths = format_runs
    for fmt, path in paths.items():
        frames = sources.load_frames(dataset_file.load(os.path.join(path, "logs.yaml")))
        assert sum(len(frames[split]) for split in SPLITS) == 2 * 4000, fmt
        assert len(frames["test"]) > 0, fmt
        assert list(frames["train"].columns[-6:]) == config.task_names


def test_example_encoding_is_tensorflows_deterministic_serialization():
    import tensorflow as tf

    columns = {"user_id": np.array([0, 300, 2 ** 40]), "device": np.array(["ios", "web", "é"]),
               "duration": np.array([1.5, 30.1, 0.0]), "click": np.array([1, 0, 1])}
    dtypes = {"user_id": "int", "device": "string", "duration": "float", "click": "int"}
    encoded = simulator_output.encode_examples(columns, dtypes)
    for row, record in enumerate(encoded):
        example = tf.train.Example(features=tf.train.Features(feature={
            "user_id": tf.train.Feature(int64_list=tf.train.Int64List(
                value=[columns["user_id"][row]])),
            "device": tf.train.Feature(bytes_list=tf.train.BytesList(
                value=[columns["device"][row].encode()])),
            "duration": tf.train.Feature(float_list=tf.train.FloatList(
                value=[columns["duration"][row]])),
            "click": tf.train.Feature(int64_list=tf.train.Int64List(
                value=[columns["click"][row]]))}))
        assert record == example.SerializeToString(deterministic=True)


def test_task_rates_match_the_requested_ones(default_run):
    config, result, rows = default_run
    data = pd.concat(rows.values(), ignore_index=True)
    assert len(data) == 3 * 60_000
    for task in config.tasks:
        achieved = data[task.name].mean()
        assert abs(achieved - task.rate) < _tolerance(task.rate, len(data)), (task.name, achieved)
        assert result["generator"]["tasks"][task.name]["achieved_rate"] == pytest.approx(
            achieved, abs=1e-12)
    assert 0.03 <= data["click"].mean() <= 0.10


def test_item_zipf_exponent_is_recovered(default_run):
    config, result, rows = default_run
    day = rows[1]
    established = day[day["item_id"] < config.items]  # span 1's pool: the initial items.
    counts = np.sort(established["item_id"].value_counts().to_numpy())[::-1][:100]
    slope = np.polyfit(np.log(np.arange(1, len(counts) + 1)), np.log(counts), 1)[0]
    assert abs(-slope - config.zipf_items) < 0.15, slope


def test_cold_start_share_per_day(default_run):
    config, result, rows = default_run
    days = result["generator"]["days"]
    seen_users, seen_items = set(), set()
    for span, day in zip((1, 2, 3), days):
        data = rows[span]
        for column, share, (lo, hi), seen in (
                ("user_id", config.new_user_share, day["new_user_ids"], seen_users),
                ("item_id", config.new_item_share, day["new_item_ids"], seen_items)):
            new = data[column].between(lo, hi - 1)
            assert abs(new.mean() - share) < 0.01, (span, column, new.mean())
            assert data[column].max() < hi  # Nobody born on a later day.
            assert not seen & set(data.loc[new, column])  # New today: never seen before.
            assert day[f"new_{column[:-3]}_row_share"] == pytest.approx(new.mean())
            seen.update(data[column])


def _phi(a, b):
    return float(np.corrcoef(a, b)[0, 1])


def test_per_user_conflict_flips_the_sign_of_the_label_correlation(default_run):
    config, result, rows = default_run
    data = pd.concat(rows.values(), ignore_index=True)
    conflict_ids = set(result["generator"]["conflict_users"]["ids"])
    assert result["generator"]["conflict_users"]["task"] == "like"
    assert len(conflict_ids) == result["generator"]["conflict_users"]["count"]
    is_conflict = data["user_id"].isin(conflict_ids)
    assert 0.2 < is_conflict.mean() < 0.4
    others, conflict = data[~is_conflict], data[is_conflict]
    # Rare labels bound a negative correlation near -sqrt(rate_click * rate_like) = -0.03.
    assert _phi(others["click"], others["like"]) > 0.03
    assert _phi(conflict["click"], conflict["like"]) < -0.01
    # dislike runs against click for everyone; finish agrees with it for everyone.
    assert _phi(others["click"], others["dislike"]) < 0 and _phi(conflict["click"],
                                                                 conflict["dislike"]) < 0
    assert _phi(conflict["click"], conflict["finish"]) > 0
    world = simulator.World(simulator_config.Config.from_dict(result["generator"]["config"]))
    assert set(world.conflict_user_ids().tolist()) == conflict_ids


def test_gradcraft_views_are_nested(tmp_path):
    config = _config("gradcraft", days=1, rows_per_day=20_000)
    path = simulator_output.simulate(config, tmp_path, "gc", workers=1,
                                     preset="gradcraft")["path"]
    data = _all_rows(path, 1)
    assert list(data.columns[-6:]) == ["EffectiveView", "LongView", "CompleteView", "Like",
                                       "Follow", "Forward"]
    assert (data["CompleteView"] <= data["LongView"]).all()
    assert (data["LongView"] <= data["EffectiveView"]).all()
    assert data["CompleteView"].sum() > 1000  # Nesting is not met by an empty task.
    for task in config.tasks:
        assert abs(data[task.name].mean() - task.rate) < _tolerance(task.rate, len(data))


def test_dataset_file_manifest_and_columns(default_run):
    config, result, rows = default_run
    path = result["path"]
    with open(result["description"]) as handle:
        document = yaml.safe_load(handle)
    assert list(document) == ["name", "tasks", "task_weights", "features", "transform",
                              "personalization", "partition_feature", "timestamp", "source"]
    assert document["source"] == {"format": "csv", "path": "."}
    dataset = dataset_file.load(result["description"])
    assert dataset.name == "shortvideo" and dataset.tasks == config.task_names
    assert dataset.source_path == path
    inferred = datasets.infer_csv_types(os.path.join(path, "span-2", "eval", "part-00000.csv"))
    assert {c: inferred[c] for c in dataset.features.dtypes} == dataset.features.dtypes
    assert set(dataset.feature_columns) == set(dataset.features.dtypes)
    assert inferred["ts"] == "int" and all(inferred[t] == "int" for t in dataset.tasks)
    data = rows[2]
    assert data[dataset.tasks].isin((0, 1)).all().all()
    day_start = 1704067200 + 86_400  # 2024-01-02T00:00:00Z, span 2.
    assert data["ts"].between(day_start, day_start + 86_399).all()
    assert (data["hour"] == (data["ts"] - day_start) // 3600).all()
    with open(os.path.join(path, "manifest.json")) as handle:
        manifest = json.load(handle)
    assert list(manifest) == ["dataset", "spans", "tasks", "columns", "raw_dtypes", "source",
                              "rows_per_split_limit", "seed", "options"]
    assert manifest["spans"]["3"]["date"] == "2024-01-03"
    assert sum(manifest["spans"]["3"]["rows"].values()) == 60_000
    assert 0.08 < manifest["spans"]["3"]["rows"]["eval"] / 60_000 < 0.12
    assert 0.08 < manifest["spans"]["3"]["rows"]["test"] / 60_000 < 0.12
    assert manifest["columns"] == list(rows[1].columns)
    assert sorted(os.listdir(path)) == ["generator.json", "manifest.json", "shortvideo.yaml",
                                        "span-1", "span-2", "span-3"]


def test_a_failed_run_leaves_only_complete_spans(tmp_path, monkeypatch):
    config = _config(days=3, rows_per_day=2000)
    rows = simulator.World.rows

    def fail_on_day_two(world, day, chunk):
        if day == 1:
            raise RuntimeError("killed")
        return rows(world, day, chunk)

    monkeypatch.setattr(simulator.World, "rows", fail_on_day_two)
    with pytest.raises(RuntimeError, match="killed"):
        simulator_output.simulate(config, tmp_path, "logs", workers=1)
    assert sorted(os.listdir(tmp_path / "logs")) == [".span-2.tmp", "span-1"]


def test_settings_and_bad_knobs():
    config = simulator_config.configure("default", {"cos": -0.2}, [
        "tasks=click,like,dislike", "tasks.like.rate=0.04", "tasks.comment.rate=0.01",
        "tasks.comment.parent=click", "zipf_items=1.3", "tasks.dislike.cos=none"])
    assert config.task_names == ["click", "like", "dislike", "comment"]
    assert config.tasks[1].rate == 0.04 and config.tasks[3].parent == "click"
    assert config.zipf_items == 1.3 and config.conflict_task == "like"
    np.testing.assert_allclose(config.task_cos(), [1.0, -0.2, 0.2, -0.2])
    assert simulator_config.configure("default", {}, ["tasks=click,finish"]).conflict_task is None
    for settings, message in (
            (["nope=1"], "unknown knob"), (["days"], "KEY=VALUE"),
            (["days=two"], "expected int"), (["tasks.x.cos=0.1"], "add it with"),
            (["tasks.like.parent=click", "tasks.like.rate=0.06"], "rate must be below"),
            (["tasks.like.cos=2"], "cos must be in"), (["conflict_task=click"], "auxiliary"),
            (["tasks=click,a,b"], "unknown tasks"), (["new_user_share=1"], "new_user_share"),
            (["eval_fraction=0.5", "test_fraction=0.5"], "eval_fraction \\+ test_fraction")):
        with pytest.raises(ValueError, match=message):
            simulator_config.configure("default", {}, settings)
    with pytest.raises(ValueError, match="unknown preset"):
        simulator_config.configure("nope")


def test_cli_prints_what_it_wrote_and_rejects_bad_input(tmp_path, capsys):
    argv = ["data", "simulate", "--out", str(tmp_path), "--name", "tiny", "--days", "2",
            "--rows-per-day", "3000", "--users", "400", "--items", "300", "--authors", "30",
            "--workers", "1", "--set", "tasks=click,like"]
    assert drgrad_main(argv) == 0
    out = capsys.readouterr().out
    assert f"wrote tiny to {tmp_path}/tiny" in out
    assert "span-2 (2024-01-02): train " in out
    assert "task rates (requested -> achieved): click 5.00% -> " in out
    assert drgrad_main(argv) == 1
    assert "already exists" in capsys.readouterr().err
    assert drgrad_main(argv + ["--overwrite", "--cos", "1.5"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cos must be in [-1, 1]" in err
    assert drgrad_main(argv + ["--overwrite", "--name", "Bad_Name"]) == 1
    assert "name: String should match pattern" in capsys.readouterr().err


_PEAK_RSS = """
import resource, sys, tempfile
from drgrad.data import simulator_config, simulator_output
config = simulator_config.configure("default", {"days": 1, "rows_per_day": int(sys.argv[1]),
                                         "users": 20000, "items": 5000, "authors": 500})
simulator_output.simulate(config, tempfile.mkdtemp(), "mem", workers=1)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def _peak_rss_mb(rows):
    done = subprocess.run([sys.executable, "-c", _PEAK_RSS, str(rows)], capture_output=True,
                          text=True, timeout=300, check=True)
    return int(done.stdout.split()[-1]) / 1024


def test_memory_does_not_grow_with_rows():
    small, large = _peak_rss_mb(10_000), _peak_rss_mb(200_000)
    assert large - small < 60, (small, large)


@pytest.mark.e2e
def test_memory_does_not_grow_to_a_million_rows():
    small, large = _peak_rss_mb(10_000), _peak_rss_mb(1_000_000)
    assert large - small < 60, (small, large)

"""`drgrad data split-days --dataset FILE`: one span per UTC day of a user's `timestamp`
column, in date order, each day split train / eval by ExampleGen's hash rule on the partition
feature; clear errors for a file without `timestamp` and for a bad timestamp column."""
import json
import re

import numpy as np
import pandas as pd
import pytest

from drgrad.data import datasets, sources, specs
from test_data_user_logs import user_log, write_yaml

MIDNIGHT = 1_700_006_400          # 2023-11-15 00:00:00 UTC (1_700_006_400 = 19_676 * 86_400)
DATES = ["2023-11-15", "2023-11-16", "2023-11-18"]
ROWS_PER_DAY = [500, 300, 200]    # day offsets 0, 1 and 3: the 17th has no rows


def _dated_log():
    frame = user_log(sum(ROWS_PER_DAY), seed=4)
    offsets = np.repeat([0, 1, 3], ROWS_PER_DAY)
    seconds = np.random.RandomState(0).randint(0, 86_400, len(frame))
    frame["ts"] = MIDNIGHT + offsets * 86_400 + seconds
    return frame.sample(frac=1.0, random_state=1).reset_index(drop=True)  # Days interleaved.


def _log_file(tmp_path, frame, fmt="parquet", **overrides):
    logs = tmp_path / "logs"
    logs.mkdir()
    if fmt == "parquet":
        frame.to_parquet(str(logs / "log.parquet"), index=False)
    else:
        frame.to_csv(str(logs / "log.csv"), index=False)
    return write_yaml(str(logs), fmt, **overrides)


def test_one_span_per_day_in_date_order_split_by_the_partition_rule(tmp_path, capsys):
    from drgrad.cli.main import main  # pylint: disable=g-import-not-at-top

    frame = _dated_log()
    path = _log_file(tmp_path, frame)
    assert main(["data", "split-days", "--dataset", path, "--out", str(tmp_path / "days")]) == 0
    out = capsys.readouterr().out
    root = tmp_path / "days" / "shortvideo"
    assert f"wrote shortvideo to {root}" in out and "3 spans" in out
    manifest = json.loads((root / "manifest.json").read_text())
    assert [manifest["spans"][str(n)]["date"] for n in (1, 2, 3)] == DATES
    assert manifest["timestamp"] == "ts"
    spec = specs.get_spec(path)
    owner = {}
    for number, expected_rows in enumerate(ROWS_PER_DAY, start=1):
        counts = manifest["spans"][str(number)]["rows"]
        assert sorted(counts) == ["eval", "train"]
        assert counts["train"] + counts["eval"] == expected_rows
        assert 0.8 < counts["train"] / expected_rows < 0.98
        for split in ("train", "eval"):
            written = datasets.read_split(str(root), split, span=number)
            assert list(written.columns) == list(spec.columns)
            assert len(written) == counts[split]
            for uid in written["uid"]:
                # ExampleGen's rule with train 9 / eval 1 buckets: a user is in one split.
                assert sources.split_of(sources.partition_key(
                    {"uid": uid}, spec.raw_dtypes, "uid"), datasets.DAILY_BUCKETS) == split
                assert owner.setdefault(uid, split) == split
    # Every row of the day, nothing else: the day's durations are the log's.
    day_two = frame[(frame["ts"] - MIDNIGHT) // 86_400 == 1]
    written = pd.concat([datasets.read_split(str(root), s, span=2) for s in ("train", "eval")])
    assert sorted(written["duration"]) == sorted(day_two["duration"])

    assert main(["data", "split-days", "--dataset", path, "--out", str(tmp_path / "two"),
                 "--days", "2"]) == 0
    manifest = json.loads((tmp_path / "two" / "shortvideo" / "manifest.json").read_text())
    assert [span["date"] for span in manifest["spans"].values()] == DATES[:2]


@pytest.mark.parametrize("change, message", [
    ({"ts": None}, r"log.csv: the timestamp column 'ts' has 2 null rows"),
    ({"ts": 1.7e9 + 0.5}, r"log.csv: the timestamp column 'ts' has 2 rows that are not integer "
                          r"unix seconds \(e.g. 1700000000.5\)"),
    ({"ts": "yesterday"}, r"has 2 rows that are not integer unix seconds \(e.g. yesterday\)"),
])
def test_a_bad_timestamp_column_is_one_line(tmp_path, capsys, change, message):
    from drgrad.cli.main import main  # pylint: disable=g-import-not-at-top

    frame = _dated_log().astype({"ts": object})
    for column, value in change.items():
        frame.loc[[4, 9], column] = value
    path = _log_file(tmp_path, frame, fmt="csv")
    assert main(["data", "split-days", "--dataset", path, "--out", str(tmp_path / "d")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and re.search(message, err[0]), err
    assert not (tmp_path / "d" / "shortvideo").exists()


def test_no_timestamp_key_or_column_and_name_xor_dataset(tmp_path, capsys):
    from drgrad.cli.main import main  # pylint: disable=g-import-not-at-top

    frame = _dated_log()
    path = _log_file(tmp_path, frame, timestamp=None)
    assert main(["data", "split-days", "--dataset", path, "--out", str(tmp_path / "d")]) == 1
    assert f"{path} has no `timestamp` key" in capsys.readouterr().err

    path = write_yaml(str(tmp_path / "logs"), "parquet", timestamp="when")
    assert main(["data", "split-days", "--dataset", path, "--out", str(tmp_path / "d")]) == 1
    assert "log.parquet: the timestamp column 'when' is missing" in capsys.readouterr().err

    assert main(["data", "split-days", "census", "--dataset", path, "--out",
                 str(tmp_path / "d")]) == 1
    assert "a built-in NAME or --dataset FILE" in capsys.readouterr().err

"""`drgrad data init` and `drgrad data check` on a user's own log (data/init_draft.py,
data/check.py), through the CLI: a draft that check accepts, and one test per bad input."""
import os
import shutil

import numpy as np
import pandas as pd
import pytest
import tensorflow_data_validation as tfdv
import yaml
from tensorflow_metadata.proto.v0 import schema_pb2

from drgrad.cli import main as cli
from drgrad.data import dataset_file, init_draft

ROWS = 2000
# span layout: (span, split, first row, end row) of the log
PARTS = ((1, "train", 0, 800), (1, "eval", 800, 1000), (2, "train", 1000, 1800),
         (2, "eval", 1800, 2000))
CITIES = ("paris", "lyon", "nice", "lille", "brest")
LABELS = ("like", "finish", "share")


def short_video_log(rows=ROWS, seed=0):
    """A short-video log: ids, a city, a duration, a unix-seconds ts and three 0/1 tasks
    whose odds depend on the user, the city and the duration (a learnable signal)."""
    rng = np.random.RandomState(seed)
    users = rng.randint(0, 150, rows)
    items = rng.randint(0, 400, rows)
    city = rng.randint(0, len(CITIES), rows)
    duration = np.round(rng.gamma(2.0, 15.0, rows) + 0.01, 2)
    affinity = (users % 5 - 2) / 2 + (city == 0) - np.log1p(duration) / 4
    labels = {}
    for offset, task in enumerate(LABELS):
        odds = 1 / (1 + np.exp(-(affinity + offset - 1)))
        labels[task] = (rng.rand(rows) < odds).astype(np.int64)
    return pd.DataFrame({
        "uid": [f"u{user:03d}" for user in users], "item_id": items.astype(np.int64),
        "author_id": (items % 37).astype(np.int64), "city": [CITIES[c] for c in city],
        "duration": duration, "ts": 1_700_000_000 + np.sort(rng.randint(0, 14 * 86400, rows)),
        **labels})


def write_spans(frame, root, fmt):
    for span, split, start, end in PARTS:
        folder = root / f"span-{span}" / split
        folder.mkdir(parents=True)
        part = frame.iloc[start:end]
        if fmt == "csv":
            part.to_csv(folder / "part-00000.csv", index=False)
        else:
            part.to_parquet(folder / "part-00000.parquet", index=False)


def write_tfrecord(frame, path):
    import tensorflow as tf

    def feature(value):
        if isinstance(value, str):
            return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value.encode()]))
        if isinstance(value, float):
            return tf.train.Feature(float_list=tf.train.FloatList(value=[value]))
        return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))

    with tf.io.TFRecordWriter(str(path), options="GZIP") as writer:
        for row in frame.to_dict("records"):
            example = tf.train.Example(features=tf.train.Features(
                feature={name: feature(value) for name, value in row.items()}))
            writer.write(example.SerializeToString())


def drgrad(capsys, *argv):
    code = cli.main(["data", *map(str, argv)])
    captured = capsys.readouterr()
    return code, captured.out.splitlines(), captured.err.splitlines()


def name_tasks(path):
    """What the user does to the draft: primary task first, and a weight."""
    document = yaml.safe_load(path.read_text())
    document["tasks"] = ["finish", "like", "share"]
    document["task_weights"] = {"share": 0.5}
    path.write_text(yaml.safe_dump(document, sort_keys=False))


@pytest.mark.parametrize("fmt", ["csv", "parquet", "tfrecord"])
def test_init_drafts_a_file_that_check_accepts(tmp_path, capsys, fmt):
    logs = tmp_path / "Short_Video logs"
    if fmt == "tfrecord":
        logs.mkdir()
        write_tfrecord(short_video_log(), logs / "log.tfrecord.gz")
    else:
        write_spans(short_video_log(), logs, fmt)
    out = tmp_path / "sv.yaml"
    code, lines, errors = drgrad(capsys, "init", "--from", logs, "--out", out)
    assert (code, errors) == (0, [])
    # Columns in file order; a tf.Example has none, so by name.
    tasks = ["finish", "like", "share"] if fmt == "tfrecord" else ["like", "finish", "share"]
    categorical = (["author_id", "city", "item_id", "uid"] if fmt == "tfrecord" else
                   ["uid", "item_id", "author_id", "city"])
    assert lines[0] == (f"wrote {out}: tasks {', '.join(tasks)}; 4 categorical, 1 numeric; "
                        f"timestamp ts")
    assert lines[-1] == f"  drgrad data check --dataset {out}"

    draft = dataset_file.load(str(out))
    assert draft.name == "short-video-logs"
    assert (draft.tasks, draft.features.categorical) == (tasks, categorical)
    assert draft.features.numeric == ["duration"] and draft.features.dtypes == {}
    assert draft.timestamp == "ts"
    assert (draft.personalization.user, draft.personalization.item,
            draft.personalization.author) == (["uid"], ["item_id"], ["author_id"])
    assert (draft.source.format, draft.source.path) == (fmt, "Short_Video logs")
    schema = tfdv.load_schema_text(str(tmp_path / "schema.pbtxt"))
    assert {feature.name: schema_pb2.FeatureType.Name(feature.type)
            for feature in schema.feature} == {
        "uid": "BYTES", "item_id": "INT", "author_id": "INT", "city": "BYTES",
        "duration": "FLOAT", "ts": "INT", "like": "INT", "finish": "INT", "share": "INT"}
    # No string domains (an unseen id is the unknown id), no presence fraction (null features)
    # but for the labels: a null label is an anomaly.
    assert not schema.string_domain
    assert not any(feature.HasField("domain") for feature in schema.feature)
    assert {feature.name: feature.presence.min_fraction for feature in schema.feature
            if feature.presence.HasField("min_fraction")} == {"like": 1.0, "finish": 1.0,
                                                              "share": 1.0}

    name_tasks(out)
    files = 1 if fmt == "tfrecord" else 4
    assert drgrad(capsys, "check", "--dataset", out) == (
        0, [f"ok: {ROWS} rows in {files} files, 9 columns"], [])


def test_init_refuses_to_overwrite_and_needs_a_label(tmp_path, capsys):
    logs = tmp_path / "logs"
    write_spans(short_video_log().drop(columns=list(LABELS)), logs, "csv")
    code, lines, errors = drgrad(capsys, "init", "--from", logs, "--out", tmp_path / "a.yaml")
    assert (code, lines) == (1, [])
    assert errors == [f"drgrad data: error: {logs}: no 0/1 label column in the {ROWS:,} "
                      f"sampled rows (a task is an int column holding only 0 and 1, no nulls)"]
    (tmp_path / "a.yaml").write_text("kept")
    shutil.rmtree(logs)
    write_spans(short_video_log(), logs, "csv")
    code, _, errors = drgrad(capsys, "init", "--from", logs, "--out", tmp_path / "a.yaml")
    assert code == 1
    assert errors == [f"drgrad data: error: {tmp_path / 'a.yaml'} exists; pass --overwrite to "
                      f"replace it"]
    assert (tmp_path / "a.yaml").read_text() == "kept"


# --- bad input: each a copy of an accepted CSV dataset, changed in one way ------------------
@pytest.fixture(scope="module")
def accepted(tmp_path_factory):
    """A folder holding logs/ (CSV span layout), sv.yaml (drafted, tasks named) and its
    schema.pbtxt."""
    root = tmp_path_factory.mktemp("accepted")
    write_spans(short_video_log(), root / "logs", "csv")
    init_draft.write(*init_draft.draft(root / "logs"), root / "sv.yaml")
    name_tasks(root / "sv.yaml")
    return root


@pytest.fixture
def copy(accepted, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(accepted, root)
    return root


def part(root, span, split):
    return root / "logs" / f"span-{span}" / split / "part-00000.csv"


def edit_csv(path, column, rows, value):
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame.loc[list(rows), column] = value
    frame.to_csv(path, index=False)


def edit_yaml(root, **changes):
    document = yaml.safe_load((root / "sv.yaml").read_text())
    document.update(changes)
    (root / "sv.yaml").write_text(yaml.safe_dump(document, sort_keys=False))


def check(capsys, root):
    return drgrad(capsys, "check", "--dataset", root / "sv.yaml")


def test_copy_is_accepted_and_null_features_are_not_anomalies(copy, capsys):
    edit_csv(part(copy, 1, "train"), "city", [0, 5], "")
    edit_csv(part(copy, 2, "eval"), "duration", [9], "")
    assert check(capsys, copy) == (0, [f"ok: {ROWS} rows in 4 files, 9 columns"], [])


def test_typo_in_a_key_names_the_key_and_the_file(copy, capsys):
    text = (copy / "sv.yaml").read_text()
    (copy / "sv.yaml").write_text(text.replace("task_weights:", "task_weight:"))
    code, lines, errors = check(capsys, copy)
    assert (code, lines) == (1, [])
    assert errors == [f"drgrad data: error: {copy / 'sv.yaml'}: unknown key 'task_weight'"]


def test_task_missing_from_the_data(copy, capsys):
    edit_yaml(copy, tasks=["finish", "like", "share", "click"])
    assert check(capsys, copy) == (1, [
        f"{part(copy, span, split)}: column click: missing ({end - start} rows)"
        for span, split, start, end in PARTS], [])


@pytest.mark.parametrize("value, rows", [("2", [3, 4, 5]), ("-1", [0, 7])])
def test_label_outside_0_1(copy, capsys, value, rows):
    edit_csv(part(copy, 2, "train"), "like", rows, value)
    assert check(capsys, copy) == (1, [
        f"{part(copy, 2, 'train')}: column like: label not 0 or 1: {value} ({len(rows)} rows)"],
        [])


def test_null_label(copy, capsys):
    edit_csv(part(copy, 1, "eval"), "share", [1, 2, 3, 4], "")
    assert check(capsys, copy) == (
        1, [f"{part(copy, 1, 'eval')}: column share: null label (4 rows)"], [])


def test_categorical_numeric_in_one_span_and_text_in_another(copy, capsys):
    for split, rows in (("train", 800), ("eval", 200)):
        edit_csv(part(copy, 1, split), "city", range(rows), "7")
    # Against the schema (city is BYTES there), span 1 is the odd one out ...
    assert check(capsys, copy) == (1, [
        f"{part(copy, 1, 'train')}: column city: int values, expected string (schema.pbtxt) "
        f"(800 rows)",
        f"{part(copy, 1, 'eval')}: column city: int values, expected string (schema.pbtxt) "
        f"(200 rows)"], [])
    # ... without one, the first file read sets the type.
    os.remove(copy / "schema.pbtxt")
    assert check(capsys, copy) == (1, [
        f"{part(copy, 2, split)}: column city: string values, expected int (as in "
        f"{part(copy, 1, 'train')}) ({rows} rows)" for split, rows in (("train", 800),
                                                                       ("eval", 200))], [])
    # A draft of such logs is refused with both files named.
    code, _, errors = drgrad(capsys, "init", "--from", copy / "logs", "--out",
                             copy / "again.yaml")
    assert code == 1
    assert errors == [f"drgrad data: error: column 'city' is int in {part(copy, 1, 'train')} "
                      f"but string in {part(copy, 2, 'train')}"]


def test_empty_span(copy, capsys):
    path = part(copy, 2, "eval")
    path.write_text(path.read_text().splitlines()[0] + "\n")
    assert check(capsys, copy) == (1, [f"{path}: span 2 eval: no rows"], [])


def test_declared_dtype_is_honoured(copy, capsys):
    edit_yaml(copy, features={"categorical": ["uid", "item_id", "author_id", "city"],
                              "numeric": ["duration"], "dtypes": {"item_id": "string"}})
    assert check(capsys, copy) == (1, [
        f"{part(copy, span, split)}: column item_id: int values, expected string "
        f"(features.dtypes) ({end - start} rows)" for span, split, start, end in PARTS], [])


def test_tfdv_reports_a_column_the_schema_lacks(copy, capsys):
    path = part(copy, 2, "train")
    frame = pd.read_csv(path, dtype=str)
    frame["channel"] = "feed"
    frame.to_csv(path, index=False)
    assert check(capsys, copy) == (
        1, [f"{path}: column channel: New column (column in data but not in schema)"], [])

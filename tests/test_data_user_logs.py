"""A user's own logs through a dataset file: raw types read from the data, the span layout and
flat files (split by ExampleGen's own hash), nulls, bad labels, and `drgrad train` on them."""
import json
import os

import numpy as np
import pandas as pd
import pytest
import yaml

from drgrad.data import dataset_file, sources, specs
from drgrad.data.datasets import load_frames

TASKS = ["finish", "like", "share"]


def user_log(rows=3000, seed=0):
    """A short-video log with a learnable signal: user/item/author ids, a city, a duration."""
    rng = np.random.RandomState(seed)
    users, items = rng.randint(0, 300, rows), rng.randint(0, 200, rows)
    taste = rng.randn(300)[users] + rng.randn(200)[items]
    duration = rng.gamma(2.0, 20.0, rows)
    city = rng.choice(["paris", "lyon", "nice"], rows)
    score = taste + (duration - 40) / 20 + np.where(city == "paris", 1.0, 0.0)
    frame = pd.DataFrame({
        "uid": [f"u{u}" for u in users], "item_id": items, "author_id": items % 37,
        "city": city, "duration": duration.round(2),
        "ts": 1_700_000_000 + np.arange(rows) * 7})
    for k, task in enumerate(TASKS):
        frame[task] = (score + 0.5 * rng.randn(rows) > 0.6 + 0.6 * k).astype(int)
    return frame


def write_yaml(folder, fmt, path=".", **overrides):
    document = {"name": "shortvideo", "tasks": TASKS,
                "features": {"categorical": ["uid", "item_id", "author_id", "city"],
                             "numeric": ["duration"], "log_numeric": ["duration"]},
                "personalization": {"user": ["uid"], "item": ["item_id"],
                                    "author": ["author_id"]},
                "partition_feature": "uid", "timestamp": "ts",
                "source": {"format": fmt, "path": path}}
    document.update(overrides)
    target = os.path.join(folder, "shortvideo.yaml")
    with open(target, "w") as handle:
        yaml.safe_dump(document, handle, sort_keys=False)
    return target


def write_spans(folder, frame, fmt):
    """span-1 and span-2, each with train/eval (span-2 also test)."""
    halves = np.array_split(np.arange(len(frame)), 2)
    for span, rows in enumerate(halves, start=1):
        part = frame.iloc[rows]
        cut = int(len(part) * 0.8)
        splits = {"train": part.iloc[:cut], "eval": part.iloc[cut:]}
        if span == 2:
            splits = {"train": part.iloc[:cut - 100], "eval": part.iloc[cut - 100:cut],
                      "test": part.iloc[cut:]}
        for split, rows_of in splits.items():
            out = os.path.join(folder, f"span-{span}", split)
            os.makedirs(out)
            if fmt == "csv":
                rows_of.to_csv(os.path.join(out, "part-0.csv"), index=False)
            else:
                rows_of.to_parquet(os.path.join(out, "part-0.parquet"), index=False)


def write_tfrecord(path, frame):
    """gzip tf.Examples; a null is a feature the example lacks."""
    import tensorflow as tf  # pylint: disable=g-import-not-at-top

    with tf.io.TFRecordWriter(path, options="GZIP") as writer:
        for row in frame.to_dict("records"):
            feature = {}
            for name, value in row.items():
                if value is None or value is pd.NA or (isinstance(value, float)
                                                       and np.isnan(value)):
                    continue
                if isinstance(value, str):
                    feature[name] = tf.train.Feature(bytes_list=tf.train.BytesList(
                        value=[value.encode()]))
                elif isinstance(value, float):
                    feature[name] = tf.train.Feature(float_list=tf.train.FloatList(value=[value]))
                else:
                    feature[name] = tf.train.Feature(int64_list=tf.train.Int64List(
                        value=[int(value)]))
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature))
                         .SerializeToString())


def test_raw_types_are_read_from_parquet_csv_and_tfrecord(tmp_path):
    frame = user_log(400)
    expected = {"uid": "string", "item_id": "int", "author_id": "int", "city": "string",
                "duration": "float"}
    for fmt in ("csv", "parquet", "tfrecord"):
        folder = tmp_path / fmt
        folder.mkdir()
        if fmt == "tfrecord":
            write_tfrecord(str(folder / "log.tfrecord.gz"), frame)
        else:
            write_spans(str(folder), frame, fmt)
        spec = specs.get_spec(write_yaml(str(folder), fmt))
        assert spec.raw_dtypes == expected, fmt
        assert spec.personalization["user"] == ("uid",) and spec.tasks == tuple(TASKS)


def test_the_file_overrides_a_type_and_a_type_changing_between_spans_is_an_error(tmp_path):
    frame = user_log(400)
    write_spans(str(tmp_path), frame, "csv")
    path = write_yaml(str(tmp_path), "csv", features={
        "categorical": ["uid", "item_id", "author_id", "city"], "numeric": ["duration"],
        "dtypes": {"item_id": "string"}})
    assert specs.get_spec(path).raw_dtypes["item_id"] == "string"
    # city holds numbers in span-2's eval file only.
    eval_file = tmp_path / "span-2" / "eval" / "part-0.csv"
    broken = pd.read_csv(eval_file).assign(city=7)
    broken.to_csv(eval_file, index=False)
    with pytest.raises(ValueError, match=r"column 'city' is string in .*span-1.* but int in "
                                         r".*span-2/eval/part-0.csv"):
        specs.get_spec(write_yaml(str(tmp_path), "csv"))


def test_flat_files_split_as_example_gen_does(tmp_path):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    from tfx.components.example_gen import base_example_gen_executor as tfx_example_gen
    from tfx.proto import example_gen_pb2

    frame = user_log(2000)
    write_tfrecord(str(tmp_path / "log.tfrecord.gz"), frame)
    dataset = dataset_file.load(write_yaml(str(tmp_path), "tfrecord"))
    frames = load_frames(dataset.path)
    sizes = {split: len(frames[split]) for split in frames}
    assert sum(sizes.values()) == 2000
    assert 0.74 < sizes["train"] / 2000 < 0.86 and 0.05 < sizes["eval"] / 2000 < 0.15
    # One user never spans two splits (partition_feature: uid).
    owners = {}
    for split, part in frames.items():
        for user in part["uid"].unique():
            assert owners.setdefault(user, split) == split
    # Row for row, the split is the one TFX's own partition function gives.
    config = example_gen_pb2.SplitConfig(partition_feature_name="uid")
    dtypes = specs.get_spec(dataset.path).raw_dtypes
    for row in frame.head(200).to_dict("records"):
        example = tf.train.Example(features=tf.train.Features(feature={"uid": tf.train.Feature(
            bytes_list=tf.train.BytesList(value=[row["uid"].encode()]))}))
        tfx_split = tfx_example_gen._PartitionFn(example, 3, [8, 9, 10], config)  # pylint: disable=protected-access
        ours = sources.split_of(sources.partition_key(row, dtypes, "uid"))
        assert ours == sources.SPLITS[tfx_split]
    # Without a partition feature the key is the whole example, as ExampleGen serializes it.
    no_key = example_gen_pb2.SplitConfig()
    row = {name: frame.iloc[0][name] for name in specs.get_spec(dataset.path).features}
    whole = sources.partition_key(row, dtypes, None)
    rebuilt = tf.train.Example.FromString(whole)
    assert tfx_example_gen._GeneratePartitionKey(rebuilt, no_key) == whole  # pylint: disable=protected-access


def test_nulls_and_bad_labels(tmp_path):
    frame = user_log(400).astype({"city": object})
    frame.loc[3, "city"] = None
    frame.loc[5, "duration"] = np.nan
    write_spans(str(tmp_path), frame, "parquet")
    path = write_yaml(str(tmp_path), "parquet")
    frames = load_frames(path)
    train = frames["train"]
    assert train["duration"].notna().all()
    assert train.loc[5, "duration"] == pytest.approx(train["duration"].drop(index=5).mean())
    assert train["city"].isna().sum() == 1        # kept: the preprocessing's unknown id
    from drgrad.data.preprocessing import FeaturePreprocessor  # pylint: disable=g-import-not-at-top
    pre = FeaturePreprocessor(specs.get_spec(path)).fit(train)
    assert pre.transform(train.iloc[[3]])["city"][0] == 0
    assert None not in pre.vocabularies["city"] and "None" not in pre.vocabularies["city"]

    target = tmp_path / "span-1" / "train" / "part-0.parquet"
    for bad, message in ((2, "1 rows that are not 0 or 1 \\(e.g. 2\\)"),
                         (-1, "1 rows that are not 0 or 1 \\(e.g. -1\\)"), (None, "1 null or non-numeric")):
        broken = frame.iloc[:100].astype({"like": object})
        broken.loc[7, "like"] = bad
        broken.to_parquet(target, index=False)
        with pytest.raises(ValueError, match=f"span-1/train/part-0.parquet: label column 'like' "
                                             f"has {message}"):
            load_frames(path)


def test_train_on_a_user_dataset_file_and_one_task(tmp_path):
    from drgrad.cli.main import main  # pylint: disable=g-import-not-at-top

    write_spans(str(tmp_path), user_log(3000), "parquet")
    path = write_yaml(str(tmp_path), "parquet")
    out = tmp_path / "run"
    assert main(["train", "--dataset", path, "--out", str(out), "--epochs", "3",
                 "--batch-size", "256", "--verbose", "0"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["dataset"] == "shortvideo" and sorted(metrics["test"]) == sorted(TASKS)
    assert metrics["test"]["finish"] > 0.7      # the primary task is learnable

    single = write_yaml(str(tmp_path), "parquet", tasks=["finish"])
    out1 = tmp_path / "single"
    assert main(["train", "--dataset", single, "--out", str(out1), "--epochs", "1",
                 "--verbose", "0"]) == 0
    one = json.loads((out1 / "metrics.json").read_text())
    assert one["backbone"] == "shared_bottom" and one["strategy"] == "equal_weight"
    assert list(one["test"]) == ["finish"]
    assert main(["train", "--dataset", single, "--out", str(tmp_path / "x"),
                 "--strategy", "drgrad"]) == 1


def test_a_typo_in_the_dataset_file_is_one_line_naming_key_and_file(tmp_path, capsys):
    from drgrad.cli.main import main  # pylint: disable=g-import-not-at-top

    path = write_yaml(str(tmp_path), "csv", partition_feture="uid")
    with pytest.raises(SystemExit):
        main(["train", "--dataset", path, "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert f"{path}: unknown key 'partition_feture'" in err

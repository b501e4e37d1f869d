"""Streaming a user's TFRecord / Parquet logs (`drgrad.data.streaming`): the streamed
vocabularies and statistics are the in-memory ones, rows split as `sources.split_of` says, the
file is never held whole, and `drgrad train` trains on a streamed TFRecord log."""
import json
import weakref

import numpy as np
import pandas as pd
import pytest

from drgrad.data import dataset_file, sources, specs, streaming
from drgrad.data.datasets import load_frames
from drgrad.data.preprocessing import FeaturePreprocessor
from test_data_user_logs import user_log, write_tfrecord, write_yaml


def _with_nulls(frame):
    """Nulls in a string id, an int id and the numeric column (rows chosen by hand)."""
    frame = frame.astype({"city": object})
    frame["item_id"] = pd.array(frame["item_id"], dtype="Int64")
    frame.loc[[3, 40, 41], "city"] = None
    frame.loc[[5, 77], "item_id"] = pd.NA
    frame.loc[[5, 9, 300], "duration"] = np.nan
    return frame


def _flat_log(folder, fmt, frame, **overrides):
    """`frame` as two flat files of `fmt` under `folder`; returns the dataset file's path."""
    for part, rows in enumerate(np.array_split(np.arange(len(frame)), 2)):
        if fmt == "parquet":
            frame.iloc[rows].to_parquet(str(folder / f"part-{part}.parquet"), index=False)
        else:
            write_tfrecord(str(folder / f"part-{part}.tfrecord.gz"), frame.iloc[rows])
    return write_yaml(str(folder), fmt, **overrides)


@pytest.mark.parametrize("fmt", ["parquet", "tfrecord"])
def test_streamed_vocabularies_and_statistics_equal_the_in_memory_ones(tmp_path, fmt):
    path = _flat_log(tmp_path, fmt, _with_nulls(user_log(1200)),
                     transform={"vocab_frequency_threshold": 2, "vocab_top_k": 150})
    dataset, spec = dataset_file.load(path), specs.get_spec(path)
    assert spec.raw_dtypes["item_id"] == "int" and spec.raw_dtypes["city"] == "string"

    frames = load_frames(path)
    in_memory = FeaturePreprocessor(spec, vocab_top_k=150, vocab_frequency_threshold=2).fit(
        frames["train"])
    stream = streaming.LogStream.from_dataset(dataset, spec, chunk_rows=97)
    streamed, counts = stream.fit(FeaturePreprocessor(spec, vocab_top_k=150,
                                                      vocab_frequency_threshold=2))
    assert counts == {split: len(frames[split]) for split in sources.SPLITS}
    assert streamed.vocabularies == in_memory.vocabularies
    # The transform section applies: at most 150 uids, none seen fewer than twice in train.
    uid_counts = frames["train"]["uid"].value_counts()
    assert len(streamed.vocabularies["uid"]) == min(150, int((uid_counts >= 2).sum()))
    assert set(streamed.vocabularies["uid"]) <= set(uid_counts[uid_counts >= 2].index)
    assert None not in streamed.vocabularies["city"]
    for key in ("mean", "std"):
        assert streamed.numeric_stats["duration"][key] == pytest.approx(
            in_memory.numeric_stats["duration"][key], rel=1e-12)
    # The nulls rule: the train mean of the present raw values fills a null duration.
    train = stream_rows(stream, "train")
    present = train["duration"].dropna()
    assert len(present) < len(train)
    assert streamed.null_fill["duration"] == pytest.approx(present.mean(), rel=1e-12)
    assert frames["train"]["duration"].isna().sum() == 0
    # Model inputs from the stream equal the in-memory ones, row for row.
    batches = list(stream.to_dataset(streamed, "eval", batch_size=64).as_numpy_iterator())
    expected = in_memory.transform(frames["eval"])
    for column in spec.features:
        np.testing.assert_allclose(np.concatenate([b[0][column] for b in batches]),
                                   expected[column], rtol=1e-6)
    null_city = stream_rows(stream, "eval")["city"].isna().to_numpy()
    if null_city.any():
        assert (np.concatenate([b[0]["city"] for b in batches])[null_city] == 0).all()


def stream_rows(stream, split):
    return pd.concat(list(stream.chunks(split)), ignore_index=True)


def test_each_streamed_row_is_in_the_split_split_of_gives(tmp_path):
    path = _flat_log(tmp_path, "tfrecord", user_log(900, seed=3))
    dataset, spec = dataset_file.load(path), specs.get_spec(path)
    stream = streaming.LogStream.from_dataset(dataset, spec, chunk_rows=50)
    seen = 0
    for split in sources.SPLITS:
        rows = stream_rows(stream, split)
        seen += len(rows)
        for uid in rows["uid"]:
            assert sources.split_of(sources.partition_key({"uid": uid}, spec.raw_dtypes,
                                                          "uid")) == split
    assert seen == 900
    # `rows` keeps the first rows of each split in file order.
    first = streaming.LogStream.from_dataset(dataset, spec, rows=10, chunk_rows=7)
    assert stream_rows(first, "eval").equals(stream_rows(stream, "eval").iloc[:10])


def test_the_stream_never_holds_the_file(tmp_path, monkeypatch):
    """20 000 rows in one Parquet file, read 500 at a time: no read returns more than 500 rows
    and no more than two chunks are alive at once, while fitting and over a training epoch."""
    frame = user_log(20_000, seed=2)
    frame.to_parquet(str(tmp_path / "log.parquet"), index=False)
    path = write_yaml(str(tmp_path), "parquet", path="log.parquet")
    dataset, spec = dataset_file.load(path), specs.get_spec(path)

    def whole_file(*args, **kwargs):
        raise AssertionError("read_file reads a whole file")

    read_chunks = sources.read_chunks
    alive, sizes, most_alive = [], [], [0]

    def counted(*args, **kwargs):
        for chunk in read_chunks(*args, **kwargs):
            sizes.append(len(chunk))
            alive[:] = [ref for ref in alive if ref() is not None] + [weakref.ref(chunk)]
            most_alive[0] = max(most_alive[0], len(alive))
            yield chunk

    monkeypatch.setattr(sources, "read_file", whole_file)
    monkeypatch.setattr(sources, "read_chunks", counted)
    stream = streaming.LogStream.from_dataset(dataset, spec, chunk_rows=500)
    pre, counts = stream.fit(FeaturePreprocessor(spec))
    assert sum(sizes) == 20_000 and max(sizes) == 500 and sum(counts.values()) == 20_000
    train = stream.to_dataset(pre, "train", batch_size=1024, shuffle=True, seed=0)
    epochs = [[batch[0]["duration"] for batch in train.as_numpy_iterator()] for _ in range(2)]
    assert sum(sizes) == 60_000 and max(sizes) == 500
    assert most_alive[0] <= 2
    # Each epoch: every train row once, in full batches but the last, in a new order.
    first, second = (np.concatenate(epoch) for epoch in epochs)
    assert len(first) == counts["train"] and {len(b) for b in epochs[0][:-1]} == {1024}
    np.testing.assert_array_equal(np.sort(first), np.sort(second))
    assert not np.array_equal(first, second)


def test_bad_rows_in_any_split_stop_the_fit(tmp_path):
    frame = user_log(600)
    frame.loc[frame.index[-5:], "like"] = 2
    path = _flat_log(tmp_path, "parquet", frame)
    stream = streaming.LogStream.from_dataset(dataset_file.load(path), specs.get_spec(path))
    with pytest.raises(ValueError, match=r"part-1.parquet: label column 'like' has 5 rows that "
                                         r"are not 0 or 1"):
        stream.fit(FeaturePreprocessor(specs.get_spec(path)))


def test_a_large_csv_gets_a_hint(tmp_path, monkeypatch, capsys):
    from drgrad.training.train import load_data  # pylint: disable=g-import-not-at-top

    user_log(400).to_csv(str(tmp_path / "log.csv"), index=False)
    path = write_yaml(str(tmp_path), "csv", path="log.csv")
    dataset = dataset_file.load(path)
    assert not streaming.streams(dataset)
    assert streaming.csv_memory_hint(dataset) is None
    monkeypatch.setattr(streaming, "CSV_IN_MEMORY_BYTES", 1000)
    size = (tmp_path / "log.csv").stat().st_size
    hint = streaming.csv_memory_hint(dataset)
    assert hint.startswith(f"note: {path}: {size / 2**30:.1f} GB of CSV is read into memory")
    assert "convert the logs to Parquet or TFRecord" in hint
    load_data(path, specs.get_spec(path), batch_size=64)
    assert capsys.readouterr().err.strip() == hint


def test_drgrad_train_streams_a_tfrecord_log(tmp_path):
    from drgrad.cli.main import main  # pylint: disable=g-import-not-at-top

    path = _flat_log(tmp_path, "tfrecord", _with_nulls(user_log(3000)))
    assert streaming.streams(dataset_file.load(path))
    out = tmp_path / "run"
    assert main(["train", "--dataset", path, "--out", str(out), "--epochs", "3",
                 "--batch-size", "256", "--verbose", "0"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test"]["finish"] > 0.7 and metrics["val"]["finish"] > 0.7

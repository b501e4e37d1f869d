"""A user's own log, end to end, with no code change: `data check` -> `train` -> `pipeline run`
-> `serve` -> `predict` with raw JSON rows, served outputs equal to the pushed SavedModel called
in-process. Once as a Parquet span layout with the schema `data init` drafted beside the file,
once as flat gzip TFRecord files (split by ExampleGen's hash on the user id; SchemaGen infers
the schema). About 4 minutes per format on 2 cores."""
import json
import os

import numpy as np
import pytest

import serving_fixtures as fx
from test_data_user_logs import TASKS, user_log, write_spans, write_tfrecord, write_yaml

pytestmark = pytest.mark.e2e


def _log(tmp_path, fmt):
    folder = tmp_path / "logs"
    folder.mkdir()
    frame = user_log(4000, seed=1)
    if fmt == "parquet":
        write_spans(str(folder), frame, "parquet")
    else:
        for part, rows in enumerate(np.array_split(np.arange(len(frame)), 2)):
            write_tfrecord(str(folder / f"part-{part}.tfrecord.gz"), frame.iloc[rows])
    return write_yaml(str(folder), fmt), frame


@pytest.mark.parametrize("fmt", ["parquet", "tfrecord"])
def test_own_log_through_every_command(tmp_path, capsys, fmt):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top

    from drgrad.cli.main import main  # pylint: disable=g-import-not-at-top

    dataset, frame = _log(tmp_path, fmt)
    if fmt == "parquet":
        # The TFDV schema `data init` drafts (features optional: VarLen in the Transform) sits
        # beside the dataset file, so the pipeline imports it (ImportSchemaGen).
        assert main(["data", "init", "--from", os.path.dirname(dataset), "--out",
                     os.path.join(os.path.dirname(dataset), "drafted.yaml")]) == 0
        assert os.path.isfile(os.path.join(os.path.dirname(dataset), "schema.pbtxt"))
    assert main(["data", "check", "--dataset", dataset]) == 0
    assert main(["train", "--dataset", dataset, "--out", str(tmp_path / "train"), "--epochs",
                 "2", "--batch-size", "256", "--verbose", "0"]) == 0
    metrics = json.loads((tmp_path / "train" / "metrics.json").read_text())
    assert metrics["test"]["finish"] > 0.7

    capsys.readouterr()
    assert main(["pipeline", "run", "--dataset", dataset, "--root", str(tmp_path / "run"),
                 "--epochs", "3", "--batch-size", "128", "--min-auc", "0.6"]) == 0
    out = capsys.readouterr().out
    assert "pushed model:" in out, out
    version_dir = out.split("pushed model: ")[1].split()[0]
    assert os.path.dirname(version_dir).endswith(os.path.join("serving", "shortvideo"))

    rows = [{name: (value.item() if hasattr(value, "item") else value)
             for name, value in row.items() if name in ("uid", "item_id", "author_id", "city",
                                                        "duration")}
            for row in frame.head(16).to_dict("records")]
    rows_file = tmp_path / "rows.jsonl"
    rows_file.write_text("".join(json.dumps(row) + "\n" for row in rows))
    loaded = tf.saved_model.load(version_dir)
    signature = loaded.signatures["predict_raw"]
    inputs = {name: tf.constant([row[name] for row in rows],
                                signature.structured_input_signature[1][name].dtype)
              for name in rows[0]}
    expected = {task: value.numpy() for task, value in signature(**inputs).items()}
    assert sorted(expected) == sorted(TASKS)

    with fx.running_server(os.path.dirname(os.path.dirname(version_dir))) as server:
        for scheme, port in (("rest", server.rest_port), ("grpc", server.grpc_port)):
            capsys.readouterr()
            assert main(["predict", "--server", f"{scheme}://127.0.0.1:{port}", "--model",
                         "shortvideo", "--input", str(rows_file)]) == 0
            served = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
            assert len(served) == len(rows)
            for task in TASKS:
                np.testing.assert_allclose([line[task] for line in served], expected[task],
                                           atol=1e-5)

"""`transform.materialize=False`: Transform writes only its graph and the Trainer applies it to
the raw examples in its `tf.data` pipeline (`trainer.input_fn`).

Two fresh runs on the same census span (1,000 rows per split, 1 epoch, same seed), one
materialized and one not. Checked through MLMD (what the Trainer read, what Transform wrote)
and by the models: the Trainer sees the same batches in the same order either way, so the two
pushed models give the same predictions on the eval examples.
"""
import glob
import os

import numpy as np
import pytest

pytestmark = pytest.mark.e2e

ROWS = 1000


def _artifacts(paths):
    """`{(node id, "input"|"output", key): [artifact ids]}` of the run's executions (MLMD)."""
    import ml_metadata as mlmd

    from drgrad.pipeline import local_runner

    store = mlmd.MetadataStore(local_runner.metadata_config(paths))
    directions = {mlmd.proto.Event.INPUT: "input", mlmd.proto.Event.OUTPUT: "output"}
    found = {}
    for context in store.get_contexts_by_type("node"):
        node = context.name.rsplit(".", 1)[-1]
        executions = [e.id for e in store.get_executions_by_context(context.id)]
        for event in store.get_events_by_execution_ids(executions):
            if event.type in directions and event.path.steps:
                key = (node, directions[event.type], event.path.steps[0].key)
                found.setdefault(key, []).append(event.artifact_id)
    return found


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    from drgrad.data.datasets import build

    from drgrad.pipeline import local_runner

    tmp = tmp_path_factory.mktemp("materialize")
    data_root = build("census", str(tmp / "data"), rows=ROWS)["path"]
    record = {}
    for materialize in (True, False):
        paths = local_runner.run(data_root, str(tmp / f"run-{materialize}"), "census",
                                 epochs=1, batch_size=256, enable_cache=False,
                                 materialize=materialize)
        record[materialize] = (paths, _artifacts(paths), local_runner.latest_outputs(paths))
    record["eval_examples"] = sorted(glob.glob(
        os.path.join(record[True][0].pipeline_root, "CsvExampleGen", "examples", "*",
                     "Split-eval", "*.gz")))
    return record


def test_unmaterialized_trainer_reads_the_example_gen_examples(runs):
    _, artifacts, outputs = runs[False]
    example_gen = artifacts[("CsvExampleGen", "output", "examples")]
    assert artifacts[("Trainer", "input", "examples")] == example_gen
    # Transform wrote its graph and no transformed examples.
    assert ("Transform", "output", "transform_graph") in artifacts
    assert ("Transform", "output", "transformed_examples") not in artifacts
    assert outputs["blessed"] is True and outputs["pushed"] is True


def test_materialized_trainer_reads_the_transformed_examples(runs):
    _, artifacts, _ = runs[True]
    transformed = artifacts[("Transform", "output", "transformed_examples")]
    assert artifacts[("Trainer", "input", "examples")] == transformed


def test_both_train_the_same_model(runs):
    import tensorflow as tf

    records = []
    for path in runs["eval_examples"]:
        records += [r.numpy() for r in tf.data.TFRecordDataset(path, compression_type="GZIP")]
    assert len(records) == ROWS
    predictions = {}
    for materialize in (True, False):
        served = tf.saved_model.load(runs[materialize][2]["pushed_destination"])
        outputs = served.signatures["serving_default"](examples=tf.constant(records))
        predictions[materialize] = {task: value.numpy() for task, value in outputs.items()}
    assert predictions[True].keys() == predictions[False].keys() == {"income", "marital"}
    for task, expected in predictions[True].items():
        np.testing.assert_allclose(predictions[False][task], expected, rtol=1e-5, atol=1e-6)

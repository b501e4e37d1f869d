"""End-to-end runs of the TFX pipeline with the LocalDagRunner (TFX's own e2e tests as model).

One module-scoped sequence of four runs on the same pipeline root and MLMD store (each run
costs minutes on 2 cores, so every check reads the state the sequence recorded):

1. fresh run on census span-1 (1,000 rows per split, 1 epoch) -> everything executes once,
   the model is blessed and pushed;
2. the same run again with `enable_cache` -> only the Evaluator (its baseline changed) and the
   Pusher re-execute, and the same model is not published twice;
3. an impossible AUC floor (1.0001) -> the Evaluator does not bless, nothing is pushed, the
   serving directory is byte-for-byte unchanged;
4. a corrupted span-2 (a string in the integer `age` column, the `marital` label column
   dropped) -> ExampleValidator flags it, the validation gate fails the run before Transform,
   nothing is pushed.

Then the pushed model is checked against the in-process model on the same examples with the
Transform output deleted (the SavedModel must be hermetic).
"""
import csv
import json
import os
import shutil

import numpy as np
import pytest

pytestmark = pytest.mark.e2e

ROWS = 1000
COMPONENTS = ("CsvExampleGen", "StatisticsGen", "ImportSchemaGen", "ExampleValidator",
              "ValidationGate", "Transform", "Trainer", "Evaluator", "Pusher")
TASKS = ("income", "marital")


def _executions_per_component(pipeline_root):
    counts = {}
    for component in COMPONENTS:
        path = os.path.join(pipeline_root, component, ".system", "executor_execution")
        counts[component] = len(os.listdir(path)) if os.path.isdir(path) else 0
    return counts


def _mlmd_counts(paths):
    import ml_metadata as mlmd

    from drgrad.pipeline import local_runner

    store = mlmd.MetadataStore(local_runner.metadata_config(paths))
    return len(store.get_executions()), len(store.get_artifacts())


def _tree(directory):
    """Every file under `directory` with its size (a snapshot to compare)."""
    listing = {}
    for parent, _, files in os.walk(directory):
        for name in files:
            path = os.path.join(parent, name)
            listing[os.path.relpath(path, directory)] = os.path.getsize(path)
    return listing


def _snapshot(paths):
    from drgrad.pipeline import local_runner

    executions, artifacts = _mlmd_counts(paths)
    return {"per_component": _executions_per_component(paths.pipeline_root),
            "executions": executions, "artifacts": artifacts,
            "serving": _tree(paths.serving_dir), "outputs": local_runner.latest_outputs(paths)}


def _corrupt_span(data_root):
    """span-2 = span-1 with a string in `age` and the `marital` label column removed."""
    for split in ("train", "eval"):
        source = os.path.join(data_root, "span-1", split, "part-00000.csv")
        target = os.path.join(data_root, "span-2", split, "part-00000.csv")
        os.makedirs(os.path.dirname(target))
        with open(source, newline="") as handle:
            rows = list(csv.DictReader(handle))
        columns = [c for c in rows[0] if c != "marital"]
        rows[3]["age"] = "forty-two"
        with open(target, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    from drgrad.data.datasets import build

    from drgrad.pipeline import local_runner

    tmp = tmp_path_factory.mktemp("pipeline_e2e")
    data_root = build("census", str(tmp / "data"), rows=ROWS)["path"]
    root = str(tmp / "run")
    options = dict(epochs=1, batch_size=256, enable_cache=True)
    record = {"data_root": data_root}

    paths = local_runner.run(data_root, root, "census", **options)
    record["paths"] = paths
    record["first"] = _snapshot(paths)

    local_runner.run(data_root, root, "census", **options)
    record["cached"] = _snapshot(paths)

    local_runner.run(data_root, root, "census", min_auc=1.0001, **options)
    record["impossible"] = _snapshot(paths)

    _corrupt_span(data_root)
    with pytest.raises(Exception) as failure:
        local_runner.run(data_root, root, "census", **options)
    record["corrupt_error"] = str(failure.value)
    record["corrupt"] = _snapshot(paths)
    return record


def test_first_run_executes_every_component_once(runs):
    first = runs["first"]
    assert first["per_component"] == {c: 1 for c in COMPONENTS}
    # 9 components + the LatestBlessedModelStrategy resolver.
    assert first["executions"] == 10
    assert first["artifacts"] >= first["executions"]
    assert os.path.isfile(runs["paths"].metadata_path)


def test_first_run_blesses_and_pushes_a_version(runs):
    outputs = runs["first"]["outputs"]
    assert outputs["blessed"] is True and outputs["pushed"] is True
    version_dir = outputs["pushed_destination"]
    assert os.path.dirname(version_dir) == runs["paths"].serving_model_dir
    assert os.path.basename(version_dir).isdigit()
    assert os.path.isfile(os.path.join(version_dir, "saved_model.pb"))
    assert os.path.isfile(os.path.join(version_dir, "model_config.json"))
    assert os.path.isfile(os.path.join(version_dir, "assets.extra", "tf_serving_warmup_requests"))
    assert os.path.isfile(os.path.join(runs["paths"].serving_dir, "models.config"))


def test_first_run_reports_an_auc_per_task(runs):
    from drgrad.pipeline import evaluation

    metrics = evaluation.read_metrics(runs["first"]["outputs"]["evaluation"])
    assert set(metrics) == set(TASKS)
    for task in TASKS:
        assert 0.5 <= metrics[task]["auc"] <= 1.0
        assert metrics[task]["example_count"] == ROWS


def test_cached_rerun_reexecutes_only_evaluator_and_pusher(runs):
    first, cached = runs["first"], runs["cached"]
    expected = {c: 1 for c in COMPONENTS}
    expected.update(Evaluator=2, Pusher=2)
    assert cached["per_component"] == expected
    # Every node gets an execution record (cached ones too), as in TFX's penguin e2e test.
    assert cached["executions"] == 2 * first["executions"]
    # New artifacts: the evaluation, the blessing and the PushedModel record only.
    assert cached["artifacts"] == first["artifacts"] + 3


def test_cached_rerun_does_not_publish_the_same_model_twice(runs):
    cached = runs["cached"]
    assert cached["outputs"]["blessed"] is True
    assert cached["outputs"]["pushed_destination"] == runs["first"]["outputs"]["pushed_destination"]
    assert cached["serving"].keys() == runs["first"]["serving"].keys()


def test_impossible_threshold_pushes_nothing(runs):
    impossible = runs["impossible"]
    assert impossible["outputs"]["blessed"] is False
    assert impossible["outputs"]["pushed"] is False
    assert impossible["per_component"]["Trainer"] == 1  # cached: same data, same config
    assert impossible["per_component"]["Evaluator"] == 3
    assert impossible["serving"] == runs["cached"]["serving"]


def test_corrupted_span_is_flagged_and_stops_before_transform(runs):
    import ml_metadata as mlmd

    from drgrad.pipeline import local_runner

    message = runs["corrupt_error"]
    assert "data span 2 failed validation" in message
    assert "age" in message and "marital" in message
    corrupt = runs["corrupt"]
    # ExampleGen, StatisticsGen, ExampleValidator and the gate ran on span 2; nothing after.
    for component in ("Transform", "Trainer", "Evaluator", "Pusher"):
        assert corrupt["per_component"][component] == runs["impossible"]["per_component"][
            component]
    assert corrupt["per_component"]["ExampleValidator"] == 2
    assert corrupt["serving"] == runs["impossible"]["serving"]
    store = mlmd.MetadataStore(local_runner.metadata_config(runs["paths"]))
    examples = max(store.get_artifacts_by_type("Examples"), key=lambda a: a.id)
    assert examples.custom_properties["span"].int_value == 2
    gate_node = store.get_context_by_type_and_name("node",
                                                   "drgrad-census-income.ValidationGate")
    gate_runs = sorted(store.get_executions_by_context(gate_node.id), key=lambda e: e.id)
    assert gate_runs[-1].last_known_state == mlmd.proto.Execution.FAILED


def test_pushed_model_is_hermetic_and_matches_the_in_process_model(runs):
    import tensorflow as tf
    import tensorflow_transform as tft

    from drgrad.model import build_model
    from drgrad.pipeline import trainer
    from drgrad.model import saving
    from drgrad.pipeline.warm_start import trained_model_dir

    paths = runs["paths"]
    version_dir = runs["first"]["outputs"]["pushed_destination"]
    transform_dir = os.path.join(paths.pipeline_root, "Transform")
    graph_dir = os.path.join(transform_dir, "transform_graph")
    tft_output = tft.TFTransformOutput(os.path.join(graph_dir, os.listdir(graph_dir)[0]))
    raw_spec = tft_output.raw_feature_spec()
    feature_spec = {k: v for k, v in raw_spec.items() if k not in TASKS}

    # 64 raw eval rows, typed as the schema says, as tensors and as serialized tf.Examples.
    with open(os.path.join(runs["data_root"], "span-1", "eval", "part-00000.csv"),
              newline="") as handle:
        rows = list(csv.DictReader(handle))[:64]
    columns = {}
    for name, spec in feature_spec.items():
        if spec.dtype == tf.string:
            columns[name] = tf.constant([r[name].encode() for r in rows])
        elif spec.dtype == tf.int64:
            columns[name] = tf.constant([int(r[name]) for r in rows], tf.int64)
        else:
            columns[name] = tf.constant([float(r[name]) for r in rows], tf.float32)
    examples = []
    for i in range(len(rows)):
        feature = {}
        for name, spec in feature_spec.items():
            value = columns[name][i].numpy()
            if spec.dtype == tf.string:
                feature[name] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))
            elif spec.dtype == tf.int64:
                feature[name] = tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))
            else:
                feature[name] = tf.train.Feature(float_list=tf.train.FloatList(value=[value]))
        examples.append(tf.train.Example(features=tf.train.Features(feature=feature))
                        .SerializeToString())

    # In-process: Transform layer + the model rebuilt exactly as run_fn built it (from the
    # Trainer's recorded custom_config and the Transform output) with its Keras checkpoint.
    model_dir = os.path.dirname(version_dir)
    trainer_root = os.path.join(paths.pipeline_root, "Trainer", "model")
    model_uri = os.path.join(trainer_root, os.listdir(trainer_root)[0])
    run_root = os.path.join(paths.pipeline_root, "Trainer", "model_run")
    with open(os.path.join(run_root, os.listdir(run_root)[0], "trainer_config.json")) as f:
        built = trainer.model_config(tft_output, json.load(f))
    with open(os.path.join(version_dir, trainer.MODEL_CONFIG_FILE)) as f:
        assert json.load(f) == json.loads(built.to_json())
    model = build_model(**built.build_kwargs())
    transformed = tft_output.transform_features_layer()(dict(columns))
    model(transformed, training=False)
    model.load_weights(saving.weights_prefix(trained_model_dir(os.path.join(
        model_uri, "Format-Serving")))).assert_existing_objects_matched()
    expected = {t: v.numpy() for t, v in model(transformed, training=False).items()}
    assert model_dir == paths.serving_model_dir

    # Hermetic: the pushed SavedModel alone, with the Transform output gone.
    shutil.rmtree(transform_dir)
    loaded = tf.saved_model.load(version_dir)
    served = loaded.signatures["serving_default"](examples=tf.constant(examples))
    assert set(served) == set(TASKS)
    for task in TASKS:
        got = served[task].numpy()
        assert got.shape == (len(rows),)
        np.testing.assert_allclose(got, expected[task], atol=1e-5, rtol=0)
        assert np.all((got > 0) & (got < 1))

"""Compile-only tests of the Kubeflow Pipelines v2 YAML and the Vertex PipelineJob JSON.

As TFX's own kubeflow_v2_dag_runner_test: compile, check the file, the component count and the
image, and compare with the committed golden file after removing volatile fields (SDK and TFX
versions, telemetry labels). Regenerate the goldens after an intended change with
`DRGRAD_UPDATE_GOLDEN=1 pytest tests/test_pipeline_compile.py`.
"""
import json
import os

import pytest

from drgrad.pipeline import configs, kubeflow_v2_runner

GOLDEN_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                          "pipeline", "golden")
IMAGE = "gcr.io/drgrad-test/drgrad-pipeline:golden"
# TFX components + the validation gate + SpanForDate; the LatestBlessedModelStrategy resolver
# compiles into two importer-like resolver tasks (model blessing, then model), the analyzer
# cache resolver into one.
EXPECTED_TASKS = {
    "SpanForDate", "latest-analyzer-cache-resolver", "CsvExampleGen", "StatisticsGen", "ImportSchemaGen", "ExampleValidator", "ValidationGate",
    "Transform", "Trainer", "Evaluator", "Pusher",
    "latest-blessed-model-resolver-model-blessing-resolver",
    "latest-blessed-model-resolver-model-resolver",
}
VOLATILE_KEYS = {"sdkVersion", "labels"}


def _normalize(value):
    """Drops volatile fields recursively (versions, telemetry labels)."""
    if isinstance(value, dict):
        return {k: _normalize(v) for k, v in value.items() if k not in VOLATILE_KEYS}
    if isinstance(value, list):
        return [_normalize(v) for v in value]
    return value


def _pipeline_spec(compiled):
    return compiled.get("pipelineSpec", compiled)


@pytest.fixture(scope="module", params=["kfp", "vertex"])
def compiled(request, tmp_path_factory):
    out = tmp_path_factory.mktemp(request.param)
    path = kubeflow_v2_runner.compile_pipeline(request.param, str(out), image=IMAGE,
                                               dataset="census")
    return request.param, path, kubeflow_v2_runner.load_compiled(path)


def test_file_written_with_the_target_format(compiled):
    target, path, document = compiled
    assert os.path.basename(path) == kubeflow_v2_runner.TARGETS[target]
    if target == "vertex":
        assert set(document) >= {"displayName", "pipelineSpec", "runtimeConfig"}
        assert document["displayName"] == "drgrad-census-income"
        assert document["runtimeConfig"]["gcsOutputDirectory"].startswith(
            configs.DEFAULT_CLOUD_ROOT)
    else:
        assert "pipelineInfo" in document and "displayName" not in document


def test_every_component_is_a_task(compiled):
    _, _, document = compiled
    tasks = _pipeline_spec(document)["root"]["dag"]["tasks"]
    assert set(tasks) == EXPECTED_TASKS


def test_every_executor_runs_the_project_image(compiled):
    _, _, document = compiled
    executors = _pipeline_spec(document)["deploymentSpec"]["executors"]
    images = {name: spec["container"]["image"] for name, spec in executors.items()
              if "container" in spec}
    # Every component except the three resolvers (run by the KFP backend) is a container.
    assert len(images) == len(EXPECTED_TASKS) - 3
    assert set(images.values()) == {IMAGE}


def test_pusher_depends_on_the_evaluator_and_the_gate_on_the_validator(compiled):
    _, _, document = compiled
    tasks = _pipeline_spec(document)["root"]["dag"]["tasks"]
    assert "Evaluator" in tasks["Pusher"]["dependentTasks"]
    assert "ExampleValidator" in tasks["ValidationGate"]["dependentTasks"]
    assert "ValidationGate" in tasks["Transform"]["dependentTasks"]


def test_run_date_is_a_runtime_parameter_that_selects_the_example_gen_span(compiled):
    _, _, document = compiled
    spec = _pipeline_spec(document)
    assert spec["root"]["inputDefinitions"]["parameters"] == {
        kubeflow_v2_runner.RUN_DATE_PARAMETER: {"parameterType": "STRING"}}
    tasks = spec["root"]["dag"]["tasks"]
    assert tasks["SpanForDate"]["inputs"]["parameters"]["run_date"] == {
        "componentInputParameter": kubeflow_v2_runner.RUN_DATE_PARAMETER}
    # ExampleGen's range_config comes from SpanForDate's output, by the real task name.
    assert tasks["CsvExampleGen"]["inputs"]["parameters"]["range_config"] == {
        "taskOutputParameter": {"outputParameterKey": "range_config",
                                "producerTask": "SpanForDate"}}
    assert "SpanForDate" in tasks["CsvExampleGen"]["dependentTasks"]
    outputs = spec["components"]["SpanForDate"]["outputDefinitions"]
    assert outputs["parameters"] == {"range_config": {"parameterType": "STRING"}}
    assert tasks["Transform"]["inputs"]["artifacts"]["analyzer_cache"]["taskOutputArtifact"][
        "producerTask"] == "latest-analyzer-cache-resolver"


def test_producer_task_names_are_fixed_only_when_the_real_task_exists():
    document = {"root": {"dag": {"tasks": {
        "A": {},
        "B": {"inputs": {"parameters": {
            "x": {"taskOutputParameter": {"producerTask": "A_task", "outputParameterKey": "o"}},
            "y": {"taskOutputParameter": {"producerTask": "C_task", "outputParameterKey": "o"}},
            "z": {"runtimeValue": {"constant": 1}}}}}}}}}
    assert kubeflow_v2_runner.fix_producer_task_names(document) == 1
    parameters = document["root"]["dag"]["tasks"]["B"]["inputs"]["parameters"]
    assert parameters["x"]["taskOutputParameter"]["producerTask"] == "A"
    assert parameters["y"]["taskOutputParameter"]["producerTask"] == "C_task"


def test_matches_golden(compiled):
    target, path, document = compiled
    golden_path = os.path.join(GOLDEN_DIR, os.path.basename(path))
    normalized = _normalize(document)
    if os.environ.get("DRGRAD_UPDATE_GOLDEN"):
        os.makedirs(GOLDEN_DIR, exist_ok=True)
        kubeflow_v2_runner.write_compiled(golden_path, normalized)
    golden = kubeflow_v2_runner.load_compiled(golden_path)
    assert normalized == golden, (f"{target} compile output differs from {golden_path}; "
                                  "regenerate with DRGRAD_UPDATE_GOLDEN=1 if intended")


@pytest.mark.parametrize("name", ["Drgrad", "drgrad_census", "-drgrad", "", "drgrad census"])
def test_invalid_pipeline_names_are_rejected(name, tmp_path):
    with pytest.raises(ValueError, match=r"\[a-z0-9\]\[a-z0-9-\]\*"):
        kubeflow_v2_runner.compile_pipeline("kfp", str(tmp_path), pipeline_name=name)
    assert not os.listdir(tmp_path)


def test_unknown_target_and_bad_image_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="compile target"):
        kubeflow_v2_runner.compile_pipeline("airflow", str(tmp_path))
    with pytest.raises(ValueError, match="image"):
        kubeflow_v2_runner.compile_pipeline("kfp", str(tmp_path), image="has space:latest")


# --- a user's dataset file (kubeflow_v2_runner.dataset_location) ----------------------------

def _user_dataset(tmp_path, fmt="parquet", schema=True, daily=False):
    """A short-video log in the span layout under tmp_path/logs with its dataset file (and a
    schema.pbtxt beside it, and a split-days manifest, when asked)."""
    from test_data_user_logs import user_log, write_spans, write_yaml

    from drgrad.data.specs import get_spec
    from drgrad.pipeline.schema import schema_text

    folder = tmp_path / "logs"
    (folder / "spans").mkdir(parents=True)
    write_spans(str(folder / "spans"), user_log(600), fmt)
    dataset = write_yaml(str(folder), fmt, path="spans")
    if schema:
        (folder / "schema.pbtxt").write_text(schema_text(get_spec(dataset)))
    if daily:
        (folder / "spans" / "manifest.json").write_text(
            '{"spans": {"1": {"date": "2024-03-01"}, "2": {"date": "2024-03-02"}}}')
    return dataset


def _parameter(task, name):
    return task["inputs"]["parameters"][name]["runtimeValue"]["constant"]


def test_a_dataset_file_in_a_bucket_is_read_from_there(tmp_path):
    dataset = _user_dataset(tmp_path)
    path = kubeflow_v2_runner.compile_pipeline(
        "kfp", str(tmp_path / "out"), image=IMAGE, dataset=dataset,
        dataset_uri="gs://my-bucket/shortvideo/shortvideo.yaml")
    text = open(path).read()
    spec = _pipeline_spec(kubeflow_v2_runner.load_compiled(path))
    tasks = spec["root"]["dag"]["tasks"]
    # Parquet: FileBasedExampleGen; source.path `spans` is taken relative to the URI's folder.
    assert _parameter(tasks["FileBasedExampleGen"], "input_base") == (
        "gs://my-bucket/shortvideo/spans")
    assert _parameter(tasks["ImportSchemaGen"], "schema_file") == (
        "gs://my-bucket/shortvideo/schema.pbtxt")
    assert "SchemaGen" not in tasks
    # No manifest: no run_date; each run ingests the newest span. Nothing local is left in it.
    assert "SpanForDate" not in tasks and "inputDefinitions" not in spec["root"]
    assert str(tmp_path) not in text
    # What the dataset file describes travels in the custom_configs, not as a file to read.
    transform = json.loads(_parameter(tasks["Transform"], "custom_config"))
    assert transform["tasks"] == ["finish", "like", "share"]
    assert transform["categorical"] == ["uid", "item_id", "author_id", "city"]
    assert json.loads(_parameter(tasks["Trainer"], "custom_config"))["model_name"] == "shortvideo"
    assert "gs://YOUR_BUCKET/drgrad/serving/shortvideo" in text


def test_a_dataset_file_without_schema_in_the_image_infers_it_and_keeps_the_daily_date(
        tmp_path, monkeypatch):
    dataset = _user_dataset(tmp_path, fmt="csv", schema=False, daily=True)
    # The dataset file lies in this checkout, as `data/shortvideo/` would.
    monkeypatch.setattr(kubeflow_v2_runner, "CHECKOUT_ROOT", str(tmp_path))
    path = kubeflow_v2_runner.compile_pipeline("vertex", str(tmp_path / "out"), image=IMAGE,
                                               dataset=dataset)
    spec = _pipeline_spec(kubeflow_v2_runner.load_compiled(path))
    tasks = spec["root"]["dag"]["tasks"]
    assert _parameter(tasks["CsvExampleGen"], "input_base") == (
        f"{configs.IMAGE_SOURCE_ROOT}/logs/spans")
    assert "SchemaGen" in tasks and "ImportSchemaGen" not in tasks
    assert _parameter(tasks["SpanForDate"], "data_root") == (
        f"{configs.IMAGE_SOURCE_ROOT}/logs/spans")
    assert spec["root"]["inputDefinitions"]["parameters"] == {
        kubeflow_v2_runner.RUN_DATE_PARAMETER: {"parameterType": "STRING"}}


def test_a_dataset_file_the_pipeline_cannot_read_fails_at_compile_time(tmp_path, capsys):
    from drgrad.cli.main import main

    dataset = _user_dataset(tmp_path)
    out = tmp_path / "out"

    def compile_(*extra):
        return main(["pipeline", "compile", "--target", "kfp", "--out", str(out), "--image",
                     IMAGE, *extra])

    missing = str(tmp_path / "missing.yaml")
    for argv in (["--dataset", missing],
                 ["--dataset", dataset, "--dataset-uri", "logs/shortvideo.yaml"],
                 ["--dataset", dataset, "--dataset-uri", "gs://bucket-only.yaml"],
                 ["--dataset", dataset, "--dataset-uri", "/drgrad/data/logs/"]):
        with pytest.raises(SystemExit) as exit_:
            compile_(*argv)
        assert exit_.value.code == 2
        assert capsys.readouterr().err.strip().splitlines()[-1].startswith(
            "drgrad pipeline compile: error: argument --dataset")

    # tmp_path is outside this checkout: the image cannot hold the file.
    assert compile_("--dataset", dataset) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "is outside this checkout" in error
    assert compile_("--dataset", "census", "--dataset-uri", "gs://b/x/census.yaml") == 2
    assert "--dataset-uri is for a dataset file" in capsys.readouterr().err
    assert not out.exists()

"""The validation gate, the curated schemas, the Beam/runner configs and the pipeline CLI.

Fast unit tests (no pipeline run): the gate executor on hand-written ExampleValidator output,
the committed schemas against their generator, Beam arguments per runner, the DAG's wiring,
and `drgrad pipeline` argument handling.
"""
import os

import pytest

from drgrad.pipeline import configs

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _anomalies_artifact(tmp_path, per_split, span=2):
    from tensorflow_metadata.proto.v0 import anomalies_pb2
    from tfx.types import artifact_utils, standard_artifacts

    artifact = standard_artifacts.ExampleAnomalies()
    artifact.uri = str(tmp_path / "anomalies")
    artifact.split_names = artifact_utils.encode_split_names(list(per_split))
    artifact.span = span
    for split, problems in per_split.items():
        anomalies = anomalies_pb2.Anomalies()
        for feature, description in problems.items():
            anomalies.anomaly_info[feature].description = description
        os.makedirs(os.path.join(artifact.uri, f"Split-{split}"))
        with open(os.path.join(artifact.uri, f"Split-{split}", "SchemaDiff.pb"), "wb") as f:
            f.write(anomalies.SerializeToString())
    return artifact


def _schema_artifact(tmp_path):
    from tfx.types import standard_artifacts

    schema = standard_artifacts.Schema()
    schema.uri = str(tmp_path / "schema")
    os.makedirs(schema.uri)
    with open(os.path.join(schema.uri, "schema.pbtxt"), "w") as handle:
        handle.write('feature { name: "age" type: INT }\n')
    output = standard_artifacts.Schema()
    output.uri = str(tmp_path / "validated")
    return schema, output


def _run_gate(anomalies, schema, output, ignored=None, examples=()):
    from drgrad.pipeline.validation_gate import Executor

    Executor().Do({"anomalies": [anomalies], "schema": [schema], "examples": list(examples)},
                  {"validated_schema": [output]}, {"ignored_splits": ignored})


def test_gate_fails_on_anomalies_naming_span_split_and_feature(tmp_path):
    from drgrad.pipeline.validation_gate import DataValidationError

    anomalies = _anomalies_artifact(tmp_path, {
        "train": {"age": "Expected data of type: INT but got BYTES",
                  "marital": "Column is completely missing"},
        "eval": {}})
    schema, output = _schema_artifact(tmp_path)
    with pytest.raises(DataValidationError) as error:
        _run_gate(anomalies, schema, output)
    message = str(error.value)
    assert "data span 2 failed validation" in message
    assert "2 anomalies" in message
    assert "[train] age: Expected data of type: INT but got BYTES" in message
    assert "[train] marital: Column is completely missing" in message
    assert "[eval]" not in message
    assert not os.path.exists(output.uri)  # nothing published downstream


def test_gate_names_the_span_of_the_validated_examples(tmp_path):
    from tfx.types import standard_artifacts

    from drgrad.pipeline.validation_gate import DataValidationError

    anomalies = _anomalies_artifact(tmp_path, {"train": {"age": "bad"}}, span=0)
    examples = standard_artifacts.Examples()
    examples.set_int_custom_property("span", 7)  # where TFX 1.16's ExampleGen records it
    schema, output = _schema_artifact(tmp_path)
    with pytest.raises(DataValidationError, match="data span 7 failed"):
        _run_gate(anomalies, schema, output, examples=[examples])


def test_gate_passes_clean_data_and_republishes_the_schema(tmp_path):
    anomalies = _anomalies_artifact(tmp_path, {"train": {}, "eval": {}})
    schema, output = _schema_artifact(tmp_path)
    _run_gate(anomalies, schema, output)
    with open(os.path.join(output.uri, "schema.pbtxt")) as handle:
        assert handle.read() == 'feature { name: "age" type: INT }\n'


def test_gate_ignores_only_the_listed_splits(tmp_path):
    from drgrad.pipeline.validation_gate import DataValidationError

    anomalies = _anomalies_artifact(tmp_path, {"train": {}, "eval": {"age": "drift"}})
    schema, output = _schema_artifact(tmp_path)
    _run_gate(anomalies, schema, output, ignored="eval")
    with pytest.raises(DataValidationError, match=r"\[eval\] age: drift"):
        _run_gate(anomalies, schema, _schema_artifact(tmp_path / "again")[1], ignored="train")


def test_gate_reports_missing_validator_output(tmp_path):
    anomalies = _anomalies_artifact(tmp_path, {"train": {}})
    os.remove(os.path.join(anomalies.uri, "Split-train", "SchemaDiff.pb"))
    schema, output = _schema_artifact(tmp_path)
    with pytest.raises(FileNotFoundError, match="ExampleValidator output missing"):
        _run_gate(anomalies, schema, output)


@pytest.mark.parametrize("dataset", ["census-income", "synthetic", "movielens-100k", "byterec"])
def test_committed_schema_matches_its_generator(dataset):
    from drgrad.data.specs import get_spec

    from drgrad.pipeline import schema

    with open(os.path.join(REPO, "data", "schemas", dataset, "schema.pbtxt")) as handle:
        assert handle.read() == schema.schema_text(get_spec(dataset))


def test_curated_schema_types_labels_and_environments():
    from drgrad.data.specs import get_spec
    from tensorflow_metadata.proto.v0 import schema_pb2

    from drgrad.pipeline import schema

    proto = schema.curated_schema(get_spec("census"))
    by_name = {f.name: f for f in proto.feature}
    assert by_name["age"].type == schema_pb2.INT
    assert by_name["education"].type == schema_pb2.BYTES
    assert by_name["income"].int_domain.min == 0 and by_name["income"].int_domain.max == 1
    assert list(by_name["income"].not_in_environment) == ["SERVING"]
    assert all(f.presence.min_fraction == 1.0 for f in proto.feature)
    floats = schema.curated_schema(get_spec("synthetic"))
    dense = next(f for f in floats.feature if f.name == "dense_0")
    assert dense.float_domain.disallow_nan and dense.float_domain.disallow_inf


def test_beam_args_per_runner():
    assert configs.beam_pipeline_args() == [
        "--runner=DirectRunner", "--direct_running_mode=in_memory", "--direct_num_workers=1",
        f"--sdk_container_image={configs.DIRECT_RUNNER_NO_IMAGE}"]
    assert configs.direct_beam_args_by_workers(2)[1] == "--direct_running_mode=multi_processing"
    dataflow = configs.beam_pipeline_args("dataflow", project="p", region="r",
                                          temp_location="gs://b/tmp")
    assert "--runner=DataflowRunner" in dataflow and "--project=p" in dataflow
    assert f"--sdk_container_image={configs.DEFAULT_IMAGE}" in dataflow
    flink = configs.beam_pipeline_args("flink", master="http://localhost:8081")
    assert flink[:2] == ["--runner=FlinkRunner", "--flink_master=http://localhost:8081"]
    spark = configs.beam_pipeline_args("spark", master="http://localhost:6066")
    assert "--spark_rest_url=http://localhost:6066" in spark


@pytest.mark.parametrize("kwargs, message", [
    ({"runner": "prism"}, "unknown Beam runner"),
    ({"direct_running_mode": "threads"}, "direct_running_mode"),
    ({"direct_num_workers": -1}, "direct_num_workers"),
    ({"runner": "dataflow", "project": "p"}, "region, temp_location"),
    ({"runner": "flink"}, "master URL"),
])
def test_beam_args_reject_bad_input(kwargs, message):
    with pytest.raises(ValueError, match=message):
        configs.beam_pipeline_args(**kwargs)


def test_pipeline_names():
    assert configs.default_pipeline_name("census-income") == "drgrad-census-income"
    assert configs.default_pipeline_name("MovieLens_100K") == "drgrad-movielens-100k"
    with pytest.raises(ValueError, match=r"\[a-z0-9\]"):
        configs.check_pipeline_name("Drgrad")


def test_dag_wiring_and_argument_checks(tmp_path):
    from drgrad.pipeline.pipeline import create_pipeline, component_ids
    from drgrad.pipeline.pipeline_config import PipelineConfig

    def config(**options):
        return PipelineConfig.from_options(
            pipeline_name="drgrad-census-income", pipeline_root=str(tmp_path / "root"),
            data_root=str(tmp_path / "data"),
            serving_model_dir=str(tmp_path / "serving" / "census-income"), **options)

    pipeline = create_pipeline(config(dataset="census"))
    components = component_ids(pipeline)
    assert set(components) == {
        "CsvExampleGen", "StatisticsGen", "ImportSchemaGen", "ExampleValidator",
        "ValidationGate", "Transform", "latest-blessed-model-resolver", "Trainer",
        "Evaluator", "Pusher"}
    # Transform and Trainer read the schema only through the gate.
    assert components["Transform"].inputs["schema"].producer_component_id == "ValidationGate"
    assert components["Trainer"].inputs["schema"].producer_component_id == "ValidationGate"
    assert components["Pusher"].inputs["model_blessing"].producer_component_id == "Evaluator"
    first_run = component_ids(create_pipeline(config(dataset="census", schema_path=None)))
    assert "SchemaGen" in first_run and "ImportSchemaGen" not in first_run
    data_only = component_ids(create_pipeline(config(dataset="census", data_only=True)))
    assert set(data_only) == {"CsvExampleGen", "StatisticsGen", "ImportSchemaGen",
                              "ExampleValidator", "ValidationGate", "Transform"}
    warm = component_ids(create_pipeline(config(dataset="census", warm_start=True)))
    assert "base_model" in warm["Trainer"].inputs
    with pytest.raises(ValueError, match="train_steps"):
        create_pipeline(config(dataset="census", train_steps=0))
    with pytest.raises(ValueError, match="min_auc names unknown tasks"):
        create_pipeline(config(dataset="census", min_auc={"incom": 0.6}))
    with pytest.raises(FileNotFoundError, match="schema file"):
        create_pipeline(config(dataset="census", schema_path=str(tmp_path / "none.pbtxt")))
    with pytest.raises(ValueError, match="unknown dataset"):
        create_pipeline(config(dataset="nope"))


def test_eval_config_thresholds_per_task():
    from drgrad.pipeline import evaluation

    config = evaluation.make_eval_config(["income", "marital"], min_auc={"income": 0.7},
                                         max_auc_drop=0.02)
    assert config.model_specs[0].model_type == "tf_generic"
    assert dict(config.model_specs[0].label_keys) == {"income": "income", "marital": "marital"}
    by_task = {}
    for spec in config.metrics_specs:
        (task,) = spec.output_names
        auc = next(m for m in spec.metrics if m.class_name == "AUC")
        by_task[task] = (auc.threshold.value_threshold.lower_bound.value,
                         auc.threshold.change_threshold.absolute.value)
    assert by_task["income"][0] == pytest.approx(0.7)
    assert by_task["marital"][0] == pytest.approx(configs.DEFAULT_MIN_AUC)
    assert by_task["income"][1] == pytest.approx(-0.02)
    with pytest.raises(ValueError, match=r"\[0, 1.0001\]"):
        evaluation.make_eval_config(["income"], min_auc=1.5)
    with pytest.raises(ValueError, match=">= 0"):
        evaluation.make_eval_config(["income"], max_auc_drop=-0.1)


def test_eval_config_metrics_default_and_chosen():
    from drgrad.cli.main import build_parser
    from drgrad.data import get_spec
    from drgrad.pipeline import commands, evaluation
    from drgrad.pipeline.pipeline_config import PipelineConfig

    def names(config):
        return [[m.class_name for m in spec.metrics] for spec in config.metrics_specs]

    assert names(evaluation.make_eval_config(["income", "marital"])) == [
        ["AUC", "ExampleCount"]] * 2
    # AUC is always computed (it gates the push) and comes first.
    assert names(evaluation.make_eval_config(["income"], metrics=["MeanLabel"])) == [
        ["AUC", "MeanLabel"]]
    for bad in (["AUC", "AUC"], ["Precision"], "AUC"):
        with pytest.raises(ValueError, match="metrics must be"):
            evaluation.make_eval_config(["income"], metrics=bad)
    args = build_parser().parse_args(["pipeline", "run", "--metric", "MeanLabel",
                                      "--metric", "Calibration", "--metric", "MeanLabel"])
    assert commands._model_kwargs(args, get_spec("census"))["metrics"] == (
        "AUC", "ExampleCount", "MeanLabel", "Calibration")
    config = PipelineConfig.from_options(
        pipeline_name="drgrad-census-income", pipeline_root="/runs/root", data_root="/data",
        serving_model_dir="/runs/serving/census-income", dataset="census",
        metrics=("AUC", "Calibration"))
    assert names(config.eval_config) == [["AUC", "Calibration"]] * 2


def test_cli_reports_bad_input_in_one_line(tmp_path, capsys):
    from drgrad.cli.main import main

    assert main(["pipeline", "run", "--dataset", "census", "--data-root",
                 str(tmp_path / "missing"), "--root", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--data-root not found" in err
    assert main(["pipeline", "compile", "--target", "kfp", "--out", str(tmp_path),
                 "--image", "bad image"]) == 1
    assert "image" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["pipeline", "compile", "--target", "airflow"])


def test_cli_compile_writes_the_file(tmp_path, capsys):
    from drgrad.cli.main import main

    assert main(["pipeline", "compile", "--target", "vertex", "--out", str(tmp_path),
                 "--image", "gcr.io/p/img:1", "--epochs", "2"]) == 0
    assert (tmp_path / "pipeline.json").is_file()
    assert "gcr.io/p/img:1" in (tmp_path / "pipeline.json").read_text()
    assert "wrote" in capsys.readouterr().out


def test_cli_run_wires_options_and_prints_aucs_and_the_pushed_path(tmp_path, monkeypatch,
                                                                     capsys):
    from drgrad.pipeline import evaluation, local_runner
    from drgrad.cli.main import main

    (tmp_path / "data" / "census-income" / "span-1").mkdir(parents=True)
    calls = {}

    def fake_run(data_root, root, dataset, **kwargs):
        calls.update(data_root=data_root, root=root, dataset=dataset, **kwargs)
        return local_runner.RunPaths(root=root, model_name=dataset)

    monkeypatch.setattr(local_runner, "run", fake_run)
    monkeypatch.setattr(local_runner, "latest_outputs", lambda paths: {
        "evaluation": "/eval", "blessing": "/bless", "blessed": True, "pushed": True,
        "pushed_destination": "/srv/census-income/7"})
    monkeypatch.setattr(evaluation, "read_metrics", lambda uri: {
        "income": {"auc": 0.91234}, "marital": {"auc": 0.98}})
    assert main(["pipeline", "run", "--data-root", str(tmp_path / "data"), "--root",
                 str(tmp_path / "run"), "--epochs", "2", "--min-auc", "0.7", "--no-cache",
                 "--beam-workers", "2"]) == 0
    out = capsys.readouterr().out
    assert "eval AUC income: 0.9123" in out and "eval AUC marital: 0.9800" in out
    assert "pushed model: /srv/census-income/7" in out
    assert calls["data_root"] == str(tmp_path / "data" / "census-income")
    assert calls["dataset"] == "census-income"
    assert calls["epochs"] == 2 and calls["min_auc"] == 0.7
    assert calls["enable_cache"] is False and calls["warm_start"] is False
    assert "--direct_running_mode=multi_processing" in calls["beam_pipeline_args"]
    assert "--direct_num_workers=2" in calls["beam_pipeline_args"]


@pytest.mark.parametrize("partition_feature", [None, "uid"])
def test_a_flat_file_is_hash_split_on_its_partition_feature_only_if_it_has_one(
        tmp_path, partition_feature):
    # A set "" is a set oneof member: ExampleGen would look for a feature named "".
    import yaml

    from drgrad.pipeline.pipeline import create_pipeline, component_ids
    from drgrad.pipeline.pipeline_config import PipelineConfig
    from tfx.proto import example_gen_pb2
    from tfx.utils import proto_utils

    (tmp_path / "logs.csv").write_text("uid,city,click,like\nu1,3,0,1\nu2,4,1,0\n")
    document = {"name": "flat", "tasks": ["click", "like"],
                "features": {"categorical": ["uid", "city"], "numeric": [],
                             "dtypes": {"uid": "string", "city": "int"}},
                "source": {"format": "csv", "path": "logs.csv"}}
    if partition_feature:
        document["partition_feature"] = partition_feature
    (tmp_path / "flat.yaml").write_text(yaml.safe_dump(document))
    config = PipelineConfig.from_options(
        pipeline_name="drgrad-flat", pipeline_root=str(tmp_path / "root"),
        data_root=str(tmp_path), serving_model_dir=str(tmp_path / "serving" / "flat"),
        dataset=str(tmp_path / "flat.yaml"), input_patterns={"flat": "logs.csv"},
        hash_buckets=(8, 1, 1))          # what local_runner makes of a flat file
    example_gen = component_ids(create_pipeline(config))["CsvExampleGen"]
    output_config = proto_utils.json_to_proto(example_gen.exec_properties["output_config"],
                                              example_gen_pb2.Output())
    split_config = output_config.split_config
    assert [split.name for split in split_config.splits] == ["train", "eval", "test"]
    assert split_config.HasField("partition_feature_name") == bool(partition_feature)
    assert split_config.partition_feature_name == (partition_feature or "")

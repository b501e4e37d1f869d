"""`PipelineConfig`: frozen, unknown keys rejected, values checked once at construction, and the
Trainer `custom_config` serialised from it."""
import json

import pydantic
import pytest

from drgrad.pipeline import trainer
from drgrad.pipeline.pipeline_config import PipelineConfig, default_schema_path


REQUIRED = {"pipeline_name": "drgrad-census", "pipeline_root": "/runs/pipeline",
            "data_root": "/data/census", "serving_model_dir": "/runs/serving/census-income",
            "dataset": "census"}


def _config(**options):
    return PipelineConfig.from_options(**{**REQUIRED, **options})


def test_flat_options_go_to_their_sections_and_defaults_fill_the_rest():
    config = _config(epochs=2, min_auc={"income": 0.7}, window_spans=3, enable_cache=True)
    assert config.training.epochs == 2 and config.training.batch_size == 1024
    assert config.evaluation.min_auc == {"income": 0.7}
    assert config.transform.window_spans == 3 and config.runtime.enable_cache is True
    assert config.ingestion.data_root == "/data/census"
    assert config.push.serving_model_dir == "/runs/serving/census-income"
    # Derived once from the validated values.
    assert config.dataset == "census-income"  # the alias, resolved
    assert config.schema_file == default_schema_path("census-income")
    assert config.model_name == "census-income"
    assert config.transform_custom_config["tasks"] == ["income", "marital"]


def test_sections_can_be_given_nested():
    nested = PipelineConfig(
        pipeline_name="drgrad-census", pipeline_root="/runs/pipeline", dataset="census",
        ingestion={"data_root": "/data/census"}, training={"epochs": 2},
        push={"serving_model_dir": "/runs/serving/census-income"})
    assert nested == _config(epochs=2)


def test_config_is_frozen():
    config = _config()
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        config.pipeline_name = "drgrad-other"
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        config.training.epochs = 5


@pytest.mark.parametrize("options, name", [({"epoch": 2}, "epoch"),
                                           ({"training": {"epochz": 2}}, "training.epochz")])
def test_unknown_key_is_rejected_by_name(options, name):
    with pytest.raises(ValueError, match=rf"{name}\n.*Extra inputs are not permitted"):
        _config(**options)


@pytest.mark.parametrize("options, message", [
    ({"epochs": 0}, r"training.epochs\n.*greater than or equal to 1"),
    ({"batch_size": True}, r"training.batch_size\n.*valid integer"),
    ({"learning_rate": -1.0}, r"training.learning_rate\n.*greater than 0"),
    ({"backbone": ""}, r"training.backbone\n.*at least 1 character"),
    ({"hash_buckets": (9, 0)}, r"ingestion.hash_buckets.1\n.*greater than or equal to 1"),
    ({"input_format": "avro"}, r"ingestion.input_format\n.*'csv', 'tfrecord' or 'parquet'"),
    ({"input_patterns": {"a": "x/*", "b": "y/*"}}, "needs 'train' and 'eval' splits"),
    ({"task_weights": {"incom": 2.0}}, r"task_weights names unknown tasks: \['incom'\]"),
    ({"bucketize": {"education": 4}}, "bucketize names non-numeric columns"),
    ({"max_auc_drop": -0.1}, r"max_auc_drop\['income'\] must be >= 0"),
    ({"pipeline_name": "Drgrad"}, r"\[a-z0-9\]\[a-z0-9-\]\*"),
    ({"serving_model_dir": ""}, r"push.serving_model_dir\n.*at least 1 character"),
])
def test_bad_values_are_rejected_with_a_message_naming_them(options, message):
    with pytest.raises(ValueError, match=message):
        _config(**options)


def test_a_missing_schema_file_is_only_checked_when_asked(tmp_path):
    missing = str(tmp_path / "schema.pbtxt")
    with pytest.raises(FileNotFoundError, match="schema file not found"):
        _config(schema_path=missing)
    assert _config(schema_path=missing, check_schema_path=False).schema_file == missing
    assert _config(schema_path=None).schema_file is None


def test_analyzer_cache_off_is_none():
    assert _config(analyzer_cache=False).transform.analyzer_cache is None
    assert _config(analyzer_cache=True).transform.analyzer_cache is True


def test_trainer_config_serialises_what_run_fn_reads():
    config = _config(epochs=3, learning_rate=1, strategy_args={"alpha": 0.5},
                     task_weights={"income": 2.0})
    custom_config = trainer.trainer_config(config)
    assert set(custom_config) == set(trainer._TRAINER_KEYS)  # pylint: disable=protected-access
    assert json.loads(json.dumps(custom_config)) == custom_config
    assert custom_config["epochs"] == 3 and custom_config["learning_rate"] == 1.0
    assert isinstance(custom_config["learning_rate"], float)
    assert custom_config["strategy_args"] == {"alpha": 0.5}
    assert custom_config["task_weights"] == {"income": 2.0}
    assert custom_config["transform"] == config.transform_custom_config
    assert custom_config["model_name"] == "census-income"
    assert custom_config["embedding_dim"] == 8 and custom_config["seed"] == 0


def test_every_option_name_is_unique_so_flat_options_are_unambiguous():
    names = []
    for name, field in PipelineConfig.model_fields.items():
        section = field.annotation
        is_section = isinstance(section, type) and issubclass(section, pydantic.BaseModel)
        names += list(section.model_fields) if is_section else [name]
    assert len(names) == len(set(names))


def test_the_cli_reports_an_invalid_config_in_one_line(tmp_path, capsys):
    from drgrad.cli.main import main  # pylint: disable=g-import-not-at-top

    code = main(["pipeline", "compile", "--target", "kfp", "--out", str(tmp_path),
                 "--max-auc-drop", "-1"])
    err = capsys.readouterr().err
    assert code == 1 and not list(tmp_path.iterdir())
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("drgrad pipeline: error: ") and "max_auc_drop" in err


def test_pipeline_run_distribute_flag_reaches_the_trainer_config():
    """`drgrad pipeline run --distribute multi-worker` -> `training.distribute` ->
    the Trainer's custom_config; a custom_config recorded before the field trains on one
    replica."""
    from drgrad.cli.main import build_parser
    from drgrad.data.specs import get_spec
    from drgrad.pipeline import commands
    args = build_parser().parse_args(["pipeline", "run", "--distribute", "multi-worker"])
    kwargs = commands._model_kwargs(args, get_spec("census"))
    assert kwargs["distribute"] == "multi_worker"
    config = _config(**kwargs)
    custom = trainer.trainer_config(config)
    assert custom["distribute"] == "multi_worker"
    del custom["distribute"]
    assert trainer._check_config(custom)["distribute"] == "none"

"""`drgrad schema freeze`: the schema SchemaGen inferred on a user's dataset file, written beside
the file and imported by the next run (ImportSchemaGen).

The rules on a hand-written schema and the bad inputs are fast; the e2e runs the data half of
the pipeline (`data_only=True`) twice on a 600-row CSV log: about 2 minutes on the 2-core dev
machine.
"""
import os

import pytest

from drgrad.cli.main import main

from test_data_user_logs import TASKS, user_log, write_spans, write_yaml

FEATURES = ["uid", "item_id", "author_id", "city", "duration"]


def _inferred_schema():
    """What SchemaGen infers on the short-video log: a closed value list for `city`, labels as
    plain integers, no environments."""
    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import schema_pb2

    features = "".join(f'feature {{ name: "{name}" type: INT }}\n'
                       for name in ["item_id", "author_id", "ts"] + TASKS)
    return text_format.Parse(
        features + 'feature { name: "uid" type: BYTES }\n'
        'feature { name: "city" type: BYTES domain: "city" }\n'
        'feature { name: "duration" type: FLOAT }\n'
        'string_domain { name: "city" value: "lyon" value: "nice" value: "paris" }\n',
        schema_pb2.Schema())


def test_freeze_restricts_labels_and_opens_categorical_domains_and_says_so(tmp_path):
    from drgrad.data.specs import get_spec
    from drgrad.pipeline.schema import SERVING, TRAINING
    from drgrad.pipeline.schema_freeze import freeze

    (tmp_path / "logs").mkdir()
    write_spans(str(tmp_path / "logs"), user_log(600), "csv")
    spec = get_spec(write_yaml(str(tmp_path / "logs"), "csv"))
    schema = _inferred_schema()

    changes = freeze(schema, spec)

    assert changes == [
        "declared the TRAINING and SERVING environments",
        "labels finish, like, share: integers in {0, 1}, required in TRAINING only",
        "categorical city: the inferred list of values dropped (a new id gets the OOV bucket)"]
    assert list(schema.default_environment) == [TRAINING, SERVING]
    by_name = {feature.name: feature for feature in schema.feature}
    for task in TASKS:
        assert (by_name[task].int_domain.min, by_name[task].int_domain.max) == (0, 1)
        assert list(by_name[task].not_in_environment) == [SERVING]
    assert by_name["city"].WhichOneof("domain_info") is None
    assert not schema.string_domain
    assert by_name["ts"].WhichOneof("domain_info") is None  # not a task: left as inferred
    assert freeze(schema, spec) == []  # frozen twice: nothing more to change


def test_freeze_refuses_a_schema_of_another_dataset_or_a_text_label(tmp_path):
    from tensorflow_metadata.proto.v0 import schema_pb2

    from drgrad.data.specs import get_spec
    from drgrad.pipeline.schema_freeze import freeze

    (tmp_path / "logs").mkdir()
    write_spans(str(tmp_path / "logs"), user_log(600), "csv")
    spec = get_spec(write_yaml(str(tmp_path / "logs"), "csv"))
    schema = _inferred_schema()
    del schema.feature[0]  # item_id
    with pytest.raises(ValueError, match=r"lacks columns of dataset 'shortvideo': \['item_id'\]"):
        freeze(schema, spec)
    schema = _inferred_schema()
    next(f for f in schema.feature if f.name == "like").type = schema_pb2.BYTES
    with pytest.raises(ValueError, match=r"integer columns, the schema has like \(BYTES\)"):
        freeze(schema, spec)


def _one_error_line(capsys):
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    return lines[0]


def test_no_run_under_root_and_a_missing_dataset_file_are_one_line_exit_2(tmp_path, capsys):
    (tmp_path / "logs").mkdir()
    write_spans(str(tmp_path / "logs"), user_log(600), "csv")
    dataset = write_yaml(str(tmp_path / "logs"), "csv")

    assert main(["schema", "freeze", "--root", str(tmp_path / "empty"), "--dataset",
                 dataset]) == 2
    assert "no pipeline run under" in _one_error_line(capsys)
    assert not os.path.exists(tmp_path / "empty" / "metadata.sqlite")  # not created by reading

    missing = str(tmp_path / "nowhere.yaml")
    assert main(["schema", "freeze", "--root", str(tmp_path), "--dataset", missing]) == 2
    assert _one_error_line(capsys) == (f"drgrad schema freeze: error: dataset file {missing} "
                                       "not found")
    assert main(["schema", "freeze", "--root", str(tmp_path), "--dataset", "census"]) == 2
    assert "built-in datasets have curated schemas" in _one_error_line(capsys)
    assert not os.path.exists(tmp_path / "logs" / "schema.pbtxt")


@pytest.mark.e2e
def test_a_frozen_schema_is_imported_by_the_next_run(tmp_path, capsys):
    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import schema_pb2

    from drgrad.pipeline import local_runner
    from drgrad.pipeline.pipeline import component_ids
    from drgrad.pipeline.schema import SERVING

    (tmp_path / "logs").mkdir()
    write_spans(str(tmp_path / "logs"), user_log(600), "csv")
    dataset = write_yaml(str(tmp_path / "logs"), "csv")
    beside = tmp_path / "logs" / "schema.pbtxt"
    root = str(tmp_path / "run")
    data_root, options = local_runner.dataset_file_options(dataset)
    options.update(data_only=True, enable_cache=True)

    paths = local_runner.run(data_root, root, dataset, **options)
    assert "SchemaGen" in local_runner.component_timings(paths)

    assert main(["schema", "freeze", "--root", root, "--dataset", dataset]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"froze SchemaGen's schema (MLMD artifact ") and str(beside) in out
    assert "labels finish, like, share" in out
    schema = text_format.Parse(beside.read_text(), schema_pb2.Schema())
    by_name = {feature.name: feature for feature in schema.feature}
    assert set(FEATURES + TASKS) <= set(by_name)
    assert all(list(by_name[task].not_in_environment) == [SERVING] for task in TASKS)

    # The next run imports it: ImportSchemaGen in the DAG and in MLMD, and the data passes it.
    pipeline, _ = local_runner.build(data_root, root, dataset, **options)
    assert "ImportSchemaGen" in component_ids(pipeline)
    assert "SchemaGen" not in component_ids(pipeline)
    local_runner.run(data_root, root, dataset, **options)
    timings = local_runner.component_timings(paths)
    assert [state for state, _ in timings["ImportSchemaGen"]] == ["COMPLETE"]
    assert [state for state, _ in timings["ValidationGate"]][-1] == "COMPLETE"

    # A second freeze needs --force, and then takes the imported (newest) schema.
    frozen = beside.read_text()
    assert main(["schema", "freeze", "--root", root, "--dataset", dataset]) == 2
    assert _one_error_line(capsys) == (f"drgrad schema freeze: error: {beside} exists; --force "
                                       "replaces it")
    assert main(["schema", "freeze", "--root", root, "--dataset", dataset, "--force"]) == 0
    assert capsys.readouterr().out.startswith("froze ImportSchemaGen's schema")
    assert text_format.Parse(beside.read_text(), schema_pb2.Schema()) == text_format.Parse(
        frozen, schema_pb2.Schema())

"""Daily retraining pieces: date -> span, the validated rolling window against a real (in-memory)
ML Metadata store, and the `pipeline run --date` / `backfill` commands with a stub runner."""
import json
import os

import ml_metadata as mlmd
import pytest
from ml_metadata.proto import metadata_store_pb2
from tfx.types import standard_artifacts

from drgrad.pipeline import backfill, commands, daily
from drgrad.pipeline.validation_gate import DataValidationError, ValidationGate

GATE_TYPE = "drgrad.pipeline.validation_gate.ValidationGate"


def _manifest(tmp_path, dates):
    spans = {str(n): {"date": d, "rows": {"train": 1, "eval": 1}}
             for n, d in enumerate(dates, start=1)}
    (tmp_path / daily.MANIFEST_NAME).write_text(json.dumps({"dataset": "census-income",
                                                            "spans": spans}))
    for number in spans:
        (tmp_path / f"span-{number}").mkdir()
    return str(tmp_path)


def test_gate_type_name_is_the_execution_type_the_strategy_looks_for():
    assert ValidationGate.get_class_type() == GATE_TYPE


def test_span_for_date_reads_the_manifest(tmp_path):
    root = _manifest(tmp_path, ["2024-03-01", "2024-03-02", "2024-03-04"])
    assert daily.span_for_date(root, "2024-03-02") == 2
    assert daily.span_for_date(root, "2024-03-04") == 3
    assert daily.span_for_date(root, "") == 3          # no date: the newest span
    with pytest.raises(ValueError, match="no span for 2024-03-03.*2024-03-01 .. 2024-03-04"):
        daily.span_for_date(root, "2024-03-03")
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        daily.span_for_date(root, "03/02/2024")
    with pytest.raises(FileNotFoundError, match="split-days"):
        daily.span_for_date(str(tmp_path / "span-1"), "2024-03-01")


def test_range_config_json_is_a_single_span_static_range():
    from tfx.proto import range_config_pb2
    from tfx.utils import proto_utils

    config = proto_utils.json_to_proto(daily.range_config_json(7), range_config_pb2.RangeConfig())
    assert (config.static_range.start_span_number, config.static_range.end_span_number) == (7, 7)


class _Store:
    """An in-memory MLMD store with Examples artifacts and gate executions."""

    def __init__(self):
        self.store = mlmd.MetadataStore(metadata_store_pb2.ConnectionConfig(
            fake_database=metadata_store_pb2.FakeDatabaseConfig()))
        self.examples_type = self.store.put_artifact_type(
            metadata_store_pb2.ArtifactType(name="Examples"))
        self.gate_type = self.store.put_execution_type(
            metadata_store_pb2.ExecutionType(name=GATE_TYPE))
        self.other_type = self.store.put_execution_type(
            metadata_store_pb2.ExecutionType(name="Transform"))

    def examples(self, span, version=0):
        proto = metadata_store_pb2.Artifact(type_id=self.examples_type, uri=f"/x/{span}")
        proto.custom_properties["span"].int_value = span
        proto.custom_properties["version"].int_value = version
        [artifact_id] = self.store.put_artifacts([proto])
        artifact = standard_artifacts.Examples()
        artifact.set_mlmd_artifact(self.store.get_artifacts_by_id([artifact_id])[0])
        return artifact

    def consume(self, artifact, state, type_id=None):
        execution = metadata_store_pb2.Execution(type_id=type_id or self.gate_type,
                                                 last_known_state=state)
        [execution_id] = self.store.put_executions([execution])
        self.store.put_events([metadata_store_pb2.Event(
            artifact_id=artifact.id, execution_id=execution_id,
            type=metadata_store_pb2.Event.INPUT)])


COMPLETE = metadata_store_pb2.Execution.COMPLETE
FAILED = metadata_store_pb2.Execution.FAILED
CACHED = metadata_store_pb2.Execution.CACHED


def _spans(artifacts):
    return [a.get_int_custom_property("span") for a in artifacts]


def test_window_skips_spans_the_gate_rejected():
    db = _Store()
    day = {n: db.examples(n) for n in (1, 2, 3, 4)}
    db.consume(day[1], COMPLETE)
    db.consume(day[2], COMPLETE)
    db.consume(day[3], FAILED)            # rejected: stays LIVE, must not be trained on
    db.consume(day[3], COMPLETE, type_id=db.other_type)  # a non-gate consumer does not count
    db.consume(day[4], CACHED)
    strategy = daily.ValidatedSpanWindowStrategy(num_spans=2, gate_type=GATE_TYPE)
    resolved = strategy.resolve_artifacts(db.store, {"examples": list(day.values())})
    assert _spans(resolved["examples"]) == [2, 4]
    wide = daily.ValidatedSpanWindowStrategy(num_spans=10, gate_type=GATE_TYPE)
    assert _spans(wide.resolve_artifacts(db.store, {"examples": list(day.values())})[
        "examples"]) == [1, 2, 4]


def test_window_takes_the_newest_artifact_of_a_span_ingested_twice():
    db = _Store()
    first, again, older_version = db.examples(5), db.examples(5), db.examples(6, version=0)
    newer_version = db.examples(6, version=1)
    for artifact in (first, again, older_version, newer_version):
        db.consume(artifact, COMPLETE)
    strategy = daily.ValidatedSpanWindowStrategy(num_spans=2, gate_type=GATE_TYPE)
    resolved = strategy.resolve_artifacts(
        db.store, {"examples": [first, again, older_version, newer_version]})["examples"]
    assert [a.id for a in resolved] == [again.id, newer_version.id]


def test_window_is_empty_until_a_span_passes_the_gate():
    db = _Store()
    rejected = db.examples(1)
    db.consume(rejected, FAILED)
    strategy = daily.ValidatedSpanWindowStrategy(num_spans=3, gate_type=GATE_TYPE)
    assert strategy.resolve_artifacts(db.store, {"examples": [rejected]}) is None
    assert strategy.resolve_artifacts(db.store, {"examples": []}) is None


@pytest.mark.parametrize("kwargs", [{"num_spans": 0, "gate_type": GATE_TYPE},
                                    {"num_spans": True, "gate_type": GATE_TYPE},
                                    {"num_spans": 2, "gate_type": ""}])
def test_window_strategy_checks_its_arguments(kwargs):
    with pytest.raises(ValueError):
        daily.ValidatedSpanWindowStrategy(**kwargs)


def test_create_pipeline_wires_the_daily_nodes(tmp_path):
    from drgrad.pipeline.pipeline import (ANALYZER_CACHE_RESOLVER, SPAN_FOR_DATE, SPAN_WINDOW_RESOLVER,
                                   component_ids, create_pipeline)
    from drgrad.pipeline.pipeline_config import PipelineConfig

    def config(**options):
        return PipelineConfig.from_options(
            pipeline_name="drgrad-census", pipeline_root=str(tmp_path / "root"),
            data_root=str(tmp_path / "data"),
            serving_model_dir=str(tmp_path / "serving" / "census-income"), **options)

    nodes = component_ids(create_pipeline(config(dataset="census", run_date="2024-03-02",
                                                 window_spans=2, analyzer_cache=True,
                                                 warm_start=True)))
    assert {SPAN_FOR_DATE, SPAN_WINDOW_RESOLVER, ANALYZER_CACHE_RESOLVER} <= set(nodes)
    assert nodes[SPAN_FOR_DATE].exec_properties["run_date"] == "2024-03-02"
    assert "ValidationGate" in {node.id for node in nodes[SPAN_WINDOW_RESOLVER].upstream_nodes}
    assert "analyzer_cache" in nodes["Transform"].inputs
    plain = component_ids(create_pipeline(config(dataset="census")))
    assert not {SPAN_FOR_DATE, SPAN_WINDOW_RESOLVER, ANALYZER_CACHE_RESOLVER} & set(plain)
    for bad, error in (({"run_date": "2024-02-30"}, "YYYY-MM-DD"),
                       ({"window_spans": 0}, "window_spans"),
                       ({"run_date": "2024-03-02", "range_config": object()}, "not both")):
        with pytest.raises(ValueError, match=error):
            create_pipeline(config(dataset="census", **bad))


def test_date_range():
    assert backfill.date_range("2024-02-28", "2024-03-01") == ["2024-02-28", "2024-02-29",
                                                               "2024-03-01"]
    with pytest.raises(ValueError, match="before"):
        backfill.date_range("2024-03-02", "2024-03-01")


@pytest.fixture
def stub_runner(monkeypatch):
    """`local_runner.run` replaced: records the days; fails validation on `fail_on`."""
    from drgrad.pipeline import local_runner

    calls = {"dates": [], "kwargs": [], "fail_on": None}

    def run(data_root, root, dataset, **kwargs):
        calls["dates"].append(kwargs["run_date"])
        calls["kwargs"].append(kwargs)
        if kwargs["run_date"] == calls["fail_on"]:
            raise DataValidationError("span 3 split eval: column age has a string value")
        return local_runner.RunPaths(root=root, model_name=dataset)

    monkeypatch.setattr(local_runner, "run", run)
    monkeypatch.setattr(commands, "_print_outcome", lambda paths: None)
    return calls


def test_backfill_runs_days_in_order_and_stops_at_the_first_failing_day(tmp_path, stub_runner,
                                                                       capsys):
    from drgrad.cli.main import main

    (tmp_path / "data").mkdir()
    root = _manifest(tmp_path / "data", ["2024-03-01", "2024-03-02", "2024-03-03",
                                         "2024-03-04"])
    stub_runner["fail_on"] = "2024-03-03"
    code = main(["pipeline", "backfill", "--data-root", root, "--root", str(tmp_path / "run"),
                 "--from", "2024-03-01", "--to", "2024-03-04", "--window-spans", "2"])
    assert code == 1
    assert stub_runner["dates"] == ["2024-03-01", "2024-03-02", "2024-03-03"]
    error = capsys.readouterr().err
    assert "2024-03-03 (span 3) failed data validation" in error
    assert "days done before it: 2024-03-01, 2024-03-02" in error
    kwargs = stub_runner["kwargs"][0]
    assert (kwargs["window_spans"], kwargs["analyzer_cache"], kwargs["warm_start"]) == (2, True,
                                                                                        True)


def test_backfill_refuses_days_missing_from_the_manifest_before_running(tmp_path, stub_runner,
                                                                        capsys):
    from drgrad.cli.main import main

    (tmp_path / "data").mkdir()
    root = _manifest(tmp_path / "data", ["2024-03-01", "2024-03-03"])
    code = main(["pipeline", "backfill", "--data-root", root, "--root", str(tmp_path / "run"),
                 "--from", "2024-03-01", "--to", "2024-03-03"])
    assert code == 1 and stub_runner["dates"] == []
    assert "no span for 2024-03-02" in capsys.readouterr().err


def test_run_date_needs_a_split_days_folder(tmp_path, stub_runner, capsys):
    from drgrad.cli.main import main

    assert main(["pipeline", "run", "--date", "2024-03-01"]) == 1
    assert "--date needs --data-root" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["pipeline", "run", "--date", "2024-13-01"])
    (tmp_path / "data").mkdir()
    root = _manifest(tmp_path / "data", ["2024-03-01"])
    assert main(["pipeline", "run", "--date", "2024-03-01", "--data-root", root,
                 "--root", str(tmp_path / "run"), "--no-warm-start"]) == 0
    assert stub_runner["dates"] == ["2024-03-01"]
    assert stub_runner["kwargs"][0]["warm_start"] is False
    assert os.path.isdir(root)

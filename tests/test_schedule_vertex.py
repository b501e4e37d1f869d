"""Tests for the Vertex AI target: the real `aiplatform.PipelineJob.create_schedule` with the
GAPIC `ScheduleServiceClient.create_schedule` call mocked, asserting on the `Schedule` request."""
import json
import pathlib
from unittest import mock

import pytest

from drgrad.pipeline.schedules import vertex

GOLDEN = pathlib.Path(vertex.__file__).parent / "golden"

# A minimal compiled KFP v2 PipelineSpec (what `compile_pipeline` writes, reduced to one task)
# with one declared parameter, `run_date`.
STUB_SPEC = {
    "pipelineInfo": {"name": "drgrad-stub"},
    "root": {
        "inputDefinitions": {"parameters": {"run_date": {"parameterType": "STRING",
                                                         "defaultValue": "latest"}}},
        "dag": {"tasks": {"say": {
            "taskInfo": {"name": "say"},
            "componentRef": {"name": "comp-say"},
            "inputs": {"parameters": {"run_date": {"componentInputParameter": "run_date"}}}}}},
    },
    "components": {"comp-say": {
        "inputDefinitions": {"parameters": {"run_date": {"parameterType": "STRING"}}},
        "executorLabel": "exec-say"}},
    "deploymentSpec": {"executors": {"exec-say": {"container": {
        "image": "python:3.10", "command": ["echo"], "args": ["{{$.inputs.parameters['run_date']}}"]}}}},
    "schemaVersion": "2.1.0",
    "sdkVersion": "kfp-2.5.0",
}


@pytest.fixture
def template(tmp_path):
    path = tmp_path / "pipeline.json"
    path.write_text(json.dumps({"displayName": "drgrad-stub", "pipelineSpec": STUB_SPEC,
                                "runtimeConfig": {"gcsOutputDirectory": "gs://bucket/root"}}))
    return str(path)


def make_schedule(template, **overrides):
    args = dict(template_path=template, display_name="drgrad-census-daily",
                cron="TZ=Europe/Berlin 0 2 * * *", project="my-project", location="europe-west4",
                pipeline_root="gs://bucket/drgrad", params={"run_date": "latest"},
                service_account="pipelines@my-project.iam.gserviceaccount.com")
    args.update(overrides)
    return vertex.VertexSchedule(**args)


def test_submit_sends_the_schedule_request(template):
    from google.auth.credentials import AnonymousCredentials
    from google.cloud.aiplatform_v1.services.schedule_service import ScheduleServiceClient

    calls = []

    def create_schedule(client, *, parent, schedule, timeout=None):
        calls.append((parent, schedule))
        returned = type(schedule)(schedule)
        returned.name = f"{parent}/schedules/123"
        return returned

    with mock.patch.object(ScheduleServiceClient, "create_schedule", create_schedule):
        result = vertex.submit(make_schedule(template), credentials=AnonymousCredentials())

    [(parent, request)] = calls
    assert parent == "projects/my-project/locations/europe-west4"
    assert request.cron == "TZ=Europe/Berlin 0 2 * * *"
    assert request.display_name == "drgrad-census-daily"
    assert request.max_concurrent_run_count == 1
    assert request.allow_queueing is False
    assert request.max_run_count == 0  # unset: runs indefinitely
    job = request.create_pipeline_job_request.pipeline_job
    assert request.create_pipeline_job_request.parent == parent
    assert job.service_account == "pipelines@my-project.iam.gserviceaccount.com"
    assert job.runtime_config.gcs_output_directory == "gs://bucket/drgrad"
    assert job.runtime_config.parameter_values["run_date"] == "latest"
    assert job.pipeline_spec["pipelineInfo"]["name"] == "drgrad-stub"
    assert result.resource_name == "projects/my-project/locations/europe-west4/schedules/123"


def test_plan_matches_golden_file(template):
    plan = make_schedule(template).plan()
    plan["pipeline_job"]["template_path"] = "pipeline.json"
    assert plan == json.loads((GOLDEN / "vertex-schedule.json").read_text())


@pytest.mark.parametrize("overrides,error,message", [
    ({"cron": "0 2 * * *"}, ValueError, "needs a time-zone prefix"),
    ({"cron": "TZ=Europe/Berlin 0 0 2 * * *"}, ValueError, "needs 5"),
    ({"cron": "TZ=Mars/Olympus 0 2 * * *"}, ValueError, "unknown time zone"),
    ({"max_concurrent_run_count": 0}, ValueError, "max_concurrent_run_count"),
    ({"max_run_count": -3}, ValueError, "max_run_count"),
    ({"pipeline_root": "/local/root"}, ValueError, "gs://"),
    ({"project": ""}, ValueError, "project"),
    ({"params": {"day": "x"}}, ValueError, "declares no parameter"),
    ({"template_path": "/nonexistent/pipeline.json"}, FileNotFoundError, "not found"),
    ({"template_path": "pipeline.txt"}, ValueError, "must end with"),
])
def test_rejects_bad_input(template, overrides, error, message):
    with pytest.raises(error, match=message):
        make_schedule(template, **overrides)

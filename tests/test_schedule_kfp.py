"""Tests for the Kubeflow Pipelines target: the real `kfp.Client` against a fake HTTP layer.

The fake replaces `urllib3.PoolManager.request` (what kfp_server_api sends every request
through), so the assertions are on the JSON bodies that would reach the KFP API server.
"""
import json
import pathlib
from unittest import mock

import pytest
import urllib3

from drgrad.pipeline.schedules import cronexpr, kfp as kfp_schedule, package

GOLDEN = pathlib.Path(kfp_schedule.__file__).parent / "golden"
HOST = "http://kfp.example:8080"


@pytest.fixture(scope="module")
def stub_package(tmp_path_factory):
    """A tiny real KFP v2 package with a `run_date` parameter, compiled by kfp's compiler."""
    from kfp import compiler, dsl

    @dsl.component(base_image="python:3.10")
    def say(run_date: str):
        print(run_date)

    @dsl.pipeline(name="drgrad-stub")
    def stub(run_date: str = "latest"):
        say(run_date=run_date)

    path = tmp_path_factory.mktemp("kfp") / "pipeline.yaml"
    compiler.Compiler().compile(stub, package_path=str(path))
    return str(path)


class FakeKfpServer:
    """Answers the KFP v2beta1 REST calls `kfp.Client` makes; records every request."""

    def __init__(self, experiments=()):
        self.requests = []
        self.experiments = list(experiments)

    def __call__(self, manager, method, url, **kwargs):
        body = kwargs.get("body")
        self.requests.append((method, url, json.loads(body) if body else None))
        path = urllib3.util.parse_url(url).path
        if path.endswith("/healthz"):
            return _response({"multi_user": False})
        if path.endswith("/experiments") and method == "GET":
            return _response({"experiments": self.experiments, "total_size": len(self.experiments)})
        if path.endswith("/experiments") and method == "POST":
            experiment = dict(json.loads(body), experiment_id="exp-new")
            self.experiments.append(experiment)
            return _response(experiment)
        if path.endswith("/recurringruns") and method == "POST":
            return _response(dict(json.loads(body), recurring_run_id="rr-1", status="ENABLED"))
        return _response({"error": f"unexpected {method} {path}"}, status=404)

    def bodies(self, method, suffix):
        return [body for m, url, body in self.requests
                if m == method and urllib3.util.parse_url(url).path.endswith(suffix)]


def _response(payload, status=200):
    response = mock.Mock(status=status, reason="OK" if status == 200 else "Not Found",
                         data=json.dumps(payload).encode())
    response.getheaders.return_value = {"Content-Type": "application/json"}
    response.getheader.side_effect = lambda name, default=None: (
        "application/json" if name.lower() == "content-type" else default)
    return response


@pytest.fixture
def fake_server(monkeypatch, tmp_path):
    # kfp.Client reads ~/.config/kfp/context.json: point HOME at an empty directory.
    monkeypatch.setenv("HOME", str(tmp_path))
    server = FakeKfpServer()

    def request(manager, method, url, *args, **kwargs):
        return server(manager, method, url, **kwargs)

    monkeypatch.setattr(urllib3.PoolManager, "request", request)
    return server


def make_run(stub_package, **overrides):
    args = dict(package_path=stub_package, job_name="drgrad-census daily",
                cron=cronexpr.daily(2, 0, cronexpr.SECONDS),
                description="daily DRGrad retraining at 02:00 UTC",
                params={"run_date": "latest"})
    args.update(overrides)
    return kfp_schedule.KfpRecurringRun(**args)


def test_submit_sends_cron_no_catchup_and_the_package(fake_server, stub_package):
    import kfp
    import yaml

    result = kfp_schedule.submit(make_run(stub_package), host=HOST)

    assert result.recurring_run_id == "rr-1"
    [experiment] = fake_server.bodies("POST", "/apis/v2beta1/experiments")
    assert experiment["display_name"] == "drgrad-daily"
    [body] = fake_server.bodies("POST", "/apis/v2beta1/recurringruns")
    assert body["trigger"] == {"cron_schedule": {"cron": "0 0 2 * * *"}}
    assert body["no_catchup"] is True
    assert body["max_concurrency"] == 1
    assert body["mode"] == "ENABLE"
    assert body["experiment_id"] == "exp-new"
    assert body["display_name"] == "drgrad-census daily"
    assert body["runtime_config"]["parameters"] == {"run_date": "latest"}
    with open(stub_package) as handle:
        assert body["pipeline_spec"] == yaml.safe_load(handle)
    assert kfp.__version__ == "2.5.0"  # the pinned client whose request shape this checks


def test_submit_reuses_an_existing_experiment(fake_server, stub_package):
    fake_server.experiments.append({"experiment_id": "exp-old", "display_name": "drgrad-daily"})
    kfp_schedule.submit(make_run(stub_package), host=HOST)
    assert fake_server.bodies("POST", "/apis/v2beta1/experiments") == []
    [body] = fake_server.bodies("POST", "/apis/v2beta1/recurringruns")
    assert body["experiment_id"] == "exp-old"


def test_plan_matches_golden_file(stub_package):
    plan = make_run(stub_package, package_path=stub_package).plan()
    plan["create_recurring_run"]["pipeline_package_path"] = "pipeline.yaml"
    expected = json.loads((GOLDEN / "kfp-recurring-run.json").read_text())
    assert plan == expected


@pytest.mark.parametrize("overrides,error,message", [
    ({"cron": "0 2 * * *"}, ValueError, "needs 6"),
    ({"max_concurrency": 0}, ValueError, "max_concurrency"),
    ({"job_name": " "}, ValueError, "job_name"),
    ({"params": {"date": "2024-01-01"}}, ValueError, r"declares no parameter\(s\) \['date'\]"),
    ({"package_path": "pipeline.json"}, ValueError, "YAML PipelineSpec"),
    ({"package_path": "/nonexistent/pipeline.yaml"}, FileNotFoundError, "not found"),
])
def test_rejects_bad_input_before_any_request(fake_server, stub_package, overrides, error,
                                              message):
    with pytest.raises(error, match=message):
        make_run(stub_package, **overrides)
    assert fake_server.requests == []


def test_declared_parameters_of_the_stub(stub_package):
    spec = package.read_pipeline_spec(stub_package, package.KFP_SUFFIXES)
    assert set(package.declared_parameters(spec)) == {"run_date"}
    assert make_run(stub_package).declares_run_date()


@pytest.mark.parametrize("text,expected", [
    ("run_date=2024-03-09", ("run_date", "2024-03-09")),
    ("epochs=2", ("epochs", 2)),
    ("enable=true", ("enable", True)),
    ("run_date=[[ScheduledTime.2006-01-02]]", ("run_date", "[[ScheduledTime.2006-01-02]]")),
])
def test_parse_param(text, expected):
    assert package.parse_param(text) == expected


@pytest.mark.parametrize("text", ["run_date", "=x", "a b=1"])
def test_parse_param_rejects(text):
    with pytest.raises(ValueError, match="NAME=VALUE"):
        package.parse_param(text)

"""Tests for `drgrad schedule` (pipeline/schedule_commands.py): dry runs print, runs write."""
import argparse
import json
import pathlib

import pytest

from drgrad.pipeline import schedule_commands
from drgrad.pipeline.schedules import cron

GOLDEN = pathlib.Path(cron.__file__).parent / "golden"
VERTEX_TEMPLATE = {"pipelineSpec": {"pipelineInfo": {"name": "drgrad-census"}, "root": {
    "inputDefinitions": {"parameters": {"run_date": {"parameterType": "STRING"}}}}}}


def run(argv):
    parser = argparse.ArgumentParser(prog="drgrad")
    schedule_commands.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["schedule", *argv])
    return args.func(args)


def test_cron_dry_run_prints_the_entry_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "cron"
    assert run(["--target", "cron", "--at", "02:00", "--timezone", "Europe/Berlin",
                "--data-root", "/data/census", "--run-root", "/var/lib/drgrad/census",
                "--wrapper", "/opt/drgrad/drgrad-daily.sh", "--drgrad",
                "/opt/drgrad/.venv/bin/drgrad", "--lock", "/var/lock/drgrad-census.lock",
                "--log", "/var/log/drgrad/drgrad-census.log", "--pipeline-arg=--tag",
                "--pipeline-arg", "100%", "--out", str(out), "--dry-run"]) == 0
    assert capsys.readouterr().out == (GOLDEN / "drgrad-census.crontab").read_text()
    assert not out.exists()


def test_cron_writes_crontab_and_wrapper(tmp_path, capsys):
    out = tmp_path / "cron"
    assert run(["--target", "cron", "--at", "03:30", "--data-root", "/d", "--run-root", "/r",
                "--out", str(out)]) == 0
    crontab = (out / "drgrad-census.crontab").read_text()
    line = crontab.splitlines()[-1]
    assert line.startswith(f"30 3 * * * {out}/drgrad-daily.sh --lock /r/drgrad-census.lock "
                           "--log /r/logs/drgrad-census.log --timezone UTC --days-ago 1 ")
    assert line.endswith("-- --dataset census --data-root /d --root /r")
    assert (out / "drgrad-daily.sh").stat().st_mode & 0o111


def test_airflow_dry_run_matches_golden(capsys):
    assert run(["--target", "airflow", "--at", "02:00", "--timezone", "Europe/Berlin",
                "--data-root", "/data/census", "--run-root", "/var/lib/drgrad/census",
                "--start-date", "2024-03-01", "--pipeline-arg", "warm_start=true",
                "--pipeline-arg", 'min_auc={"income": 0.6}', "--dry-run"]) == 0
    assert capsys.readouterr().out == (GOLDEN / "drgrad_census_dag.py").read_text()


def test_kfp_dry_run_prints_the_call(tmp_path, capsys):
    import yaml

    package = tmp_path / "pipeline.yaml"
    package.write_text(yaml.safe_dump(VERTEX_TEMPLATE["pipelineSpec"]))
    assert run(["--target", "kfp", "--at", "02:00", "--package", str(package),
                "--param", "run_date=latest", "--dry-run"]) == 0
    plan = json.loads(capsys.readouterr().out)
    call = plan["create_recurring_run"]
    assert call["cron_expression"] == "0 0 2 * * *"
    assert call["no_catchup"] is True and call["max_concurrency"] == 1
    assert call["params"] == {"run_date": "latest"}
    assert call["job_name"] == "drgrad-census-daily"


def test_vertex_dry_run_prefixes_the_time_zone(tmp_path, capsys):
    template = tmp_path / "pipeline.json"
    template.write_text(json.dumps(VERTEX_TEMPLATE))
    assert run(["--target", "vertex", "--at", "02:00", "--timezone", "Europe/Berlin",
                "--package", str(template), "--project", "p", "--location", "europe-west4",
                "--dry-run"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["create_schedule"]["cron"] == "TZ=Europe/Berlin 0 2 * * *"
    assert plan["create_schedule"]["max_concurrent_run_count"] == 1


@pytest.mark.parametrize("argv,error,message", [
    (["--target", "cron", "--at", "25:00", "--data-root", "/d", "--run-root", "/r"],
     ValueError, "HH:MM"),
    (["--target", "cron", "--cron", "0 0 2 * * *", "--data-root", "/d", "--run-root", "/r"],
     ValueError, "needs 5"),
    (["--target", "kfp", "--cron", "0 2 * * *", "--package", "x.yaml"], ValueError, "needs 6"),
    (["--target", "cron", "--data-root", "/d"], ValueError, "--run-root"),
    (["--target", "airflow", "--timezone", "Nowhere/Land", "--data-root", "/d",
      "--run-root", "/r"], ValueError, "unknown time zone"),
    (["--target", "vertex", "--package", "p.json"], ValueError, "--project and --location"),
    (["--target", "kfp", "--package", "/nonexistent/pipeline.yaml", "--dry-run"],
     FileNotFoundError, "not found"),
    (["--target", "kfp", "--package", "x.yaml", "--param", "oops"], ValueError, "NAME=VALUE"),
])
def test_bad_input_raises_clear_errors(tmp_path, argv, error, message):
    with pytest.raises(error, match=message):
        run([*argv, "--out", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()

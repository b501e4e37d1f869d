"""Nothing lost under faults: the pipeline killed (SIGKILL) during the Trainer resumes from MLMD.

`drgrad pipeline run` (census, 300 rows per split, 1 epoch, a few steps) runs in a subprocess of
its own process group; once MLMD records a RUNNING Trainer execution the group is killed. The
same command is run again with caching on: ExampleGen ... Transform are CACHED (not re-executed),
the Trainer runs again to completion, and exactly one version is pushed.

The module took 210 s on the 2-core dev machine (`pytest --durations`).
"""
import os
import signal
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.e2e

UPSTREAM = ("CsvExampleGen", "StatisticsGen", "ImportSchemaGen", "ExampleValidator",
            "ValidationGate", "Transform")
DEADLINE_S = 300  # for the first run to reach the Trainer
POLL_S = 0.2


def _command(root):
    drgrad = os.path.join(os.path.dirname(sys.executable), "drgrad")
    return [drgrad, "pipeline", "run", "--dataset", "census", "--rows", "300", "--root", root,
            "--epochs", "1", "--batch-size", "64", "--train-steps", "3", "--min-auc", "0"]


def _states(paths):
    """`{node: [execution state, ...]}` oldest first, read from MLMD; {} before the store
    exists."""
    from drgrad.pipeline import local_runner

    if not os.path.isfile(paths.metadata_path):
        return {}
    return {node: [state for state, _ in runs]
            for node, runs in local_runner.component_timings(paths).items()}


def _versions(paths):
    """The version folders under the serving model directory."""
    model_dir = paths.serving_model_dir
    if not os.path.isdir(model_dir):
        return []
    return sorted(name for name in os.listdir(model_dir) if name.isdigit())


def _kill_when_trainer_runs(process, paths, log):
    """Polls MLMD until the Trainer execution is RUNNING, then kills the process group."""
    deadline = time.monotonic() + DEADLINE_S
    try:
        while time.monotonic() < deadline and process.poll() is None:
            try:
                if "RUNNING" in _states(paths).get("Trainer", []):
                    os.killpg(process.pid, signal.SIGKILL)
                    return process.wait(timeout=30)
            except Exception as error:  # pylint: disable=broad-except
                # The store may be mid-write by the pipeline (SQLite lock); read again.
                if "lock" not in str(error).lower():
                    raise
            time.sleep(POLL_S)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
    with open(log) as handle:
        raise AssertionError(f"the Trainer never ran within {DEADLINE_S} s (exit code "
                             f"{process.returncode}): {handle.read()[-2000:]}")


@pytest.fixture(scope="module")
def resumed(tmp_path_factory):
    from drgrad.pipeline import local_runner

    tmp = tmp_path_factory.mktemp("resume")
    root, log = str(tmp / "run"), str(tmp / "killed-run.log")
    paths = local_runner.RunPaths(root=root, model_name="census-income")
    with open(log, "w") as output:  # a file, not a pipe: a full pipe would block the run
        process = subprocess.Popen(_command(root), stdout=output, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    returncode = _kill_when_trainer_runs(process, paths, log)
    killed, killed_versions = _states(paths), _versions(paths)
    rerun = subprocess.run(_command(root), capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stdout[-2000:] + rerun.stderr[-4000:]
    return {"returncode": returncode, "killed": killed, "killed_versions": killed_versions,
            "resumed": _states(paths), "versions": _versions(paths), "paths": paths,
            "output": rerun.stdout}


def test_the_first_run_was_killed_in_the_trainer(resumed):
    assert resumed["returncode"] == -signal.SIGKILL
    assert resumed["killed"]["Trainer"] == ["RUNNING"]
    assert "Pusher" not in resumed["killed"]
    assert resumed["killed_versions"] == []


def test_rerun_reuses_upstream_outputs_from_mlmd(resumed):
    for node in UPSTREAM:
        assert resumed["resumed"][node] == ["COMPLETE", "CACHED"], node


def test_rerun_completes_the_trainer_and_leaves_the_killed_one_unfinished(resumed):
    trainer = resumed["resumed"]["Trainer"]
    assert trainer == ["RUNNING", "COMPLETE"]


def test_rerun_pushes_exactly_one_version(resumed):
    model_dir = resumed["paths"].serving_model_dir
    versions = resumed["versions"]
    assert len(versions) == 1, versions
    assert os.path.isfile(os.path.join(model_dir, versions[0], "saved_model.pb"))
    assert f"pushed model: {os.path.join(model_dir, versions[0])}" in resumed["output"]

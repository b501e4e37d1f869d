"""What `drgrad pipeline run` shows (pipeline/console.py).

Fast: the component lines from hand-made runner records, and `capture` on a failing block.

e2e: the real command in a subprocess, so that file descriptor 2 is the process's own: one start
and one end line per component on stdout, rows where known, no TF/TFX/Beam/absl warning on the
console, all of them in `<root>/logs/pipeline-<time>.log`, the outcome last; then the same root
again with `--verbose` (everything upstream of the Evaluator cached): the warnings show on stderr
too. A 600-row CSV log in the span layout, one epoch: 2 to 3.5 minutes for both runs on the 2-core
dev machine.
"""
import logging
import os
import re
import subprocess
import sys

import pytest

from drgrad.pipeline import console
from drgrad.pipeline.local_runner import RunPaths

from test_data_user_logs import user_log, write_spans, write_yaml

# LocalDagRunner's nodes for a CSV dataset file without schema.pbtxt, not daily.
COMPONENTS = ["CsvExampleGen", "StatisticsGen", "SchemaGen", "ExampleValidator",
              "ValidationGate", "Transform", "latest-blessed-model-resolver", "Trainer",
              "Evaluator", "Pusher"]
# The newest span (span-2 of write_spans(user_log(600))): 300 rows, train 140, eval 100 (the
# test split is not read).
ROWS = "train 140, eval 100"
# One of the warnings TFX logs on every run (its resolvers' MLMD queries).
TFX_WARNING = "ArtifactQuery.property_predicate is not supported."


def test_component_lines_follow_the_runner_records(capsys):
    lines = console.ComponentLines(
        details=lambda node: "rows train 3, eval 1" if node == "StatisticsGen" else "")
    logger = logging.getLogger("test_pipeline_console.runner")
    logger.propagate, logger.level = False, logging.INFO
    logger.addHandler(lines)
    try:
        logger.info(console.STARTED, "StatisticsGen")
        logger.info(console.FINISHED, "StatisticsGen")
        logger.info(console.STARTED, "Transform")
        logger.info(console.CACHED, 7)
        logger.info("Component %s is running", "Transform")  # not the runner's wording
        logger.info(console.FINISHED, "Transform")
        logger.info(console.STARTED, "Trainer")
        lines.failed()
        lines.failed()  # nothing runs any more: no second line
    finally:
        logger.removeHandler(lines)
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 6, out
    assert out[0] == "StatisticsGen started"
    assert re.fullmatch(r"StatisticsGen done in \d+\.\d s: rows train 3, eval 1", out[1])
    assert out[2] == "Transform started"
    assert re.fullmatch(r"Transform done in \d+\.\d s \(cached\)", out[3])
    assert out[4] == "Trainer started"
    assert re.fullmatch(r"Trainer failed after \d+\.\d s", out[5])


def test_capture_keeps_every_message_off_the_console_and_restores_it(tmp_path, capfd):
    root = logging.getLogger()
    handlers = list(root.handlers)
    with pytest.raises(RuntimeError, match="boom"):
        with console.capture(RunPaths(str(tmp_path), "m"), "drgrad-m") as log_file:
            logging.getLogger("absl").info(console.STARTED, "Trainer")
            os.write(2, b"native noise\n")  # as TF's C++ logs write
            logging.getLogger("apache_beam").warning("python noise")
            raise RuntimeError("boom")
    os.write(2, b"after\n")
    out, err = capfd.readouterr()
    assert out.splitlines()[0] == (f"log file: {log_file} (--verbose also shows it here)")
    assert out.splitlines()[1:2] == ["Trainer started"]
    assert out.splitlines()[2].startswith("Trainer failed after ")
    assert err == "after\n"
    log = open(log_file).read()
    assert "native noise" in log and "WARNING apache_beam: python noise" in log
    assert "RuntimeError: boom" in log  # the traceback
    assert os.path.dirname(log_file) == str(tmp_path / "logs")
    assert root.handlers == handlers


def _drgrad(cwd, *argv):
    return subprocess.run([sys.executable, "-m", "drgrad.cli", *argv], cwd=cwd,
                          capture_output=True, text=True, timeout=900, check=False)


def _component_lines(out):
    lines = out.splitlines()
    for component in COMPONENTS:
        started = [i for i, line in enumerate(lines) if line == f"{component} started"]
        done = [i for i, line in enumerate(lines) if line.startswith(f"{component} done in ")]
        assert len(started) == 1 and len(done) == 1 and started[0] < done[0], (component, out)
    return {line.split(" done in ")[0]: line for line in lines if " done in " in line}


@pytest.mark.e2e
def test_one_line_per_component_and_the_warnings_in_the_log_file(tmp_path):
    (tmp_path / "logs").mkdir()
    write_spans(str(tmp_path / "logs"), user_log(600), "csv")
    dataset = write_yaml(str(tmp_path / "logs"), "csv")
    run = ["pipeline", "run", "--dataset", dataset, "--root", str(tmp_path / "run"),
           "--epochs", "1", "--batch-size", "64", "--min-auc", "0"]

    quiet = _drgrad(tmp_path, *run)
    assert quiet.returncode == 0, quiet.stderr[-3000:]
    done = _component_lines(quiet.stdout)
    assert done["StatisticsGen"].endswith(f": rows {ROWS}")
    assert done["Transform"].endswith(f": rows in {ROWS}")
    assert done["Trainer"].endswith(": 1 epoch, batch 64")
    # Keras's epoch line (fit(verbose=2)) stays on the console.
    assert re.search(r"^\d+/\d+ - .*loss: ", quiet.stdout, re.MULTILINE), quiet.stdout
    for stream in (quiet.stdout, quiet.stderr):
        assert "WARNING" not in stream and "Warning" not in stream, stream[-3000:]
    first = quiet.stdout.splitlines()[0]
    assert first.startswith("log file: ")
    log_file = first.split()[2]
    assert os.path.dirname(log_file) == str(tmp_path / "run" / "logs")
    log = open(log_file).read()
    assert f"WARNING absl: {TFX_WARNING}" in log and "Component Trainer is running." in log
    assert TFX_WARNING not in quiet.stdout + quiet.stderr
    last = quiet.stdout.splitlines()[-2:]
    assert last[0].startswith(f"pushed model: {tmp_path / 'run' / 'serving' / 'shortvideo'}")
    assert last[1] == f"run directory: {tmp_path / 'run'}"

    verbose = _drgrad(tmp_path, *run, "--verbose")
    assert verbose.returncode == 0, verbose.stderr[-3000:]
    done = _component_lines(verbose.stdout)
    assert done["Transform"].startswith("Transform done in ") and "(cached)" in done["Transform"]
    assert f"WARNING absl: {TFX_WARNING}" in verbose.stderr
    assert len(os.listdir(tmp_path / "run" / "logs")) == 2  # one log file per run

"""Tests for the plain-cron target: the crontab entry (golden file) and the locking wrapper.

The lock test starts the real `drgrad-daily.sh` twice with a stub `drgrad` that blocks on a FIFO
until the test releases it, so the overlap is certain without any sleep.
"""
import errno
import os
import pathlib
import select
import subprocess
import textwrap
import time

import pytest

from drgrad.pipeline.schedules import cron, cronexpr

GOLDEN = pathlib.Path(cron.__file__).parent / "golden"
WRAPPER = cron.WRAPPER_PATH
TIMEOUT = 60


def golden_entry(**overrides):
    args = dict(schedule=cronexpr.daily(2, 0), timezone="Europe/Berlin",
                wrapper="/opt/drgrad/drgrad-daily.sh", lock="/var/lock/drgrad-census.lock",
                log="/var/log/drgrad/drgrad-census.log",
                pipeline_args=("--dataset", "census", "--data-root", "/data/census",
                               "--root", "/var/lib/drgrad/census", "--tag", "100%"),
                drgrad="/opt/drgrad/.venv/bin/drgrad", name="drgrad-census")
    args.update(overrides)
    return cron.CronEntry(**args)


def test_crontab_matches_golden_file():
    assert golden_entry().render() == (GOLDEN / "drgrad-census.crontab").read_text()


def test_crontab_line_is_a_valid_five_field_cron_and_escapes_percent():
    line = golden_entry().render().splitlines()[-1]
    fields = line.split(" ")
    schedule = cronexpr.parse(" ".join(fields[:5]))
    assert (schedule.minutes, schedule.hours) == ({0}, {2})
    assert fields[5] == "/opt/drgrad/drgrad-daily.sh"
    assert "100\\%" in line and "100%" not in line.replace("100\\%", "")


@pytest.mark.parametrize("overrides,message", [
    ({"schedule": "0 0 2 * * *"}, "needs 5"),
    ({"timezone": "Mars/Olympus"}, "unknown time zone"),
    ({"lock": "relative.lock"}, "absolute path"),
    ({"days_ago": -1}, "days_ago"),
    ({"pipeline_args": ("a\nb",)}, "single-line"),
])
def test_entry_rejects_bad_input(overrides, message):
    with pytest.raises(ValueError, match=message):
        golden_entry(**overrides)


def test_write_puts_crontab_and_executable_wrapper(tmp_path):
    paths = cron.write(golden_entry(), str(tmp_path))
    assert pathlib.Path(paths["crontab"]).read_text() == golden_entry().render()
    assert os.access(paths["wrapper"], os.X_OK)
    assert pathlib.Path(paths["wrapper"]).read_bytes() == pathlib.Path(WRAPPER).read_bytes()


# --- the wrapper ----------------------------------------------------------------------------

@pytest.fixture
def stub(tmp_path):
    """A fake `drgrad`: records its arguments, signals `started`, then waits on `release`."""
    started, release = tmp_path / "started", tmp_path / "release"
    os.mkfifo(started)
    os.mkfifo(release)
    calls = tmp_path / "calls"
    script = tmp_path / "drgrad"
    script.write_text(textwrap.dedent(f"""\
        #!/usr/bin/env bash
        echo "$*" >> {calls}
        echo started > {started}
        read -r code < {release}
        echo "stub output"
        exit "$code"
        """))
    script.chmod(0o755)
    return {"script": str(script), "started": started, "release": release, "calls": calls}


def start_wrapper(stub, tmp_path, *extra):
    return subprocess.Popen(
        [WRAPPER, "--lock", str(tmp_path / "run.lock"), "--log", str(tmp_path / "logs" / "run.log"),
         "--drgrad", stub["script"], *extra],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def wait_started(stub):
    """Blocks (bounded) until the stub has started."""
    fd = os.open(stub["started"], os.O_RDONLY | os.O_NONBLOCK)
    try:
        data = b""
        while b"started" not in data:
            ready, _, _ = select.select([fd], [], [], TIMEOUT)
            assert ready, "the stub did not start"
            data += os.read(fd, 64)
    finally:
        os.close(fd)


def release(stub, process, code=0):
    """Lets the stub exit with `code`; kills `process` if the stub never gets to wait."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        try:
            fd = os.open(stub["release"], os.O_WRONLY | os.O_NONBLOCK)
            break
        except OSError as error:  # ENXIO: the stub is not reading yet.
            if error.errno != errno.ENXIO:
                raise
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            return
        time.sleep(0.01)  # polling only; no timing is asserted
    try:
        os.write(fd, f"{code}\n".encode())
    finally:
        os.close(fd)


def test_second_start_exits_already_running_without_running_the_command(stub, tmp_path):
    first = start_wrapper(stub, tmp_path, "--today", "2024-03-10", "--", "--dataset", "census")
    try:
        wait_started(stub)
        second = subprocess.run(
            [WRAPPER, "--lock", str(tmp_path / "run.lock"),
             "--log", str(tmp_path / "logs" / "run.log"), "--drgrad", stub["script"],
             "--today", "2024-03-10"],
            capture_output=True, timeout=TIMEOUT)
        assert second.returncode == cron.EXIT_ALREADY_RUNNING
        assert stub["calls"].read_text().splitlines() == [
            "pipeline run --date 2024-03-09 --dataset census"]
    finally:
        release(stub, first, 0)
        first.wait(timeout=TIMEOUT)
    assert first.returncode == 0
    log = (tmp_path / "logs" / "run.log").read_text()
    assert "already running" in log
    assert "stub output" in log
    assert "done: run for 2024-03-09 succeeded" in log
    # The lock is free again: a third start runs.
    third = start_wrapper(stub, tmp_path, "--date", "2024-03-11")
    wait_started(stub)
    release(stub, third, 0)
    assert third.wait(timeout=TIMEOUT) == 0
    assert stub["calls"].read_text().splitlines()[-1] == "pipeline run --date 2024-03-11"


def test_failure_propagates_exit_code(stub, tmp_path):
    run = start_wrapper(stub, tmp_path, "--today", "2024-03-01", "--days-ago", "1")
    wait_started(stub)
    release(stub, run, 3)
    assert run.wait(timeout=TIMEOUT) == 3
    # 2024 is a leap year: the day before March 1st is February 29th.
    assert stub["calls"].read_text().strip() == "pipeline run --date 2024-02-29"
    assert "FAILED: run for 2024-02-29 exited with status 3" in (
        tmp_path / "logs" / "run.log").read_text()


@pytest.mark.parametrize("args,message", [
    (["--date", "2024-02-30"], "--date must be a date"),
    (["--today", "yesterday"], "--today must be a date"),
    (["--days-ago", "-1"], "--days-ago"),
    (["--timezone", "Mars/Olympus"], "unknown time zone"),
    (["--date", "2024-01-01", "--today", "2024-01-02"], "not both"),
    (["--bogus"], "unknown argument"),
    (["--lock"], "needs a value"),
])
def test_bad_arguments_exit_2_and_run_nothing(stub, tmp_path, args, message):
    result = subprocess.run([WRAPPER, "--drgrad", stub["script"],
                             "--lock", str(tmp_path / "run.lock"), *args],
                            capture_output=True, text=True, timeout=TIMEOUT)
    assert result.returncode == cron.EXIT_USAGE
    assert message in result.stderr
    assert not stub["calls"].exists()

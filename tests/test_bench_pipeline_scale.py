"""The pure parts of `drgrad.bench.pipeline_scale`: the RSS sampler on a process tree with a
known allocation, and the markdown table on a fabricated result."""
import subprocess
import sys

import pytest

from drgrad.bench import pipeline_scale

MIB = 2 ** 20
BLOCK_MIB = 256

# A grandchild that reports, then (on a line from stdin) fills BLOCK_MIB MiB with non-zero bytes
# (resident, unlike a zeroed bytearray), reports again and waits for stdin to close.
GRANDCHILD = ("import sys\n"
              "print('started', flush=True)\n"
              "sys.stdin.readline()\n"
              f"block = b'\\x01' * ({BLOCK_MIB} * 2 ** 20)\n"
              "print('allocated', flush=True)\n"
              "sys.stdin.read()\n")
CHILD = f"import subprocess, sys\nsubprocess.run([sys.executable, '-c', {GRANDCHILD!r}])\n"


@pytest.mark.timeout(120)
def test_sampler_sees_a_grandchilds_allocation():
    child = subprocess.Popen([sys.executable, "-c", CHILD], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "started"
        sampler = pipeline_scale.RssSampler(child.pid)
        before = sampler.sample()
        child.stdin.write("go\n")
        child.stdin.flush()
        assert child.stdout.readline().strip() == "allocated"
        after = sampler.sample()
    finally:
        child.stdin.close()
        child.wait(timeout=60)
    assert len(sampler.peaks) == 2                       # the child and its grandchild
    grown = (after - before) / MIB
    assert BLOCK_MIB * 0.95 <= grown <= BLOCK_MIB * 1.10
    grandchild_peak = max(rss for _, rss in sampler.peaks.values()) / MIB
    assert BLOCK_MIB <= grandchild_peak <= BLOCK_MIB + 64  # the block + a Python interpreter
    assert sampler.peak_between(0, float("inf")) == after
    assert sampler.peak_between(0, 1) is None            # no sample in 1970
    assert sampler.sample() == 0                          # the tree has exited


def test_markdown_table_of_a_fabricated_day():
    def stage(key, label, seconds, peak, **extra):
        return {"key": key, "stage": label, "seconds": seconds, "rows_per_s": 1000 / seconds,
                "peak_rss_mib": peak, "processes": [
                    {"pid": 1, "command": f"python {key}", "peak_rss_mib": peak}], **extra}
    result = {"rows": 1000, "direct_mode": "in_memory", "epochs": 1, "stages": [
        stage("simulate", "simulate", 2.0, 100.0),
        stage("floor", "floor", 4.0, 300.0, read_s=1.0, fit_transform_s=1.5),
        stage("pipeline", "pipeline", 100.0, 2048.0),
        stage("train", "train", 20.0, 900.0)],
        "components": [
            {"component": "CsvExampleGen", "seconds": 10.0, "rows_per_s": 100.0,
             "peak_rss_mib": 512.0},
            {"component": "ValidationGate", "seconds": 0.2, "rows_per_s": 5000.0,
             "peak_rss_mib": 600.0},
            {"component": "Transform", "seconds": 30.0, "rows_per_s": 1000 / 30,
             "peak_rss_mib": 1536.0},
            {"component": "Trainer", "seconds": 40.0, "rows_per_s": 25.0,
             "peak_rss_mib": None}]}
    lines = pipeline_scale.render_markdown([result]).splitlines()
    assert lines[0] == "### 1,000 rows, DirectRunner in_memory, 1 epoch(s)"
    assert lines[4:12] == [
        "| simulate | 2.0 | 500 | 100 |",
        "| floor | 4.0 | 250 | 300 |",
        "| pipeline | 100.0 | 10 | 2,048 |",
        "| &nbsp;&nbsp;CsvExampleGen | 10.0 | 100 | 512 |",
        "| &nbsp;&nbsp;ValidationGate | 0.2 | — | 600 |",     # under 1 s: no rate
        "| &nbsp;&nbsp;Transform | 30.0 | 33 | 1,536 |",
        "| &nbsp;&nbsp;Trainer | 40.0 | 25 | — |",
        "| train | 20.0 | 50 | 900 |"]
    # (10 + 30) s against 1.0 + 1.5 s of floor work; Trainer 40 s against drgrad train's 20 s.
    assert "- ExampleGen + Transform / floor (read + fit + transform, imports excluded): 16.0×" \
        in lines
    assert "- Trainer / drgrad train (whole process): 2.0×" in lines
    assert "- pipeline / drgrad train (whole processes): 5.0×" in lines
    assert "- pipeline: 2,048 `python pipeline`" in lines
    # A dataset's own rows (--dataset): named in the heading, no simulate stage.
    census = dict(result, preset=None, dataset="census",
                  stages=[s for s in result["stages"] if s["key"] != "simulate"])
    lines = pipeline_scale.render_markdown([census]).splitlines()
    assert lines[0] == "### 1,000 rows of census, DirectRunner in_memory, 1 epoch(s)"
    assert lines[4] == "| floor | 4.0 | 250 | 300 |"

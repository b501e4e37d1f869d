"""`drgrad serve` / `drgrad predict`: output, and one-line errors for bad input."""
import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

import serving_fixtures as fx
from drgrad.cli import main as cli
from drgrad.serving.export import write_model_version


@pytest.fixture(scope="module")
def served():
    base = fx.new_base_dir()
    write_model_version(base, "tiny", fx.tiny_export()[0], version=1)
    with fx.running_server(base) as server:
        yield server


def _rows_file(tmp_path, rows):
    path = tmp_path / "rows.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    return str(path)


@pytest.mark.parametrize("scheme", ["rest", "grpc"])
def test_predict_prints_one_json_line_per_row(served, tmp_path, capsys, scheme):
    rows = fx.sample_rows(3, seed=31)
    port = served.rest_port if scheme == "rest" else served.grpc_port
    code = cli.main(["predict", "--server", f"{scheme}://127.0.0.1:{port}", "--model", "tiny",
                     "--input", _rows_file(tmp_path, rows)])
    assert code == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    _, model, transform = fx.tiny_export()
    expected = fx.in_process(model, transform, rows)
    assert len(lines) == 3
    for index, line in enumerate(lines):
        assert set(line) == set(fx.TASKS)
        for task in fx.TASKS:
            assert abs(line[task] - expected[task][index]) < 1e-5


@pytest.mark.parametrize("args, message", [
    (["--server", "ftp://x:1"], "rest://host:port or grpc://host:port"),
    (["--input", "/nonexistent/rows.jsonl"], "does not exist"),
    (["--model", "nope"], "server refused the request"),
    (["--bad-row"], "is missing feature"),
    (["--not-json"], "not JSON"),
])
def test_predict_errors_are_one_line(served, tmp_path, capsys, args, message):
    argv = {"--server": f"rest://127.0.0.1:{served.rest_port}", "--model": "tiny",
            "--input": _rows_file(tmp_path, fx.sample_rows(1))}
    if args == ["--bad-row"]:
        argv["--input"] = _rows_file(tmp_path, [{"user": "u1"}])
    elif args == ["--not-json"]:
        (tmp_path / "bad.jsonl").write_text('{"user": "u1"}\n{oops\n')
        argv["--input"] = str(tmp_path / "bad.jsonl")
    else:
        argv[args[0]] = args[1]
    code = cli.main(["predict"] + [x for kv in argv.items() for x in kv])
    assert code == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("drgrad predict: error:") and message in err
    assert "\n" not in err


def test_serve_rejects_a_missing_base_dir(capsys):
    assert cli.main(["serve", "--model-base", "/nonexistent/base"]) == 1
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.e2e
def test_serve_subprocess_end_to_end(tmp_path):
    base = fx.new_base_dir()
    write_model_version(base, "tiny", fx.tiny_export()[0], version=1)
    ready = tmp_path / "ready.json"
    env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="2")
    process = subprocess.Popen(
        [sys.executable, "-m", "drgrad.cli", "serve", "--model-base", base, "--rest-port",
         "0", "--grpc-port", "0", "--ready-file", str(ready)],
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))), env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 240
        while not ready.exists():
            assert process.poll() is None, process.stdout.read().decode()[-2000:]
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.2)
        ports = json.loads(ready.read_text())
        from drgrad.serving import client as client_lib
        rows = fx.sample_rows(2)
        got = client_lib.connect(f"grpc://127.0.0.1:{ports['grpc_port']}", "tiny").predict(rows)
        _, model, transform = fx.tiny_export()
        np.testing.assert_allclose(got["ctr"], fx.in_process(model, transform, rows)["ctr"],
                                   atol=1e-5)
    finally:
        process.terminate()
        assert process.wait(timeout=60) == 0

"""Serving under load: throughput, tail latency and overload behaviour of `drgrad serve`.

The measurement of issue 17, done the same way before and after a change, on a quiet machine:

* the server (`drgrad serve`, a separate process) is pinned to one core and the load
  generators to another (`taskset`), so they do not steal each other's CPU;
* REST load comes from `wrk` (Debian package: `apt-get install wrk`), gRPC load from a
  multi-channel `grpc.aio` client in this process and, closed loop, from `h2load` (Debian
  `nghttp2-client`), a C HTTP/2 load generator sending the same gRPC-framed `Predict` body
  (one Python process cannot offer the load the server takes: docs/RELIABILITY.md);
* closed loop: 64 clients at batch 1, and 32 clients at batch 256 (req/s, rows/s, p50/p99,
  errors);
* open loop (overload): requests arrive at a fixed rate, 4x the req/s the server sustained
  at batch 1; goodput (successful req/s) against that peak, and how fast the excess is
  refused (429 / RESOURCE_EXHAUSTED latency). `wrk` is closed-loop only, so the open loop uses
  an asyncio HTTP/1.1 client for REST too;
* beside it, the in-process SavedModel call (`predict_raw`, same core as the server).

    .venv/bin/python -m drgrad.bench.serving_load [--duration 20] [--json out.json]
    .venv/bin/python -m drgrad.bench.serving_load --smoke      # seconds, to check it runs

A benchmark, not a test: the figures depend on the machine and on what else runs on it.
"""
import argparse
import asyncio
import collections
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

from drgrad.bench import serving_latency

MODEL = "drgrad"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _require_load_generators():
    for tool, package in (("wrk", "wrk"), ("h2load", "nghttp2-client")):
        if shutil.which(tool) is None:
            raise SystemExit(f"serving_load needs {tool}: apt-get install {package}")


def _predict_body(batch):
    rows = serving_latency._rows(batch, seed=batch)   # pylint: disable=protected-access
    return json.dumps({"signature_name": "predict_raw",
                       "inputs": {c: [r[c] for r in rows] for c in rows[0]}})


def _grpc_request(batch):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    from tensorflow_serving.apis import predict_pb2  # pylint: disable=g-import-not-at-top

    request = predict_pb2.PredictRequest()
    request.model_spec.name = MODEL
    request.model_spec.signature_name = "predict_raw"
    columns = serving_latency._columns(serving_latency._rows(batch, seed=batch))  # pylint: disable=protected-access
    for name, tensor in columns.items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(tensor.numpy()))
    return request


def bench_in_process(path, batch, seconds):
    """The SavedModel's `predict_raw` called directly: p50/p99 and rows/s."""
    import tensorflow as tf  # pylint: disable=g-import-not-at-top

    signature = tf.saved_model.load(path).signatures["predict_raw"]
    inputs = serving_latency._columns(serving_latency._rows(batch, seed=batch))  # pylint: disable=protected-access
    for _ in range(10):
        signature(**inputs)
    samples, started = [], time.perf_counter()
    while time.perf_counter() - started < seconds:
        start = time.perf_counter()
        signature(**inputs)
        samples.append(time.perf_counter() - start)
    elapsed = time.perf_counter() - started
    return {**serving_latency.percentiles(samples), "req_per_s": len(samples) / elapsed,
            "rows_per_s": batch * len(samples) / elapsed}


def start_server(base, core, extra_flags):
    ready = os.path.join(base, "ready.json")
    command = ["taskset", "-c", str(core), sys.executable, "-m", "drgrad.cli", "serve",
               "--model-base", base, "--model-name", MODEL, "--rest-port", "0",
               "--grpc-port", "0", "--ready-file", ready, *extra_flags]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not os.path.exists(ready):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"server did not start: {' '.join(command)}")
        time.sleep(0.2)
    with open(ready) as f:
        return process, json.load(f)


# ----------------------------------------------------------------------------- REST (wrk)
_WRK_SCRIPT = """wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = io.open("{body}", "rb"); wrk.body = f:read("*a"); f:close()
"""
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}


def _ms(text):
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(number) * _UNITS[unit]


def parse_wrk(output):
    """req/s, p50/p99 (ms), requests, non-2xx and socket errors from `wrk --latency` output."""
    result = {"req_per_s": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),
              "requests": int(re.search(r"(\d+) requests in", output).group(1))}
    for label, key in (("50%", "p50_ms"), ("99%", "p99_ms")):
        match = re.search(rf"^\s+{re.escape(label)}\s+(\S+)", output, re.MULTILINE)
        result[key] = _ms(match.group(1)) if match else None
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    result["non_2xx"] = int(non_2xx.group(1)) if non_2xx else 0
    socket = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                       output)
    result["socket_errors"] = sum(map(int, socket.groups())) if socket else 0
    return result


def rest_closed_loop(port, core, clients, batch, seconds, workdir):
    body_path = os.path.join(workdir, f"body{batch}.json")
    with open(body_path, "w") as f:
        f.write(_predict_body(batch))
    script = os.path.join(workdir, f"post{batch}.lua")
    with open(script, "w") as f:
        f.write(_WRK_SCRIPT.format(body=body_path))
    run = subprocess.run(
        ["taskset", "-c", str(core), "wrk", "-t1", f"-c{clients}", f"-d{seconds}s", "--latency",
         "--timeout", "10s", "-s", script, f"http://127.0.0.1:{port}/v1/models/{MODEL}:predict"],
        capture_output=True, text=True, timeout=seconds + 60, check=False)
    if run.returncode != 0:
        raise RuntimeError(f"wrk failed ({run.returncode}): {run.stderr.strip()[:500]}")
    result = parse_wrk(run.stdout)
    result["rows_per_s"] = result["req_per_s"] * batch
    return result


# ----------------------------------------------------------------------------- gRPC
def _channels(port, count):
    import grpc  # pylint: disable=g-import-not-at-top
    from tensorflow_serving.apis import prediction_service_pb2_grpc  # pylint: disable=g-import-not-at-top

    # Distinct channel args keep grpc from sharing one subchannel (one TCP connection).
    channels = [grpc.aio.insecure_channel(f"127.0.0.1:{port}",
                                          options=[("grpc.channel_id", index),
                                                   ("grpc.max_receive_message_length", -1)])
                for index in range(count)]
    return channels, [prediction_service_pb2_grpc.PredictionServiceStub(c) for c in channels]


async def grpc_closed_loop(port, clients, batch, seconds, channels=8):
    import grpc  # pylint: disable=g-import-not-at-top

    request = _grpc_request(batch)
    opened, stubs = _channels(port, min(channels, clients))
    samples, errors = [], {}
    stop_at = time.perf_counter() + seconds

    async def client(index):
        stub = stubs[index % len(stubs)]
        while time.perf_counter() < stop_at:
            start = time.perf_counter()
            try:
                await stub.Predict(request, timeout=30)
                samples.append(time.perf_counter() - start)
            except grpc.aio.AioRpcError as error:
                errors[error.code().name] = errors.get(error.code().name, 0) + 1

    started = time.perf_counter()
    await asyncio.gather(*(client(i) for i in range(clients)))
    elapsed = time.perf_counter() - started
    for channel in opened:
        await channel.close()
    return {**serving_latency.percentiles(samples or [0.0]),
            "req_per_s": len(samples) / elapsed, "rows_per_s": batch * len(samples) / elapsed,
            "errors": errors}


def grpc_frame(message):
    """A gRPC length-prefixed message (not compressed): the body of an HTTP/2 gRPC request."""
    payload = message.SerializeToString()
    return b"\x00" + len(payload).to_bytes(4, "big") + payload


def parse_h2load(output, log_path):
    """req/s, request counts and data bytes from `h2load` output; p50/p99 (ms) from its
    per-request log (start µs, HTTP status, µs to the end of the response)."""
    result = {"req_per_s": float(re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", output)
                                 .group(1))}
    done = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                     r"(\d+) failed, (\d+) errored, (\d+) timeout", output)
    result.update(zip(("requests", "started", "done", "succeeded", "failed", "errored",
                       "timeout"), map(int, done.groups())))
    result["data_bytes"] = int(re.search(r"\((\d+)\) data", output).group(1))
    with open(log_path) as f:
        latencies = [int(line.split("\t")[2]) / 1e6 for line in f if line.strip()]
    result.update(serving_latency.percentiles(latencies or [0.0]))
    return result


def grpc_closed_loop_h2load(port, core, clients, batch, seconds, workdir, connections=8):
    """Closed loop of `clients` concurrent gRPC Predict calls from `h2load` (C, HTTP/2):
    `connections` connections × clients / connections streams each. h2load sees HTTP
    statuses only (gRPC's status is in the trailers), so one call through grpc first checks
    the body is answered OK, and the answers are counted from the DATA bytes: a refused call
    (trailers only) carries none."""
    import grpc  # pylint: disable=g-import-not-at-top
    from tensorflow_serving.apis import prediction_service_pb2_grpc  # pylint: disable=g-import-not-at-top

    request = _grpc_request(batch)
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        response = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(
            request, timeout=60)
    body_path = os.path.join(workdir, f"grpc{batch}.bin")
    with open(body_path, "wb") as f:
        f.write(grpc_frame(request))
    log_path = os.path.join(workdir, f"h2load-c{clients}-b{batch}.log")
    streams = max(1, clients // connections)
    run = subprocess.run(
        ["taskset", "-c", str(core), "h2load", "-t1", f"-c{connections}", f"-m{streams}",
         f"-D{seconds}", "-H", "content-type: application/grpc", "-H", "te: trailers",
         "-d", body_path, f"--log-file={log_path}",
         f"http://127.0.0.1:{port}/tensorflow.serving.PredictionService/Predict"],
        capture_output=True, text=True, timeout=seconds + 60, check=False)
    if run.returncode != 0:
        raise RuntimeError(f"h2load failed ({run.returncode}): {run.stderr.strip()[:500]}")
    result = parse_h2load(run.stdout, log_path)
    answered = result["data_bytes"] // len(grpc_frame(response))
    result.update(answered_ok=answered, rows_per_s=result["req_per_s"] * batch,
                  clients=connections * streams)
    return result


# "client_limit": not sent, the generator ran out of connections (offered load not reached).
_OUTCOMES = ("ok", "refused", "error", "client_limit")


async def _open_loop(rate, seconds, send):
    """Fires `send()` at a fixed arrival rate; returns the outcome summary."""
    outcomes = []          # (kind, latency s), kind: one of _OUTCOMES

    async def one():
        start = time.perf_counter()
        kind = await send()
        outcomes.append((kind, time.perf_counter() - start))

    tasks, started = [], time.perf_counter()
    total = int(rate * seconds)
    for index in range(total):
        delay = started + index / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(one()))
    # The rate the generator really held: below `rate` when its own core could not keep up.
    fired = total / max(time.perf_counter() - started, 1e-9)
    await asyncio.gather(*tasks)
    elapsed = max(time.perf_counter() - started, seconds)
    by_kind = {k: [lat for kind, lat in outcomes if kind == k] for k in _OUTCOMES}
    summary = {"offered_req_per_s": rate, "fired_req_per_s": fired, "sent": total,
               "goodput_req_per_s": len(by_kind["ok"]) / elapsed}
    for kind, latencies in by_kind.items():
        summary[kind] = {"count": len(latencies)}
        if latencies:
            summary[kind].update(serving_latency.percentiles(latencies))
    return summary


async def grpc_open_loop(port, rate, seconds, channels=8):
    """Open-loop gRPC Predict calls; the summary's `codes` counts every call's final status
    (OK, RESOURCE_EXHAUSTED, DEADLINE_EXCEEDED, ...) and `retry_after` the refusals that
    carried the server's `retry-after` trailer."""
    import grpc  # pylint: disable=g-import-not-at-top

    request = _grpc_request(1)
    opened, stubs = _channels(port, channels)
    counter = iter(range(1 << 62))
    codes, hinted = collections.Counter(), [0]

    async def send():
        try:
            await stubs[next(counter) % len(stubs)].Predict(request, timeout=30)
            codes["OK"] += 1
            return "ok"
        except grpc.aio.AioRpcError as error:
            codes[error.code().name] += 1
            if error.code() != grpc.StatusCode.RESOURCE_EXHAUSTED:
                return "error"
            hinted[0] += any(k == "retry-after" for k, _ in error.trailing_metadata() or ())
            return "refused"

    try:
        summary = await _open_loop(rate, seconds, send)
        summary.update(codes=dict(codes), retry_after=hinted[0])
        return summary
    finally:
        for channel in opened:
            await channel.close()


async def rest_open_loop(port, rate, seconds, max_connections=512):
    """Open-loop HTTP/1.1 keep-alive client (wrk cannot hold an arrival rate)."""
    body = _predict_body(1).encode()
    statuses, hinted = collections.Counter(), [0]
    head = (f"POST /v1/models/{MODEL}:predict HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    idle, opened = [], [0]

    async def send():
        if idle:
            reader, writer = idle.pop()
        elif opened[0] < max_connections:
            opened[0] += 1
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        else:
            return "client_limit"      # the generator's connection cap, not the server
        try:
            writer.write(head + body)
            status_line = await reader.readline()
            length = 0
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b""):
                    break
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
                hinted[0] += line.lower().startswith(b"retry-after:")
            await reader.readexactly(length)
            idle.append((reader, writer))
            status = int(status_line.split()[1])
        except (OSError, asyncio.IncompleteReadError, IndexError, ValueError) as error:
            statuses[type(error).__name__] += 1
            opened[0] -= 1
            writer.close()
            return "error"
        statuses[str(status)] += 1
        return "ok" if status == 200 else "refused" if status == 429 else "error"

    try:
        summary = await _open_loop(rate, seconds, send)
        summary.update(codes=dict(statuses), retry_after=hinted[0])
        return summary
    finally:
        for _, writer in idle:
            writer.close()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=20, help="seconds per scenario")
    parser.add_argument("--smoke", action="store_true", help="1-second scenarios (checks it runs)")
    parser.add_argument("--server-core", type=int, default=0)
    parser.add_argument("--load-core", type=int, default=1)
    parser.add_argument("--saved-model", default=None,
                        help="SavedModel to serve (default: export the bench's DRGrad model)")
    parser.add_argument("--server-flag", action="append", default=[],
                        help="extra `drgrad serve` flag, e.g. --server-flag=--no-batching")
    parser.add_argument("--json", default=None, help="write the results here")
    args = parser.parse_args(argv)
    _require_load_generators()
    seconds = 1 if args.smoke else args.duration
    if seconds < 1:
        raise SystemExit("--duration must be at least 1 second")
    workdir = tempfile.mkdtemp(prefix="serving-load-")
    path = args.saved_model or serving_latency.export_variants(workdir)[MODEL]
    from drgrad.serving.export import write_model_version  # pylint: disable=g-import-not-at-top

    base = os.path.join(workdir, "base")
    write_model_version(base, MODEL, path, version=1)
    report = {"settings": {"seconds": seconds, "server_core": args.server_core,
                           "load_core": args.load_core, "server_flags": args.server_flag,
                           "cpus": os.cpu_count(), "command": " ".join(sys.argv)}}
    os.sched_setaffinity(0, {args.server_core})
    report["in_process"] = {f"batch{b}": bench_in_process(path, b, seconds) for b in (1, 256)}
    os.sched_setaffinity(0, {args.load_core})
    process, ports = start_server(base, args.server_core, args.server_flag)
    try:
        closed = {}
        for clients, batch in ((64, 1), (32, 256)):
            closed[f"rest/c{clients}/b{batch}"] = rest_closed_loop(
                ports["rest_port"], args.load_core, clients, batch, seconds, workdir)
            closed[f"grpc/c{clients}/b{batch}"] = asyncio.run(
                grpc_closed_loop(ports["grpc_port"], clients, batch, seconds))
            closed[f"grpc-h2load/c{clients}/b{batch}"] = grpc_closed_loop_h2load(
                ports["grpc_port"], args.load_core, clients, batch, seconds, workdir)
        report["closed_loop"] = closed
        overload = {}
        for scheme, run in (("rest", rest_open_loop), ("grpc", grpc_open_loop)):
            peak = closed[f"{scheme}/c64/b1"]["req_per_s"]
            result = asyncio.run(run(ports[f"{scheme}_port"], 4 * peak, seconds))
            result["goodput_over_peak"] = result["goodput_req_per_s"] / peak if peak else None
            overload[scheme] = result
        report["overload_4x"] = overload
    finally:
        process.terminate()
        process.wait(timeout=60)
    serving_latency.print_report(report, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())

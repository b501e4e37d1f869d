"""Serving latency: DRGrad vs MMoE vs Split-MMoE, in process and through the local server.

DRGrad (arXiv 2510.09643) routes gradients only in `train_step`; its serving graph is the
Split-MMoE backbone's, so its latency should equal Split-MMoE's and be within a few percent of
MMoE's at the same widths (goal: DRGrad/MMoE p50 <= 1.02). The server part measures what the
TF Serving-compatible front ends add: p50/p99 and throughput at 1, 8 and 64 concurrent
clients over REST and gRPC, and the overhead over the in-process call at batch 1 (goals:
<= 1 ms gRPC, <= 2 ms REST).

    .venv/bin/python -m drgrad.bench.serving_latency [--quick] [--json out.json]

The server runs in a separate process (`drgrad serve`), the clients are threads here.
Numbers depend on the machine and on what else runs on it; the script prints its settings.
"""
import argparse
import concurrent.futures
import json
import os
import subprocess
import sys
import tempfile
import time


import numpy as np  # noqa: E402

TASKS = ("income", "marital")
CATEGORICAL = {f"c{i}": 100 for i in range(8)}
NUMERIC = tuple(f"n{i}" for i in range(8))
VARIANTS = (("drgrad", "split_mmoe", "drgrad"), ("mmoe", "mmoe", "equal_weight"),
            ("split_mmoe", "split_mmoe", "equal_weight"))


def _rows(n, seed=0):
    rng = np.random.default_rng(seed)
    return [{**{c: int(rng.integers(100)) for c in CATEGORICAL},
             **{c: float(rng.normal()) for c in NUMERIC}} for _ in range(n)]


def _columns(rows):
    import tensorflow as tf
    return {c: tf.constant([r[c] for r in rows], tf.int64 if c in CATEGORICAL else tf.float32)
            for c in list(CATEGORICAL) + list(NUMERIC)}


def export_variants(out_dir):
    import tensorflow as tf

    from drgrad import model as model_pkg
    from drgrad.serving.export import export_saved_model

    feature_config = model_pkg.FeatureConfig(categorical=CATEGORICAL, numeric=NUMERIC,
                                             personalization=("c0",), embedding_dim=8)
    spec = {c: tf.io.FixedLenFeature([], tf.int64 if c in CATEGORICAL else tf.float32)
            for c in list(CATEGORICAL) + list(NUMERIC)}
    paths = {}
    for name, backbone, strategy in VARIANTS:
        model = model_pkg.build_model(feature_config, list(TASKS), backbone=backbone,
                                      strategy=strategy, seed=0)
        model(_columns(_rows(2)), training=False)
        paths[name] = export_saved_model(model, None, spec, TASKS, os.path.join(out_dir, name))
    return paths


def percentiles(samples_s):
    ms = np.asarray(samples_s) * 1e3
    return {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
            "n": int(len(ms))}


def bench_in_process(paths, iterations):
    """Variants are called round-robin, so load from other processes hits all of them alike."""
    import tensorflow as tf

    signatures = {name: tf.saved_model.load(path).signatures["predict_raw"]
                  for name, path in paths.items()}
    results = {}
    for batch in (1, 512):
        inputs = _columns(_rows(batch, seed=batch))
        for signature in signatures.values():
            for _ in range(20):
                signature(**inputs)
        samples = {name: [] for name in signatures}
        names = list(signatures)
        for step in range(iterations if batch == 1 else max(iterations // 4, 20)):
            for name in names[step % len(names):] + names[:step % len(names)]:
                start = time.perf_counter()
                signatures[name](**inputs)
                samples[name].append(time.perf_counter() - start)
        for name in names:
            results[f"{name}/batch{batch}"] = percentiles(samples[name])
    return results


def _start_server(base):
    ready = os.path.join(base, "ready.json")
    process = subprocess.Popen(
        [sys.executable, "-m", "drgrad.cli", "serve", "--model-base", base, "--model-name",
         "drgrad", "--rest-port", "0", "--grpc-port", "0", "--ready-file", ready],
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not os.path.exists(ready):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError("server did not start")
        time.sleep(0.2)
    with open(ready) as f:
        return process, json.load(f)


def bench_server(path, requests_per_client, concurrency_levels):
    from drgrad.serving import client as client_lib
    from drgrad.serving.export import write_model_version

    base = tempfile.mkdtemp(prefix="serving-bench-")
    write_model_version(base, "drgrad", path, version=1)
    process, ports = _start_server(base)
    rows = _rows(1, seed=7)
    results = {}
    try:
        for scheme in ("grpc", "rest"):
            port = ports["grpc_port" if scheme == "grpc" else "rest_port"]
            url = f"{scheme}://127.0.0.1:{port}"
            for clients in concurrency_levels:
                def worker(_):
                    client = client_lib.connect(url, "drgrad")
                    client.input_dtypes()
                    for _ in range(5):
                        client.predict(rows)
                    samples = []
                    for _ in range(requests_per_client):
                        start = time.perf_counter()
                        client.predict(rows)
                        samples.append(time.perf_counter() - start)
                    client.close()
                    return samples
                start = time.perf_counter()
                with concurrent.futures.ThreadPoolExecutor(clients) as pool:
                    samples = [s for chunk in pool.map(worker, range(clients)) for s in chunk]
                elapsed = time.perf_counter() - start
                results[f"{scheme}/clients{clients}"] = {
                    **percentiles(samples), "throughput_rps": len(samples) / elapsed}
    finally:
        process.terminate()
        process.wait(timeout=60)
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations")
    parser.add_argument("--json", default=None, help="write the results here")
    args = parser.parse_args(argv)
    iterations = 200 if args.quick else 1000
    per_client = 50 if args.quick else 200
    out_dir = tempfile.mkdtemp(prefix="serving-latency-")
    paths = export_variants(out_dir)
    report = {"settings": {"iterations": iterations, "requests_per_client": per_client,
                           "cpus": os.cpu_count(), "tasks": TASKS,
                           "features": [len(CATEGORICAL), len(NUMERIC)]}}
    report["in_process"] = bench_in_process(paths, iterations)
    for batch in (1, 512):
        ratio = (report["in_process"][f"drgrad/batch{batch}"]["p50_ms"] /
                 report["in_process"][f"mmoe/batch{batch}"]["p50_ms"])
        report[f"ratio_drgrad_over_mmoe_p50_batch{batch}"] = ratio
    report["server"] = bench_server(paths["drgrad"], per_client, (1, 8, 64))
    in_process_1 = report["in_process"]["drgrad/batch1"]["p50_ms"]
    for scheme in ("grpc", "rest"):
        report[f"overhead_ms_{scheme}_batch1"] = (
            report["server"][f"{scheme}/clients1"]["p50_ms"] - in_process_1)
    print_report(report, args.json)
    return 0


def print_report(report, json_path=None):
    """Prints the report as JSON, and writes it to `json_path` when given."""
    text = json.dumps(report, indent=2)
    print(text)
    if json_path:
        with open(json_path, "w") as f:
            f.write(text)


if __name__ == "__main__":
    sys.exit(main())

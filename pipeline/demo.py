"""`drgrad demo`: the whole system once, end to end (what `make demo` runs).

1. build the census-income CSV span (all 299,285 rows; `--rows N` takes N per split for a
   quicker smoke run);
2. run the TFX pipeline with the LocalDagRunner (ExampleGen -> ... -> Trainer (Split-MMoE +
   DRGrad) -> Evaluator -> Pusher); print each task's eval AUC and the pushed model path;
3. start `drgrad serve` (a separate process: it reads the pushed SavedModel only) on the
   serving directory, send one REST and one gRPC prediction for a few eval rows, print them
   next to the in-process predictions of the same SavedModel, and stop the server.
"""
import json
import os
import subprocess
import sys
import tempfile
import time

DEFAULT_ROWS = 0          # all rows
DEFAULT_EPOCHS = 5
SERVER_START_SECONDS = 180.0


def register(subparsers):
    demo = subparsers.add_parser(
        "demo", help="data -> TFX pipeline -> push -> local server -> REST/gRPC predictions",
        description=__doc__.split("\n\n")[0])
    demo.add_argument("--out", default=os.path.join("runs", "demo"),
                      help="run directory (default: runs/demo)")
    demo.add_argument("--rows", type=int, default=DEFAULT_ROWS,
                      help="rows per split taken from census (default: 0 = all: 199,523 "
                           "train, 49,881 eval, 49,881 test)")
    demo.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS,
                      help=f"training epochs (default: {DEFAULT_EPOCHS})")
    demo.add_argument("--backbone", default="split_mmoe")
    demo.add_argument("--strategy", default="drgrad")
    demo.add_argument("--examples", type=int, default=4,
                      help="eval rows to send to the server (default: 4)")
    demo.set_defaults(func=_demo)


def _demo(args):
    if args.rows < 0 or args.epochs < 1 or args.examples < 1:
        raise ValueError("--rows must be >= 0, --epochs and --examples >= 1")
    from drgrad.pipeline import commands

    root = os.path.abspath(args.out)
    argv = ["--dataset", "census", "--backbone", args.backbone, "--strategy", args.strategy,
            "--epochs", str(args.epochs), "--root", root]
    if args.rows:
        argv += ["--rows", str(args.rows)]
    print(f"== 1-2. census data + TFX pipeline under {root}", flush=True)
    run_args = _parse_pipeline_run(argv)
    commands._run(run_args)  # pylint: disable=protected-access

    from drgrad.data.specs import get_spec  # pylint: disable=g-import-not-at-top

    spec = get_spec("census")
    serving_dir = os.path.join(root, "serving")
    rows = _eval_rows(os.path.join(root, "data", spec.name), args.examples)
    print(f"\n== 3. serving {serving_dir} with `drgrad serve`", flush=True)
    return _serve_and_compare(serving_dir, spec.name, rows)


def _parse_pipeline_run(argv):
    import argparse  # pylint: disable=g-import-not-at-top

    from drgrad.pipeline import commands  # pylint: disable=g-import-not-at-top

    parser = argparse.ArgumentParser(prog="drgrad")
    commands.register(parser.add_subparsers(dest="command"))
    return parser.parse_args(["pipeline", "run", *argv])


def _eval_rows(data_root, count):
    """The first `count` eval rows as raw feature dicts (labels dropped)."""
    import pandas as pd  # pylint: disable=g-import-not-at-top

    from drgrad.data.specs import get_spec  # pylint: disable=g-import-not-at-top

    spec = get_spec("census")
    spans = sorted(name for name in os.listdir(data_root) if name.startswith("span-"))
    frame = pd.read_csv(os.path.join(data_root, spans[-1], "eval", "part-00000.csv"),
                        nrows=count, keep_default_na=False)
    casts = {"int": int, "float": float, "string": str}
    return [{name: casts[spec.raw_dtypes[name]](row[name]) for name in spec.features}
            for _, row in frame.iterrows()]


def _in_process(version_dir, rows):
    """Predictions of the pushed SavedModel's `serving_default`, called in this process."""
    import tensorflow as tf  # pylint: disable=g-import-not-at-top

    from drgrad.data.specs import get_spec  # pylint: disable=g-import-not-at-top

    spec = get_spec("census")
    examples = []
    for row in rows:
        feature = {}
        for name, value in row.items():
            kind = spec.raw_dtypes[name]
            if kind == "int":
                feature[name] = tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))
            elif kind == "float":
                feature[name] = tf.train.Feature(float_list=tf.train.FloatList(value=[value]))
            else:
                feature[name] = tf.train.Feature(
                    bytes_list=tf.train.BytesList(value=[value.encode()]))
        examples.append(tf.train.Example(
            features=tf.train.Features(feature=feature)).SerializeToString())
    loaded = tf.saved_model.load(version_dir)
    outputs = loaded.signatures["serving_default"](examples=tf.constant(examples))
    return {task: [float(v) for v in tf.reshape(value, [-1]).numpy()]
            for task, value in outputs.items()}


def _latest_version(model_dir):
    versions = [int(name) for name in os.listdir(model_dir) if name.isdigit()]
    if not versions:
        raise FileNotFoundError(f"no pushed version under {model_dir}")
    return os.path.join(model_dir, str(max(versions)))


def _serve_and_compare(serving_dir, model_name, rows):
    from drgrad.serving import client as client_lib  # pylint: disable=g-import-not-at-top

    version_dir = _latest_version(os.path.join(serving_dir, model_name))
    with tempfile.TemporaryDirectory() as tmp:
        ready = os.path.join(tmp, "ready.json")
        log_path = os.path.join(tmp, "serve.log")
        with open(log_path, "w") as log:
            server = subprocess.Popen(
                [sys.executable, "-m", "drgrad.cli", "serve", "--model-base", serving_dir,
                 "--rest-port", "0", "--grpc-port", "0", "--ready-file", ready],
                stdout=log, stderr=subprocess.STDOUT)
        try:
            ports = _wait_ready(server, ready, log_path)
            results = {}
            for scheme, port in (("rest", ports["rest_port"]), ("grpc", ports["grpc_port"])):
                client = client_lib.connect(f"{scheme}://127.0.0.1:{port}", model_name)
                try:
                    results[scheme] = client.predict(rows)
                finally:
                    client.close()
        finally:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
    results["in-process"] = _in_process(version_dir, rows)
    _print_table(results, len(rows))
    worst = max(abs(results[s][t][i] - results["in-process"][t][i])
                for s in ("rest", "grpc") for t in results["in-process"] for i in range(len(rows)))
    print(f"max |served - in-process| = {worst:.2e}; server stopped")
    return 0 if worst <= 1e-5 else 1


def _wait_ready(server, ready, log_path):
    deadline = time.monotonic() + SERVER_START_SECONDS
    while time.monotonic() < deadline:
        if os.path.exists(ready):
            with open(ready) as f:
                return json.load(f)
        if server.poll() is not None:
            break
        time.sleep(0.2)
    with open(log_path) as f:
        tail = f.read()[-3000:]
    raise RuntimeError(f"`drgrad serve` did not become ready; its log ends:\n{tail}")


def _print_table(results, count):
    tasks = sorted(results["in-process"])
    header = "row  " + "  ".join(f"{t + ' ' + s:>22}" for t in tasks
                                 for s in ("in-process", "rest", "grpc"))
    print(header)
    for i in range(count):
        cells = "  ".join(f"{results[s][t][i]:>22.6f}" for t in tasks
                          for s in ("in-process", "rest", "grpc"))
        print(f"{i:<4} {cells}")

"""Pipeline throughput: wall time per component, rows/s of ExampleGen and Transform.

Runs the data half of the TFX pipeline (CsvExampleGen -> StatisticsGen -> ImportSchemaGen ->
ExampleValidator -> ValidationGate -> Transform) on census with the Beam DirectRunner, once per
worker setting (1 = in_memory, N > 1 = multi_processing with N workers), each in a fresh run
directory with caching off, and reads every component's wall time from ML Metadata. With
`--full` the whole pipeline runs (Trainer, Evaluator, Pusher too).

    python -m drgrad.bench.pipeline_throughput --rows 20000 --workers 1 2

Rows/s counts the train + eval rows that ExampleGen ingests and Transform analyzes (train) and
transforms (train + eval). Numbers depend heavily on the machine and its load: report the
command, the machine and the load average with them.
"""
import argparse
import json
import os
import sys
import tempfile
import time



def run_once(data_root, root, workers, full):
    from tfx import v1 as tfx

    from drgrad.pipeline import configs, local_runner

    pipeline, paths = local_runner.build(
        data_root, root, "census", enable_cache=False, data_only=not full,
        beam_pipeline_args=configs.direct_beam_args_by_workers(workers))
    start = time.time()
    tfx.orchestration.LocalDagRunner().run(pipeline)
    total = time.time() - start
    timings = {node: runs[-1][1] for node, runs in local_runner.component_timings(paths).items()}
    return total, timings


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=20000, help="rows per split (default 20000)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--full", action="store_true", help="run the whole pipeline")
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    args = parser.parse_args(argv)
    if args.rows < 1 or any(w < 0 for w in args.workers):
        parser.error("--rows must be >= 1 and --workers >= 0")

    from drgrad.data.datasets import build

    results = {"rows_per_split": args.rows, "cpus": os.cpu_count(),
               "load_average": os.getloadavg(), "runs": []}
    with tempfile.TemporaryDirectory(prefix="drgrad-bench-") as tmp:
        built = build("census", os.path.join(tmp, "data"), rows=args.rows)
        rows = built["manifest"]["spans"]["1"]["rows"]
        ingested = rows["train"] + rows["eval"]
        for workers in args.workers:
            total, timings = run_once(built["path"], os.path.join(tmp, f"run-{workers}"),
                                      workers, args.full)
            entry = {"workers": workers, "total_s": round(total, 1),
                     "component_s": {k: round(v, 1) for k, v in sorted(timings.items())},
                     "examplegen_rows_per_s": round(ingested / timings["CsvExampleGen"], 1),
                     "transform_rows_per_s": round(ingested / timings["Transform"], 1)}
            results["runs"].append(entry)
            print(json.dumps(entry), flush=True)
    if args.out:
        with open(args.out, "w") as handle:
            json.dump(results, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())

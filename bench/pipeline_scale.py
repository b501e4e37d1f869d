"""The local pipeline on a simulated day of N rows, beside its in-process floor (issue #16, 2).

For each ``--rows N``: `drgrad data simulate` writes one day of N rows (``--preset``, its
dataset file beside the data; train 80 %, eval 10 %, test 10 %), then, each stage in its own
process so that its memory is its own:

* ``floor``: the same rows read (`drgrad.data.load_frames`) and fitted + transformed by
  `FeaturePreprocessor` in one process (``--floor``, below);
* ``pipeline``: `drgrad pipeline run` on the dataset file, the whole DAG (ExampleGen → … →
  Pusher), caching off, the Beam DirectRunner in ``--direct-mode``; wall time per component
  from ML Metadata (each execution's create → last update time);
* ``train``: `drgrad train` on the same rows, the same epochs (patience = epochs: no early
  stop), the same model (the pipeline's default, Split-MMoE + DRGrad).

While a stage runs, a thread samples the resident set size of its process and every descendant
(psutil) every ``--sample-ms``; reported are the peak of the whole tree per stage and per
pipeline component (the samples inside its MLMD window), and each process's own peak. Rows/s is
the day's rows over the stage's (component's) seconds. Writes ``DIR/pipeline_scale.json`` and
``DIR/pipeline_scale.md``. Nothing here is tuned: it measures where the time goes.

    python -m drgrad.bench.pipeline_scale --rows 100000 [--rows 1000000] \\
        --direct-mode in_memory|multi_processing --out DIR [--epochs 1]
    python -m drgrad.bench.pipeline_scale --dataset census --epochs 5 --out DIR

With ``--dataset`` there is no simulate stage: the dataset's own rows are measured as they
are, and the table adds the whole pipeline's time over `drgrad train`'s.
"""
import argparse
import json
import os
import subprocess
import sys
import threading
import time

import psutil

from drgrad.data.cli import positive_int

DIRECT_MODES = ("in_memory", "multi_processing")
MIB = 2 ** 20


class RssSampler:
    """Peak resident set size of a process and all its descendants.

    `sample` takes one sample now; `start`/`stop` run it every ``interval`` seconds on a
    daemon thread. Kept: ``peaks`` ``{pid: (name, peak bytes)}`` and ``timeline``
    ``[(time.time(), total bytes of the tree)]``.
    """

    def __init__(self, pid, interval=0.2):
        if interval <= 0:
            raise ValueError(f"interval must be > 0, got {interval}")
        self.root = psutil.Process(pid)
        self.interval = interval
        self.peaks = {}
        self.timeline = []
        self._stop = threading.Event()
        self._thread = None

    def sample(self):
        """Adds one sample; returns the tree's total RSS in bytes (0 once the root is gone)."""
        try:
            processes = [self.root] + self.root.children(recursive=True)
        except psutil.NoSuchProcess:
            return 0
        total = 0
        for process in processes:
            try:
                rss = process.memory_info().rss
                name = " ".join(process.cmdline()[:4]) or process.name()
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue     # exited between listing and reading
            total += rss
            if rss > self.peaks.get(process.pid, ("", -1))[1]:
                self.peaks[process.pid] = (name, rss)
        self.timeline.append((time.time(), total))
        return total

    def peak_between(self, start, end):
        """Highest tree total among the samples taken in ``[start, end]`` (None if none)."""
        values = [total for t, total in self.timeline if start <= t <= end]
        return max(values) if values else None

    def _loop(self):
        while not self._stop.wait(self.interval):
            self.sample()

    def start(self):
        self.sample()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10 * self.interval + 1)


def run_measured(argv, log_path, interval=0.2, check=True):
    """Runs ``argv`` (output to ``log_path``) under an `RssSampler`; returns ``(seconds,
    sampler, exit code)``. With ``check``, a non-zero exit raises RuntimeError naming the
    log."""
    with open(log_path, "w") as log:
        started = time.time()
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        sampler = RssSampler(process.pid, interval).start()
        try:
            code = process.wait()
        finally:
            sampler.stop()
            if process.poll() is None:       # interrupted: do not leave the stage running
                process.kill()
                process.wait()
        seconds = time.time() - started
    if check and code != 0:
        raise RuntimeError(f"{' '.join(argv[:4])} ... exited with {code}; see {log_path}")
    return seconds, sampler, code


def component_windows(metadata_path):
    """``{component: (start, end)}`` in seconds since the epoch: each node's last execution in
    the run's ML Metadata store (create time → last update time)."""
    import ml_metadata as mlmd  # pylint: disable=g-import-not-at-top
    from tfx import v1 as tfx  # pylint: disable=g-import-not-at-top
    store = mlmd.MetadataStore(
        tfx.orchestration.metadata.sqlite_metadata_connection_config(metadata_path))
    windows = {}
    for context in store.get_contexts_by_type("node"):
        executions = store.get_executions_by_context(context.id)
        if executions:
            last = max(executions, key=lambda e: e.id)
            windows[context.name.split(".", 1)[-1]] = (last.create_time_since_epoch / 1000.0,
                                                       last.last_update_time_since_epoch / 1000.0)
    return windows


def floor(dataset):
    """The in-process floor: ``{"read_s", "fit_transform_s", "rows"}`` of reading every split of
    ``dataset`` and fitting + transforming it with `FeaturePreprocessor`."""
    from drgrad import data  # pylint: disable=g-import-not-at-top
    from drgrad.data.preprocessing import FeaturePreprocessor  # pylint: disable=g-import-not-at-top
    started = time.time()
    frames = data.load_frames(dataset)
    read = time.time() - started
    preprocessor = FeaturePreprocessor(data.get_spec(dataset)).fit(frames["train"])
    for frame in frames.values():
        preprocessor.transform(frame)
    return {"read_s": read, "fit_transform_s": time.time() - started - read,
            "rows": sum(len(f) for f in frames.values())}


def _stage(key, label, seconds, sampler, rows, code=0):
    label = label if code == 0 else f"{label} — FAILED (exit {code})"
    return {"key": key, "stage": label, "seconds": round(seconds, 1),
            "rows_per_s": round(rows / seconds, 1),
            "peak_rss_mib": round(max(t for _, t in sampler.timeline) / MIB, 1),
            "processes": sorted(({"pid": pid, "command": cmd, "peak_rss_mib": round(rss / MIB, 1)}
                                 for pid, (cmd, rss) in sampler.peaks.items()),
                                key=lambda p: -p["peak_rss_mib"])}


def measure_day(rows, out, direct_mode, epochs, preset="default", workers=2, interval=0.2,
                on_stage=None, dataset=None, materialize=True):
    """Simulates one day of ``rows`` rows under ``out`` (or, given ``dataset``, a built-in
    name or dataset file, takes its rows as they are) and measures every stage (module
    docstring); returns the result dict, also passed to ``on_stage`` after each stage (so an
    interrupted run keeps what it measured)."""
    python = sys.executable
    if dataset is None:
        day = os.path.join(out, f"rows-{rows}")
        name = f"sim-{preset}"
        dataset = os.path.join(day, "data", name, f"{name}.yaml")
    else:
        day = os.path.join(out, os.path.splitext(os.path.basename(dataset))[0])
        preset = None
    os.makedirs(day, exist_ok=True)
    result = {"rows": rows, "direct_mode": direct_mode, "epochs": epochs, "preset": preset,
              "dataset": dataset, "materialize": materialize, "stages": [], "components": []}
    if preset is not None:
        seconds, sampler, _ = run_measured(
            [python, "-m", "drgrad.cli", "data", "simulate", "--preset", preset, "--days", "1",
             "--rows-per-day", str(rows), "--workers", str(workers),
             "--out", os.path.join(day, "data"), "--overwrite"],
            os.path.join(day, "simulate.log"), interval)
        _append(result, on_stage, _stage("simulate", "simulate (drgrad data simulate)",
                                         seconds, sampler, rows))

    seconds, sampler, _ = run_measured(
        [python, "-m", "drgrad.bench.pipeline_scale", "--floor", dataset,
         "--out", os.path.join(day, "floor.json")], os.path.join(day, "floor.log"), interval)
    with open(os.path.join(day, "floor.json")) as f:
        parts = json.load(f)
    rows = result["rows"] = parts["rows"]
    stage = _stage("floor", "floor: read + FeaturePreprocessor (one process)", seconds,
                   sampler, rows)
    stage.update(read_s=round(parts["read_s"], 1),
                 fit_transform_s=round(parts["fit_transform_s"], 1))
    _append(result, on_stage, stage)

    root = os.path.join(day, "pipeline")
    beam_workers = "1" if direct_mode == "in_memory" else str(workers)
    seconds, sampler, code = run_measured(
        [python, "-m", "drgrad.cli", "pipeline", "run", "--dataset", dataset, "--root", root,
         "--epochs", str(epochs), "--no-cache", "--beam-workers", beam_workers]
        + ([] if materialize else ["--no-materialize"]),
        os.path.join(day, "pipeline.log"), interval, check=False)
    metadata = os.path.join(root, "metadata.sqlite")
    windows = component_windows(metadata) if os.path.isfile(metadata) else {}
    for component, (start, end) in sorted(windows.items(), key=lambda item: item[1][0]):
        peak = sampler.peak_between(start, end)
        result["components"].append({
            "component": component, "seconds": round(end - start, 1),
            "rows_per_s": round(rows / max(end - start, 1e-9), 1),
            "peak_rss_mib": None if peak is None else round(peak / MIB, 1)})
    # A failed pipeline (e.g. a blocked validation gate) is reported with the components that
    # ran; `drgrad train` is still measured.
    _append(result, on_stage, _stage("pipeline", f"pipeline (drgrad pipeline run, {direct_mode})",
                                     seconds, sampler, rows, code))

    seconds, sampler, _ = run_measured(
        [python, "-m", "drgrad.cli", "train", "--dataset", dataset, "--out",
         os.path.join(day, "train"), "--epochs", str(epochs), "--patience", str(epochs),
         "--verbose", "0"], os.path.join(day, "train.log"), interval)
    _append(result, on_stage, _stage("train", "drgrad train (same rows, epochs)", seconds,
                                     sampler, rows))
    return result


def _append(result, on_stage, stage):
    result["stages"].append(stage)
    if on_stage is not None:
        on_stage(result)


def _ratio(numerator, denominator):
    return "—" if not numerator or not denominator else f"{numerator / denominator:.1f}×"


def render_markdown(results):
    """Markdown tables of `measure_day` results (one section per size)."""
    lines = []
    for result in results:
        source = ("" if result.get("preset", "default") is not None
                  else f" of {os.path.basename(result['dataset'])}")
        materialize = "" if result.get("materialize", True) else ", --no-materialize"
        lines += [f"### {result['rows']:,} rows{source}, DirectRunner {result['direct_mode']}, "
                  f"{result['epochs']} epoch(s){materialize}", "",
                  "| stage / component | wall s | rows/s | peak RSS MiB (process tree) |",
                  "|---|---:|---:|---:|"]
        for stage in result["stages"]:
            lines.append(f"| {stage['stage']} | {stage['seconds']:.1f} | "
                         f"{stage['rows_per_s']:,.0f} | {stage['peak_rss_mib']:,.0f} |")
            if stage["key"] == "pipeline":
                for component in result["components"]:
                    peak = component["peak_rss_mib"]
                    # Under a second is bookkeeping (resolver, gate, pusher): no rate.
                    rate = (format(component["rows_per_s"], ",.0f")
                            if component["seconds"] >= 1.0 else "—")
                    lines.append(f"| &nbsp;&nbsp;{component['component']} | "
                                 f"{component['seconds']:.1f} | {rate} | "
                                 f"{'—' if peak is None else format(peak, ',.0f')} |")
        by_name = {c["component"]: c["seconds"] for c in result["components"]}
        stages = {s["key"]: s for s in result["stages"]}
        data_half = sum(seconds for c, seconds in by_name.items()
                        if c.endswith("ExampleGen") or c == "Transform")
        floor_work = (stages["floor"]["read_s"] + stages["floor"]["fit_transform_s"]
                      if "floor" in stages else None)
        lines += ["", f"- ExampleGen + Transform / floor (read + fit + transform, imports "
                      f"excluded): {_ratio(data_half, floor_work)}",
                  f"- Trainer / drgrad train (whole process): "
                  f"{_ratio(by_name.get('Trainer'), stages.get('train', {}).get('seconds'))}",
                  f"- pipeline / drgrad train (whole processes): "
                  f"{_ratio(stages.get('pipeline', {}).get('seconds'), stages.get('train', {}).get('seconds'))}",
                  "", "Peak RSS per process (MiB, the largest five of each stage):", ""]
        for stage in result["stages"]:
            top = ", ".join(f"{p['peak_rss_mib']:,.0f} `{p['command']}`"
                            for p in stage["processes"][:5])
            lines.append(f"- {stage['stage']}: {top}")
        lines.append("")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=positive_int, action="append",
                        help="rows of the simulated day (repeatable)")
    parser.add_argument("--dataset", metavar="NAME|FILE",
                        help="measure this dataset's rows as they are instead of a simulated "
                             "day (a built-in name or a dataset file)")
    parser.add_argument("--direct-mode", choices=DIRECT_MODES, default="in_memory")
    parser.add_argument("--workers", type=positive_int, default=2,
                        help="simulator processes and multi_processing Beam workers")
    parser.add_argument("--epochs", type=positive_int, default=1)
    parser.add_argument("--preset", default="default", help="simulator preset")
    parser.add_argument("--sample-ms", type=positive_int, default=200)
    parser.add_argument("--no-materialize", action="store_true",
                        help="run the pipeline with `--no-materialize` (the Trainer applies "
                             "the transform graph)")
    parser.add_argument("--out", required=True, metavar="DIR")
    parser.add_argument("--floor", metavar="DATASET", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.floor:                       # the floor stage's own process (measure_day)
        with open(args.out, "w") as f:
            json.dump(floor(args.floor), f)
        return 0
    if bool(args.rows) == bool(args.dataset):
        parser.error("give --rows N (repeatable) or --dataset, not both")
    os.makedirs(args.out, exist_ok=True)
    results = []

    def save(result):
        with open(os.path.join(args.out, "pipeline_scale.json"), "w") as f:
            json.dump({"cpus": os.cpu_count(), "load_average": os.getloadavg(),
                       "results": results + [result]}, f, indent=2)

    try:
        for rows in args.rows or [None]:
            results.append(measure_day(rows, args.out, args.direct_mode, args.epochs,
                                       preset=args.preset, workers=args.workers,
                                       interval=args.sample_ms / 1000.0, on_stage=save,
                                       dataset=args.dataset,
                                       materialize=not args.no_materialize))
    except (RuntimeError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    text = render_markdown(results)
    with open(os.path.join(args.out, "pipeline_scale.md"), "w") as f:
        f.write(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What `drgrad pipeline run|backfill` prints: a line per component, the rest in a log file.

A local run floods the console with TF, TFX, Beam and absl messages (and TF's C++ logs).
`capture(paths, pipeline_name, verbose)` sends all of them to
`<root>/logs/pipeline-<YYYYmmdd-HHMMSS>.log` (`local_runner.RunPaths.logs_dir`) and prints on
stdout, per component (pipeline node, resolvers included):

```
CsvExampleGen started
CsvExampleGen done in 4.1 s
StatisticsGen started
StatisticsGen done in 3.0 s: rows train 2,412, eval 588
Transform started
Transform done in 21.7 s: rows in train 2,412, eval 588
Trainer started
Epoch 1/3 ...                                       (Keras's own lines, on stdout)
Trainer done in 30.2 s: 3 epochs, batch 128
```

`(cached)` marks a component whose outputs were reused. Rows are what is known cheaply from
ML Metadata: StatisticsGen's counts per split (ExampleGen's output), the same counts for the raw
examples Transform read, the Trainer's steps or epochs; nothing is counted by reading data. On
failure the running component gets a `failed after N s` line and the traceback goes to the log
file; the caller prints the one-line error after `capture` has restored the console.

How the start and end are seen: TFX 1.16's `LocalDagRunner` has no per-component callback; it
logs `Component %s is running.` / `Component %s is finished.` (absl, INFO) around each node's
launch, and the launcher logs `A cached execution %d is used.`. A logging handler matches those
format strings (`record.msg`, not the formatted text, so arguments never confuse it). This needs
no TFX internals to be wrapped or copied (a runner subclass would repeat its loop over the
nodes, a patched `Launcher.launch` would depend on a class TFX does not export), and
`tests/test_pipeline_console.py` fails if a TFX upgrade rewords the messages.

Where the rest goes: the root logger's handlers are replaced, for the run, by a file handler (INFO
and up: absl's verbosity is raised to INFO for that) and the component lines; Python warnings go
through logging (`logging.captureWarnings`); and file descriptor 2 is pointed at the log file, so
TF's C++ logs and any stderr write of a library (or a Beam worker process) land there too.
`--verbose` keeps stderr as it is and adds a WARNING-and-up console handler: the warnings show
on the console as well (TF's C++ logs then stay on the console only).
"""
import contextlib
import datetime
import json
import logging
import os
import sys
import time
from typing import Callable, Dict, Iterator, Optional

from drgrad.pipeline import local_runner

# TFX 1.16: tfx/orchestration/local/local_dag_runner.py and orchestration/portable/launcher.py.
STARTED = "Component %s is running."
FINISHED = "Component %s is finished."
CACHED = "A cached execution %d is used."
CONSOLE_FORMAT = "%(levelname)s %(name)s: %(message)s"
LOG_FORMAT = "%(asctime)s " + CONSOLE_FORMAT


class ComponentLines(logging.Handler):
    """Prints `<node> started` and `<node> done in S s[ (cached)][: details]` on stdout from the
    runner's log records (module docstring); `details(node)` says what the node did."""

    def __init__(self, details: Optional[Callable[[str], str]] = None):
        super().__init__(logging.INFO)
        self._details = details
        self._running: Optional[str] = None
        self._started = 0.0
        self._cached = False

    def emit(self, record: logging.LogRecord) -> None:
        if record.msg == STARTED and record.args:
            self._running, self._started, self._cached = record.args[0], time.monotonic(), False
            self._print(f"{self._running} started")
        elif record.msg == CACHED:
            self._cached = True
        elif record.msg == FINISHED and record.args and record.args[0] == self._running:
            node, self._running = self._running, None
            line = f"{node} done in {time.monotonic() - self._started:.1f} s"
            if self._cached:
                line += " (cached)"
            details = self._details(node) if self._details is not None else ""
            self._print(f"{line}: {details}" if details else line)

    def failed(self) -> None:
        """The line of the component that was running when the run raised, if any."""
        if self._running is not None:
            self._print(f"{self._running} failed after {time.monotonic() - self._started:.1f} s")
            self._running = None

    @staticmethod
    def _print(line: str) -> None:
        print(line, file=sys.stdout, flush=True)  # sys.stdout now: a test may have swapped it


def log_path(paths: local_runner.RunPaths) -> str:
    """A new log file name under `<root>/logs/` (the folder is created)."""
    os.makedirs(paths.logs_dir, exist_ok=True)
    return os.path.join(paths.logs_dir,
                        f"pipeline-{datetime.datetime.now():%Y%m%d-%H%M%S}.log")


@contextlib.contextmanager
def capture(paths: local_runner.RunPaths, pipeline_name: str,
            verbose: bool = False) -> Iterator[str]:
    """Runs the block with the console of the module docstring; yields the log file's path."""
    from absl import logging as absl_logging  # pylint: disable=g-import-not-at-top

    path = log_path(paths)
    print(f"log file: {path}" + ("" if verbose else " (--verbose also shows it here)"),
          flush=True)
    lines = ComponentLines(lambda node: component_details(paths, pipeline_name, node))
    to_file = logging.FileHandler(path, mode="a")
    to_file.setFormatter(logging.Formatter(LOG_FORMAT))
    handlers = [to_file, lines]
    if verbose:
        to_console = logging.StreamHandler(sys.stderr)
        to_console.setLevel(logging.WARNING)
        to_console.setFormatter(logging.Formatter(CONSOLE_FORMAT))
        handlers.append(to_console)
    root = logging.getLogger()
    saved_handlers, saved_verbosity = list(root.handlers), absl_logging.get_verbosity()
    root.handlers = handlers
    absl_logging.set_verbosity(absl_logging.INFO)
    logging.captureWarnings(True)
    saved_stderr = None
    if not verbose:
        sys.stderr.flush()
        saved_stderr = os.dup(2)
        log_fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        os.dup2(log_fd, 2)
        os.close(log_fd)
    try:
        yield path
    except BaseException:
        lines.failed()
        logging.getLogger(__name__).exception("the pipeline run failed")
        raise
    finally:
        if saved_stderr is not None:
            sys.stderr.flush()
            os.dup2(saved_stderr, 2)
            os.close(saved_stderr)
        logging.captureWarnings(False)
        absl_logging.set_verbosity(saved_verbosity)
        root.handlers = saved_handlers
        to_file.close()


def component_details(paths: local_runner.RunPaths, pipeline_name: str, node: str) -> str:
    """What a finished node's latest execution did, from MLMD (module docstring), or ''."""
    try:
        return _details(paths, pipeline_name, node)
    except Exception:  # pylint: disable=broad-except
        # A report line is never worth failing the run over; the log file says why it is blank.
        logging.getLogger(__name__).warning("no details for %s", node, exc_info=True)
        return ""


def _details(paths, pipeline_name, node) -> str:
    import ml_metadata as mlmd  # pylint: disable=g-import-not-at-top

    store = mlmd.MetadataStore(local_runner.metadata_config(paths))
    context = store.get_context_by_type_and_name("node", f"{pipeline_name}.{node}")
    executions = store.get_executions_by_context(context.id) if context is not None else []
    if not executions:
        return ""
    execution = max(executions, key=lambda e: e.id)
    events = store.get_events_by_execution_ids([execution.id])
    outputs = store.get_artifacts_by_id(
        [e.artifact_id for e in events if e.type == mlmd.proto.Event.OUTPUT])
    statistics = [a for a in outputs if a.type == "ExampleStatistics"]
    if statistics:
        return f"rows {_splits(_rows(statistics))}"
    if node == "Transform":
        examples = [e.artifact_id for e in events if e.type == mlmd.proto.Event.INPUT]
        rows = _rows(_statistics_of(store, examples))
        return f"rows in {_splits(rows)}" if rows else ""
    if node == "Trainer":
        return _training(execution)
    return ""


def _statistics_of(store, example_ids):
    """The ExampleStatistics artifacts computed from the given (raw Examples) artifacts."""
    import ml_metadata as mlmd  # pylint: disable=g-import-not-at-top

    readers = {e.execution_id for e in store.get_events_by_artifact_ids(example_ids)
               if e.type == mlmd.proto.Event.INPUT}
    outputs = [e.artifact_id for e in store.get_events_by_execution_ids(sorted(readers))
               if e.type == mlmd.proto.Event.OUTPUT]
    return [a for a in store.get_artifacts_by_id(outputs) if a.type == "ExampleStatistics"]


def _rows(statistics) -> Dict[str, int]:
    """`{split: examples}` summed over ExampleStatistics artifacts (their
    `Split-<name>/FeatureStats.pb`)."""
    from tensorflow_metadata.proto.v0 import statistics_pb2  # pylint: disable=g-import-not-at-top

    rows: Dict[str, int] = {}
    for artifact in statistics:
        for folder in sorted(os.listdir(artifact.uri)):
            stats_file = os.path.join(artifact.uri, folder, "FeatureStats.pb")
            if not (folder.startswith("Split-") and os.path.isfile(stats_file)):
                continue
            with open(stats_file, "rb") as handle:
                parsed = statistics_pb2.DatasetFeatureStatisticsList.FromString(handle.read())
            split = folder[len("Split-"):]
            rows[split] = rows.get(split, 0) + sum(d.num_examples for d in parsed.datasets)
    return rows


def _splits(rows: Dict[str, int]) -> str:
    order = {"train": 0, "eval": 1, "test": 2}
    return ", ".join(f"{split} {count:,}"
                     for split, count in sorted(rows.items(), key=lambda i: order.get(i[0], 3)))


def _training(execution) -> str:
    """`N steps, batch B` or `E epochs, batch B`, from the Trainer's exec properties."""
    properties = execution.custom_properties
    config = json.loads(properties["custom_config"].string_value)
    steps = json.loads(properties["train_args"].string_value).get("num_steps")
    if steps:
        return f"{steps} steps, batch {config['batch_size']}"
    epochs = config["epochs"]
    return f"{epochs} epoch{'s' if epochs != 1 else ''}, batch {config['batch_size']}"

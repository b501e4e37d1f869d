"""Runs the pipeline in-process with TFX's `LocalDagRunner` (the `make demo` default).

Everything one run writes lives under one directory (`RunPaths`):

```
<root>/pipeline/                 TFX pipeline root (one folder per component)
<root>/metadata.sqlite           ML Metadata store (SQLite)
<root>/serving/<model>/<ver>/    models pushed by the Pusher (TF Serving layout)
<root>/logs/pipeline-<time>.log  what `drgrad pipeline run` kept off the console (`console`)
```

so a second run with the same root reuses the metadata (caching, the blessed baseline) and adds a
version only when the Evaluator blesses the new model.
"""
import contextlib
import dataclasses
import os
from typing import Any, Dict, Optional, Tuple

from drgrad.pipeline import configs


@dataclasses.dataclass(frozen=True)
class RunPaths:
    """Where a local run writes (module docstring)."""

    root: str
    model_name: str

    @property
    def pipeline_root(self) -> str:
        return os.path.join(self.root, "pipeline")

    @property
    def metadata_path(self) -> str:
        return os.path.join(self.root, "metadata.sqlite")

    @property
    def serving_dir(self) -> str:
        return os.path.join(self.root, "serving")

    @property
    def serving_model_dir(self) -> str:
        return os.path.join(self.serving_dir, self.model_name)

    @property
    def logs_dir(self) -> str:
        return os.path.join(self.root, "logs")


def dataset_file_options(dataset: str) -> Tuple[str, Dict[str, Any]]:
    """``(data_root, PipelineConfig options)`` that read a user's dataset file as it says.

    `source.format` picks the ExampleGen; a span layout is read span by span, flat files are
    hash-split train 8 / eval 1 / test 1 on `partition_feature` (ExampleGen's rule, the split
    the standalone trainer uses); the file's `transform` and `task_weights` become the Transform
    and Trainer options.
    """
    from drgrad.data import sources  # pylint: disable=g-import-not-at-top
    from drgrad.data.specs import get_dataset  # pylint: disable=g-import-not-at-top

    described = get_dataset(dataset)
    layout = sources.spans(described)
    root = described.source_path
    options: Dict[str, Any] = {
        "input_format": described.source.format,
        "num_oov_buckets": described.transform.num_oov_buckets,
        "vocab_top_k": described.transform.vocab_top_k,
        "vocab_frequency_threshold": described.transform.vocab_frequency_threshold,
        "embedding_dim": described.transform.embedding_dim,
    }
    if described.task_weights:
        options["task_weights"] = {task: described.task_weights.get(task, 1.0)
                                   for task in described.tasks}
    if 0 in layout:  # flat files: every file of the format directly in the folder
        files = layout[0]["flat"]
        if os.path.isfile(root):
            root = os.path.dirname(root)
        folders = {os.path.dirname(path) for path in files}
        if folders != {root}:
            raise ValueError(f"{described.where}: the pipeline reads flat files directly in "
                             f"{root}, not in sub-folders ({sorted(folders - {root})[:3]})")
        names = {os.path.basename(path) for path in files}
        pattern = (os.path.basename(files[0]) if len(files) == 1
                   else "*" + os.path.commonprefix([n[::-1] for n in names])[::-1])
        options.update(input_patterns={"flat": pattern}, hash_buckets=(8, 1, 1))
    return root, options


def metadata_config(paths: RunPaths):
    """SQLite MLMD connection config under the run directory."""
    from tfx import v1 as tfx

    return tfx.orchestration.metadata.sqlite_metadata_connection_config(paths.metadata_path)


def build(data_root: str, root: str, dataset: str, pipeline_name: Optional[str] = None,
          model_name: Optional[str] = None, **options):
    """(`tfx.dsl.Pipeline`, `RunPaths`) for a local run.

    `options` are flat `PipelineConfig` options (`PipelineConfig.from_options`: `epochs=2`,
    `min_auc=0.7`, `warm_start=True`, `beam_pipeline_args=[...]`, ...); the names, paths and
    the SQLite MLMD connection come from the run directory.
    """
    from drgrad.data.specs import get_spec

    from drgrad.pipeline.pipeline import create_pipeline
    from drgrad.pipeline.pipeline_config import PipelineConfig

    spec = get_spec(dataset)
    if not os.path.isdir(data_root):
        raise FileNotFoundError(f"data directory not found: {data_root}")
    spans = [name for name in os.listdir(data_root) if name.startswith("span-")]
    if not spans and not options.get("input_patterns"):
        raise FileNotFoundError(f"no span-<N> folders in {data_root}; build the data with "
                                f"`drgrad data build {spec.name} --out DIR`")
    paths = RunPaths(root=os.path.abspath(root), model_name=model_name or spec.name)
    config = PipelineConfig.from_options(
        pipeline_name=(pipeline_name if pipeline_name is not None
                       else configs.default_pipeline_name(spec.name)),
        pipeline_root=paths.pipeline_root, data_root=os.path.abspath(data_root),
        serving_model_dir=paths.serving_model_dir, dataset=dataset,
        metadata_connection_config=metadata_config(paths), **options)
    os.makedirs(paths.root, exist_ok=True)
    return create_pipeline(config), paths


def run(data_root: str, root: str, dataset: str, **options) -> RunPaths:
    """Builds (`build`: same arguments) and runs the pipeline with `LocalDagRunner`; returns its
    `RunPaths`.

    Raises whatever the failing component raised (e.g. `DataValidationError` from the
    validation gate on a bad data span).
    """
    from tfx import v1 as tfx

    pipeline, paths = build(data_root, root, dataset, **options)
    with unweighed_side_inputs():
        tfx.orchestration.LocalDagRunner().run(pipeline)
    return paths


@contextlib.contextmanager
def unweighed_side_inputs():
    """Turns off the cross-bundle side-input cache of Beam's in-process (in_memory) worker.

    That cache weighs every side input it stores with `objsize`, which walks the globals of
    every loaded module (about 10,000 with TensorFlow and TFX: 2.4 ms per weighing, measured),
    and TFT, TFMA and the file sinks read a side input in every bundle: 16 % of the census
    Transform and 5 % of the Evaluator in a py-spy profile (docs/SCALING.md). The side inputs
    here are small, so reading them again per bundle costs less than weighing them. The
    embedded worker's cache size is a module constant of Beam 2.67, hence the scoped override.
    """
    from apache_beam.runners.portability.fn_api_runner import worker_handlers

    saved = worker_handlers.STATE_CACHE_SIZE_MB
    worker_handlers.STATE_CACHE_SIZE_MB = 0
    try:
        yield
    finally:
        worker_handlers.STATE_CACHE_SIZE_MB = saved


def latest_outputs(paths: RunPaths) -> Dict[str, Any]:
    """Latest artifacts of this pipeline's last run, read from MLMD.

    Returns:
      `{"evaluation": uri|None, "blessing": uri|None, "blessed": bool|None,
        "pushed": bool|None, "pushed_destination": path|None}`.
    """
    import ml_metadata as mlmd

    from drgrad.pipeline import evaluation

    store = mlmd.MetadataStore(metadata_config(paths))
    out = {"evaluation": None, "blessing": None, "blessed": None, "pushed": None,
           "pushed_destination": None}
    by_type = {}
    for type_name in ("ModelEvaluation", "ModelBlessing", "PushedModel"):
        artifacts = [a for a in store.get_artifacts_by_type(type_name)
                     if a.state == mlmd.proto.Artifact.LIVE]
        by_type[type_name] = max(artifacts, key=lambda a: a.id) if artifacts else None
    if by_type["ModelEvaluation"] is not None:
        out["evaluation"] = by_type["ModelEvaluation"].uri
    if by_type["ModelBlessing"] is not None:
        out["blessing"] = by_type["ModelBlessing"].uri
        out["blessed"] = evaluation.read_blessing(out["blessing"])
    pushed = by_type["PushedModel"]
    if pushed is not None:
        props = pushed.custom_properties
        out["pushed"] = bool(props["pushed"].int_value) if "pushed" in props else None
        if out["pushed"] and "pushed_destination" in props:
            out["pushed_destination"] = props["pushed_destination"].string_value
    return out


def component_timings(paths: RunPaths) -> Dict[str, list]:
    """`{node id: [(state name, seconds), ...]}` of every execution recorded in MLMD, oldest
    first (cached executions take ~0 s)."""
    import ml_metadata as mlmd

    store = mlmd.MetadataStore(metadata_config(paths))
    states = mlmd.proto.Execution.State
    timings: Dict[str, list] = {}
    for context in store.get_contexts_by_type("node"):
        node = context.name.split(".", 1)[-1]
        for execution in sorted(store.get_executions_by_context(context.id), key=lambda e: e.id):
            seconds = (execution.last_update_time_since_epoch
                       - execution.create_time_since_epoch) / 1000.0
            timings.setdefault(node, []).append(
                (states.Name(execution.last_known_state), seconds))
    return timings

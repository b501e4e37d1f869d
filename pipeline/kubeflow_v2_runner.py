"""Compiles the pipeline for Kubeflow Pipelines v2 (`pipeline.yaml`) and Vertex (`pipeline.json`).

`KubeflowV2DagRunner` writes a file and runs nothing (as in TFX's templates). Both targets are
the same IR: open-source KFP takes the `pipelineSpec` as YAML (`kfp.Client` rejects `.json`
packages), Vertex AI Pipelines takes the whole `PipelineJob` as JSON. Every step runs the
project image (`--image`, default `configs.DEFAULT_IMAGE`), which must contain this package
and set `TF_USE_LEGACY_KERAS=1`; the Transform and Trainer code is imported from the image by
module path, so nothing is packaged into the pipeline root.

The compiled pipeline is the daily one (`pipeline.daily`): it declares the run-time parameter
`run_date` (YYYY-MM-DD; the default '' trains on the newest span of the data manifest), reuses
the Transform analyzer cache and warm-starts from the latest blessed model. Two limits of TFX
1.16's KubeflowV2 compiler shape it:

* it compiles only the `LatestArtifactStrategy` and `LatestBlessedModelStrategy` resolvers, so
  the rolling window of validated spans (a custom resolver strategy that reads MLMD) exists in
  local runs only; compiled pipelines train on the run's own span, warm-started;
* it names the producer of a dynamic exec property `<component id>_task` although the task is
  named `<component id>` (its own golden file `expected_two_step_pipeline_with_dynamic_
  execution_properties.pbtxt` has the same mismatch); `compile_pipeline` rewrites those
  references to the real task names so `SpanForDate -> ExampleGen.range_config` resolves.

A user's dataset file (`--dataset FILE`, `drgrad.data.dataset_file`) is compiled from the local
copy and read at run time from where `--dataset-uri` says: by default the same file inside the
image (`configs.IMAGE_SOURCE_ROOT` + its path in this checkout: put the file, its
`schema.pbtxt` and its data under `data/`, which the Dockerfile copies, or add a `COPY` line),
or a bucket (`gs://BUCKET/.../NAME.yaml`, with the schema and the data uploaded beside it as
they are beside the local file). Compiling reads the local file, its raw types and its data
layout (span folders or flat files, `local_runner.dataset_file_options`), and fails there when
any of it is missing or invalid (`DatasetLocationError` for the file and its location). The
containers never read the dataset file: the compiled Transform and Trainer `custom_config`s
and the Evaluator's `EvalConfig` already carry everything it describes (tasks, columns,
transform options, personalization, task weights, the served model's name), so at run time
only the data
(ExampleGen's `input_base`: `source.path` taken relative to the URI's folder, or its own
gs:// URL) and the schema (ImportSchemaGen of `<URI folder>/schema.pbtxt` when the local file
has one beside it, else SchemaGen) are read. The daily `run_date` parameter is compiled only
when the local data has the `manifest.json` of `drgrad data split-days`; otherwise each run
ingests the newest span (span layout) or every flat file.

Submit:
  KFP:    `kfp.Client(host).create_run_from_pipeline_package("pipeline.yaml",
                                                           arguments={"run_date": "2024-03-09"})`
  Vertex: `aiplatform.PipelineJob(display_name=..., template_path="pipeline.json").submit()`
"""
import os
import posixpath
from typing import Any, Dict, NamedTuple, Optional

from drgrad.pipeline import configs

TARGETS = {"kfp": "pipeline.yaml", "vertex": "pipeline.json"}
RUN_DATE_PARAMETER = "run_date"
# This checkout: the Dockerfile copies it to `configs.IMAGE_SOURCE_ROOT`.
CHECKOUT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class DatasetLocationError(ValueError):
    """A dataset file the compiled pipeline could not read (module docstring)."""


class DatasetLocation(NamedTuple):
    """Where the compiled pipeline reads a dataset file's data and schema (module docstring).

    Attributes:
      data_root: ExampleGen's `input_base`.
      schema_path: `<uri folder>/schema.pbtxt`, or None (no schema beside the local file).
      daily: the local data has a split-days manifest (compile the `run_date` parameter).
      options: the ingestion and transform options the local file implies.
    """

    data_root: str
    schema_path: Optional[str]
    daily: bool
    options: Dict[str, Any]


def check_dataset_uri(uri: str) -> str:
    """`uri` if it names a dataset file in a bucket (gs://BUCKET/...yaml) or inside the image
    (an absolute path ending in .yaml/.yml); DatasetLocationError otherwise."""
    in_bucket = uri.startswith("gs://") and len(uri.split("/")) > 3
    if not (in_bucket or uri.startswith("/")) or not uri.endswith((".yaml", ".yml")):
        raise DatasetLocationError(
            f"--dataset-uri must be the dataset file in a bucket (gs://BUCKET/.../NAME.yaml) or "
            f"inside the image (an absolute path such as {configs.IMAGE_SOURCE_ROOT}/data/"
            f"NAME/NAME.yaml), got {uri!r}")
    return uri


def _image_path(dataset: str) -> str:
    """The image's copy of a dataset file of this checkout (module docstring)."""
    relative = os.path.relpath(os.path.abspath(dataset), CHECKOUT_ROOT)
    if relative.startswith(os.pardir):
        raise DatasetLocationError(
            f"{dataset} is outside this checkout ({CHECKOUT_ROOT}), so the image cannot hold "
            f"it: give --dataset-uri gs://BUCKET/.../{os.path.basename(dataset)} (upload it with "
            f"its schema.pbtxt and data), or move it with its data under data/ (the Dockerfile "
            f"copies data/)")
    return posixpath.join(configs.IMAGE_SOURCE_ROOT, *relative.split(os.sep))


def _under(folder: str, relative: str) -> str:
    """`folder/relative` normalized, for a path or a scheme://bucket/... URL."""
    scheme, separator, path = folder.rpartition("://")
    return scheme + separator + posixpath.normpath(posixpath.join(path, relative))


def dataset_location(dataset: str, dataset_uri: Optional[str] = None) -> DatasetLocation:
    """Where the compiled pipeline reads a user's dataset file `dataset` (a local path) that
    lies at `dataset_uri` (default: inside the image); DatasetLocationError naming what is
    missing or invalid."""
    from drgrad.data.check import schema_path  # pylint: disable=g-import-not-at-top
    from drgrad.data.specs import get_dataset  # pylint: disable=g-import-not-at-top

    from drgrad.pipeline import daily, local_runner  # pylint: disable=g-import-not-at-top

    try:
        described = get_dataset(dataset)
        uri = check_dataset_uri(dataset_uri) if dataset_uri else _image_path(dataset)
        local_root, options = local_runner.dataset_file_options(dataset)
    except (ValueError, FileNotFoundError) as error:
        raise DatasetLocationError(str(error)) from None
    source = described.source.path
    if "://" in source:
        data_root = local_root
    elif os.path.isabs(source):
        raise DatasetLocationError(
            f"{described.where}: source.path {source} is a path on this machine, which the "
            f"pipeline's containers cannot read: make it relative to the dataset file or a "
            f"gs:// URL")
    else:
        relative = os.path.relpath(local_root, os.path.dirname(os.path.abspath(dataset)))
        data_root = _under(posixpath.dirname(uri), "/".join(relative.split(os.sep)))
    schema = schema_path(dataset)
    return DatasetLocation(
        data_root=data_root,
        schema_path=(_under(posixpath.dirname(uri), os.path.basename(schema))
                     if os.path.isfile(schema) else None),
        daily=os.path.isfile(os.path.join(local_root, daily.MANIFEST_NAME)), options=options)


def compile_pipeline(target: str, out_dir: str, image: str = configs.DEFAULT_IMAGE,
                     dataset: str = "census", cloud_root: str = configs.DEFAULT_CLOUD_ROOT,
                     pipeline_name: Optional[str] = None, dataset_uri: Optional[str] = None,
                     **options) -> str:
    """Writes the compiled pipeline; returns the file path.

    Args:
      target: "kfp" (KFP v2 YAML) or "vertex" (Vertex PipelineJob JSON).
      out_dir: output directory (created); the file is `pipeline.yaml` / `pipeline.json`.
      image: container image of every step.
      dataset: a built-in dataset's name, or the local path of a user's dataset file.
      cloud_root: bucket prefix; a built-in's data is read from `<root>/data/<dataset>`,
        artifacts go to `<root>/pipelines/<name>`, models are pushed to `<root>/serving/<name>`.
      pipeline_name: default `drgrad-<dataset name>`.
      dataset_uri: where the containers find a user's dataset file (`dataset_location`;
        default: inside the image).
      **options: flat `PipelineConfig` options (`PipelineConfig.from_options`: backbone,
        strategy, epochs, thresholds...; `schema_path` defaults to the curated schema inside the
        image, `warm_start` to True, `beam_pipeline_args` to the DirectRunner in_memory inside
        the step's pod, see `configs.beam_pipeline_args("dataflow", ...)` for Dataflow).
    """
    from drgrad.data.specs import get_dataset, get_spec
    from tfx import v1 as tfx

    from drgrad.pipeline.pipeline import create_pipeline
    from drgrad.pipeline.pipeline_config import PipelineConfig

    if target not in TARGETS:
        raise ValueError(f"unknown compile target {target!r}; choose one of {sorted(TARGETS)}")
    if not isinstance(image, str) or not image or any(c.isspace() for c in image):
        raise ValueError(f"image must be a container image name, got {image!r}")
    spec = get_spec(dataset)
    name = (pipeline_name if pipeline_name is not None
            else configs.default_pipeline_name(spec.name))
    root = cloud_root.rstrip("/")
    if get_dataset(dataset).source.loader is None:  # a user's dataset file
        location = dataset_location(dataset, dataset_uri)
        data_root, daily, defaults = location.data_root, location.daily, {
            **location.options, "schema_path": location.schema_path}
    elif dataset_uri is not None:
        raise DatasetLocationError("--dataset-uri is for a dataset file; the built-in datasets "
                                   "are read from --cloud-root")
    else:
        data_root, daily, defaults = f"{root}/data/{spec.name}", True, {
            "schema_path": _image_schema_path(spec.name)}
        dataset = spec.name
    run_date = (tfx.dsl.experimental.RuntimeParameter(
        name=RUN_DATE_PARAMETER, ptype=str, default="") if daily else None)
    config = PipelineConfig.from_options(
        pipeline_name=name, pipeline_root=f"{root}/pipelines/{name}",
        data_root=data_root, serving_model_dir=f"{root}/serving/{spec.name}",
        dataset=dataset, check_schema_path=False, metadata_connection_config=None,
        run_date=run_date,
        # The KubeflowV2 compiler has no custom resolver strategies (module docstring).
        window_spans=None, analyzer_cache=True,
        **{**defaults, "warm_start": True, **options})
    pipeline = create_pipeline(config)
    os.makedirs(out_dir, exist_ok=True)
    runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
        config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(
            default_image=image,
            # Schema 2.1 types run-time parameters (`parameterType`), which the YAML writer
            # of TFX 1.16 needs once the pipeline declares `run_date`.
            use_pipeline_spec_2_1=True),
        output_dir=out_dir, output_filename=TARGETS[target])
    path = os.path.join(out_dir, TARGETS[target])
    if os.path.exists(path):
        os.remove(path)  # The runner refuses to overwrite; a recompile replaces the file.
    runner.run(pipeline, write_out=True)
    document = load_compiled(path)
    if fix_producer_task_names(document):
        write_compiled(path, document)
    return path


def fix_producer_task_names(document: Dict[str, Any]) -> int:
    """Points `taskOutputParameter.producerTask` at existing tasks (module docstring); returns
    the number of references rewritten."""
    spec = document.get("pipelineSpec", document)
    tasks = spec["root"]["dag"]["tasks"]
    fixed = 0
    for task in tasks.values():
        for parameter in task.get("inputs", {}).get("parameters", {}).values():
            output = parameter.get("taskOutputParameter")
            if not output:
                continue
            producer = output["producerTask"]
            if producer not in tasks and producer.endswith("_task") and producer[:-5] in tasks:
                output["producerTask"] = producer[:-5]
                fixed += 1
    return fixed


def write_compiled(path: str, document: Dict[str, Any]) -> None:
    """Writes a compiled pipeline dict as `load_compiled` reads it (JSON or YAML by suffix)."""
    import json

    import yaml

    with open(path, "w") as handle:
        if path.endswith(".json"):
            json.dump(document, handle, indent=2, sort_keys=True)
            handle.write("\n")
        else:
            yaml.safe_dump(document, handle, sort_keys=True)


def _image_schema_path(dataset: str) -> Optional[str]:
    """The curated schema's path inside the image (`configs.IMAGE_SOURCE_ROOT`), if committed."""
    from drgrad.pipeline.pipeline_config import default_schema_path

    if default_schema_path(dataset) is None:
        return None
    return f"{configs.IMAGE_SOURCE_ROOT}/data/schemas/{dataset}/schema.pbtxt"


def load_compiled(path: str) -> Dict[str, Any]:
    """Reads a compiled `pipeline.yaml` / `pipeline.json` into a dict."""
    import json

    import yaml

    with open(path) as handle:
        text = handle.read()
    return json.loads(text) if path.endswith(".json") else yaml.safe_load(text)

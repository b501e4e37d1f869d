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

Submit:
  KFP:    `kfp.Client(host).create_run_from_pipeline_package("pipeline.yaml",
                                                           arguments={"run_date": "2024-03-09"})`
  Vertex: `aiplatform.PipelineJob(display_name=..., template_path="pipeline.json").submit()`
"""
import os
from typing import Any, Dict, Optional

from drgrad.pipeline import configs

TARGETS = {"kfp": "pipeline.yaml", "vertex": "pipeline.json"}
RUN_DATE_PARAMETER = "run_date"


def compile_pipeline(target: str, out_dir: str, image: str = configs.DEFAULT_IMAGE,
                     dataset: str = "census", cloud_root: str = configs.DEFAULT_CLOUD_ROOT,
                     pipeline_name: Optional[str] = None, **options) -> str:
    """Writes the compiled pipeline; returns the file path.

    Args:
      target: "kfp" (KFP v2 YAML) or "vertex" (Vertex PipelineJob JSON).
      out_dir: output directory (created); the file is `pipeline.yaml` / `pipeline.json`.
      image: container image of every step.
      dataset: dataset registry name.
      cloud_root: bucket prefix; data is read from `<root>/data/<dataset>`, artifacts go to
        `<root>/pipelines/<name>`, models are pushed to `<root>/serving/<dataset>`.
      pipeline_name: default `drgrad-<dataset>`.
      **options: flat `PipelineConfig` options (`PipelineConfig.from_options`: backbone,
        strategy, epochs, thresholds...; `schema_path` defaults to the curated schema inside the
        image, `warm_start` to True, `beam_pipeline_args` to the DirectRunner in_memory inside
        the step's pod, see `configs.beam_pipeline_args("dataflow", ...)` for Dataflow).
    """
    from drgrad.data.specs import get_spec
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
    defaults = {"schema_path": _image_schema_path(spec.name), "warm_start": True}
    config = PipelineConfig.from_options(
        pipeline_name=name, pipeline_root=f"{root}/pipelines/{name}",
        data_root=f"{root}/data/{spec.name}", serving_model_dir=f"{root}/serving/{spec.name}",
        dataset=spec.name, check_schema_path=False, metadata_connection_config=None,
        run_date=tfx.dsl.experimental.RuntimeParameter(
            name=RUN_DATE_PARAMETER, ptype=str, default=""),
        # The KubeflowV2 compiler has no custom resolver strategies (module docstring).
        window_spans=None, analyzer_cache=True,
        **{**defaults, **options})
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

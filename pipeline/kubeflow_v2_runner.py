"""Compiles the pipeline for Kubeflow Pipelines v2 (`pipeline.yaml`) and Vertex (`pipeline.json`).

`KubeflowV2DagRunner` writes a file and runs nothing (as in TFX's templates). Both targets are
the same IR: open-source KFP takes the `pipelineSpec` as YAML (`kfp.Client` rejects `.json`
packages), Vertex AI Pipelines takes the whole `PipelineJob` as JSON. Every step runs the
project image (`--image`, default `configs.DEFAULT_IMAGE`), which must contain this package
and set `TF_USE_LEGACY_KERAS=1`; the Transform and Trainer code is imported from the image by
module path, so nothing is packaged into the pipeline root.

Submit:
  KFP:    `kfp.Client(host).create_run_from_pipeline_package("pipeline.yaml", arguments={})`
  Vertex: `aiplatform.PipelineJob(display_name=..., template_path="pipeline.json").submit()`
"""
import os
from typing import Any, Dict, Optional

from pipeline import configs

TARGETS = {"kfp": "pipeline.yaml", "vertex": "pipeline.json"}


def compile_pipeline(target: str, out_dir: str, image: str = configs.DEFAULT_IMAGE,
                     dataset: str = "census", cloud_root: str = configs.DEFAULT_CLOUD_ROOT,
                     pipeline_name: Optional[str] = None, beam_pipeline_args=None,
                     **kwargs) -> str:
    """Writes the compiled pipeline; returns the file path.

    Args:
      target: "kfp" (KFP v2 YAML) or "vertex" (Vertex PipelineJob JSON).
      out_dir: output directory (created); the file is `pipeline.yaml` / `pipeline.json`.
      image: container image of every step.
      dataset: dataset registry name.
      cloud_root: bucket prefix; data is read from `<root>/data/<dataset>`, artifacts go to
        `<root>/pipelines/<name>`, models are pushed to `<root>/serving/<dataset>`.
      pipeline_name: default `drgrad-<dataset>`.
      beam_pipeline_args: default DirectRunner in_memory inside the step's pod; see
        `configs.beam_pipeline_args("dataflow", ...)` for Dataflow.
      **kwargs: passed to `create_pipeline` (backbone, strategy, epochs, thresholds...).
    """
    from data.specs import get_spec
    from tfx import v1 as tfx

    from pipeline.pipeline import create_pipeline

    if target not in TARGETS:
        raise ValueError(f"unknown compile target {target!r}; choose one of {sorted(TARGETS)}")
    if not isinstance(image, str) or not image or any(c.isspace() for c in image):
        raise ValueError(f"image must be a container image name, got {image!r}")
    spec = get_spec(dataset)
    name = (pipeline_name if pipeline_name is not None
            else configs.default_pipeline_name(spec.name))
    root = cloud_root.rstrip("/")
    schema_path = kwargs.pop("schema_path", _image_schema_path(spec.name))
    pipeline = create_pipeline(
        name, f"{root}/pipelines/{name}", f"{root}/data/{spec.name}",
        f"{root}/serving/{spec.name}", dataset=spec.name, schema_path=schema_path,
        check_schema_path=False,
        metadata_connection_config=None,
        beam_pipeline_args=(beam_pipeline_args if beam_pipeline_args is not None
                            else configs.beam_pipeline_args("direct")),
        **kwargs)
    os.makedirs(out_dir, exist_ok=True)
    runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
        config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(default_image=image),
        output_dir=out_dir, output_filename=TARGETS[target])
    path = os.path.join(out_dir, TARGETS[target])
    if os.path.exists(path):
        os.remove(path)  # The runner refuses to overwrite; a recompile replaces the file.
    runner.run(pipeline, write_out=True)
    return path


def _image_schema_path(dataset: str) -> Optional[str]:
    """The curated schema's path inside the image (`configs.IMAGE_SOURCE_ROOT`), if committed."""
    from pipeline.pipeline import default_schema_path

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

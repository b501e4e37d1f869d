"""Reads a compiled pipeline package and checks run parameters against what it declares.

`pipeline.kubeflow_v2_runner.compile_pipeline` writes `pipeline.yaml` (the KFP v2 `PipelineSpec`,
for Kubeflow Pipelines) or `pipeline.json` (a Vertex `PipelineJob` holding `pipelineSpec`). The
run-time parameters a schedule may set are the package's root input parameters
(`pipelineSpec.root.inputDefinitions.parameters`), e.g. a TFX `RuntimeParameter` named
`run_date`; setting any other name is an error here rather than a failed run at 02:00.
"""
import json
import os
from typing import Any, Dict, Mapping, Tuple

KFP_SUFFIXES = (".yaml", ".yml")
VERTEX_SUFFIXES = (".json", ".yaml", ".yml")


def read_pipeline_spec(path: str, suffixes: Tuple[str, ...]) -> Dict[str, Any]:
    """The `PipelineSpec` dict of a compiled package.

    Raises:
      FileNotFoundError: if `path` does not exist.
      ValueError: wrong suffix, unreadable content, or no `root` in the spec.
    """
    if not isinstance(path, str) or not path.endswith(suffixes):
        raise ValueError(f"pipeline package must end with one of {list(suffixes)}, got {path!r}"
                         + (" (Kubeflow Pipelines takes the YAML PipelineSpec: compile with "
                            "--target kfp)" if str(path).endswith(".json") else ""))
    if not os.path.isfile(path):
        raise FileNotFoundError(f"pipeline package not found: {path}")
    with open(path) as handle:
        text = handle.read()
    try:
        if path.endswith(".json"):
            document = json.loads(text)
        else:
            import yaml
            document = next(iter(yaml.safe_load_all(text)), None)
    except Exception as error:  # yaml.YAMLError, json.JSONDecodeError
        raise ValueError(f"cannot parse pipeline package {path}: {error}") from error
    if not isinstance(document, dict):
        raise ValueError(f"pipeline package {path} does not hold a pipeline spec")
    spec = document.get("pipelineSpec", document)
    if not isinstance(spec, dict) or "root" not in spec or "pipelineInfo" not in spec:
        raise ValueError(f"pipeline package {path} has no pipelineSpec (root, pipelineInfo): "
                         "is it a compiled KFP v2 / Vertex pipeline?")
    return spec


def declared_parameters(spec: Mapping[str, Any]) -> Dict[str, Dict[str, Any]]:
    """`{name: declaration}` of the pipeline's root input parameters."""
    return dict(spec.get("root", {}).get("inputDefinitions", {}).get("parameters", {}))


def check_params(params: Mapping[str, Any], spec: Mapping[str, Any],
                 path: str = "the package") -> Dict[str, Any]:
    """Returns `params` as a dict if every name is a declared root parameter, else ValueError."""
    declared = declared_parameters(spec)
    unknown = sorted(set(params) - set(declared))
    if unknown:
        raise ValueError(f"{path} declares no parameter(s) {unknown}; it declares "
                         f"{sorted(declared) or 'none'}")
    return dict(params)


def parse_param(text: str) -> Tuple[str, Any]:
    """Parses a ``NAME=VALUE`` command-line parameter; VALUE is JSON when it parses, else a
    string (``run_date=2024-03-09`` stays a string, ``epochs=2`` becomes 2,
    ``min_auc={"income": 0.6}`` a dict)."""
    name, sep, value = text.partition("=")
    if not sep or not name or not name.replace("_", "").replace("-", "").isalnum():
        raise ValueError(f"--param must be NAME=VALUE, got {text!r}")
    try:
        return name, json.loads(value)
    except ValueError:
        return name, value

"""Pipeline constants and Beam arguments per runner (TFX template `configs.py` style).

Everything a deployment changes lives here: the container image, default thresholds and the Beam
arguments of each runner. Only the DirectRunner runs in this repository's tests; the others are
the documented arguments of the same pipeline on a cluster.

Beam runners (`beam_pipeline_args(runner, ...)`):

* ``direct`` (default): the in-process DirectRunner. ``in_memory`` mode runs every bundle in
  this process (the right choice on a small machine: each ``multi_processing`` worker re-imports
  TensorFlow); ``multi_processing`` with ``direct_num_workers`` (0 = one per CPU) for bigger
  local runs. Beam 2.67 is pinned below 2.68, where the Go Prism runner became the default
  DirectRunner and has to be downloaded at run time.
* ``dataflow``: Google Cloud Dataflow; needs ``project``, ``region`` and a ``temp_location``
  bucket; the workers run ``image`` (the pipeline image) so they import this package.
* ``flink`` / ``spark``: portable runners against an existing cluster. Either a ``master`` URL
  (FlinkRunner / SparkRunner build an uber jar from Beam's job server jar, a Maven artifact
  fetched at submission) or the ``job_endpoint`` (``host:8099``) of a job server the user runs
  (e.g. the ``apache/beam_flink1.19_job_server`` / ``apache/beam_spark3_job_server`` images),
  submitted by the PortableRunner. SDK workers: ``environment_type`` LOOPBACK (default, as in
  TFX's penguin example, tfx/examples/penguin: the workers run in the submitting process, for
  a cluster that can reach it), DOCKER (``environment_config`` = the pipeline image by
  default), EXTERNAL (a worker pool's ``host:port``) or PROCESS (a JSON command).
"""
import re
from typing import List, Optional

# Pipeline names become KFP v2 task / Kubernetes resource names: `[a-z0-9][a-z0-9-]*`.
PIPELINE_NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9-]*")
PIPELINE_NAME_PREFIX = "drgrad"

# The image every KFP / Vertex step runs (this package + the pinned stack, TF_USE_LEGACY_KERAS=1).
DEFAULT_IMAGE = "gcr.io/YOUR_PROJECT/drgrad-pipeline:latest"
# Where the image holds this repository (its Dockerfile copies the checkout there): compiled
# pipelines read the curated schemas from it.
IMAGE_SOURCE_ROOT = "/drgrad"
# Placeholder cloud locations used when compiling for Kubeflow / Vertex.
DEFAULT_CLOUD_ROOT = "gs://YOUR_BUCKET/drgrad"

# Module paths the Transform and Trainer executors import (through the package, so its
# `__init__` sets TF_USE_LEGACY_KERAS=1 inside every executor process and Beam worker).
PREPROCESSING_FN = "drgrad.pipeline.preprocessing.preprocessing_fn"
RUN_FN = "drgrad.pipeline.trainer.run_fn"

# Training defaults (census-sized data on CPU).
# Daily runs: Transform and Trainer read the newest N validated spans (a week of days).
DEFAULT_WINDOW_SPANS = 7
DEFAULT_EPOCHS = 1
DEFAULT_BATCH_SIZE = 1024
DEFAULT_EVAL_STEPS = None  # None: the whole eval split.

# Evaluator thresholds: every task's AUC must be at least its floor, and no more than
# `max_auc_drop` below the current blessed model (ignored on the first run: no baseline).
DEFAULT_MIN_AUC = 0.5
DEFAULT_MAX_AUC_DROP = 0.01

# Transform defaults.
DEFAULT_NUM_OOV_BUCKETS = 1

BEAM_RUNNERS = ("direct", "dataflow", "flink", "spark")
# The DirectRunner's workers run in this interpreter (in_memory) or its subprocesses
# (multi_processing), never in a container, so it ignores --sdk_container_image. Without any
# such dependency flag, every TFX Beam component first builds a throwaway sdist of TFX for
# remote workers (tfx.utils.dependency_utils: 1.2-1.6 s per component, 4 per run here).
DIRECT_RUNNER_NO_IMAGE = "none-the-direct-runner-runs-in-process"
DIRECT_RUNNING_MODES = ("in_memory", "multi_processing", "multi_threading")
ENVIRONMENT_TYPES = ("LOOPBACK", "DOCKER", "EXTERNAL", "PROCESS")


def check_pipeline_name(name: str) -> str:
    """Returns `name` if it is a valid KFP v2 pipeline name, else raises ValueError."""
    if not isinstance(name, str) or not PIPELINE_NAME_PATTERN.fullmatch(name):
        raise ValueError(f"pipeline name {name!r} must match [a-z0-9][a-z0-9-]* "
                         "(lowercase letters, digits and '-'; Kubeflow Pipelines v2 rejects "
                         "others)")
    return name


def default_pipeline_name(dataset: str) -> str:
    """`drgrad-<dataset>`, with anything outside [a-z0-9-] replaced by '-'."""
    slug = re.sub(r"[^a-z0-9-]+", "-", dataset.lower()).strip("-")
    return check_pipeline_name(f"{PIPELINE_NAME_PREFIX}-{slug}")


def beam_pipeline_args(runner: str = "direct", *,
                       direct_running_mode: str = "in_memory",
                       direct_num_workers: int = 1,
                       project: Optional[str] = None,
                       region: Optional[str] = None,
                       temp_location: Optional[str] = None,
                       image: Optional[str] = None,
                       master: Optional[str] = None,
                       job_endpoint: Optional[str] = None,
                       environment_type: str = "LOOPBACK",
                       environment_config: Optional[str] = None,
                       parallelism: int = 2) -> List[str]:
    """Beam pipeline arguments for one runner (see the module docstring).

    Args:
      runner: one of `BEAM_RUNNERS`.
      direct_running_mode: DirectRunner mode, one of `DIRECT_RUNNING_MODES`.
      direct_num_workers: DirectRunner workers (0 = one per CPU); >= 0.
      project, region, temp_location: Dataflow's project, region and gs:// temp bucket.
      image: Dataflow worker image and DOCKER environment (defaults to `DEFAULT_IMAGE`).
      master: Flink (`http://host:8081`) or Spark (`http://host:6066`) master URL.
      job_endpoint: a running Flink / Spark job server (`host:8099`); instead of `master`.
      environment_type, environment_config: where Flink / Spark run the SDK workers, one of
        `ENVIRONMENT_TYPES` (module docstring); EXTERNAL and PROCESS need the config.
      parallelism: Flink parallelism / Spark-Flink SDK worker parallelism; >= 1.

    Returns:
      The argument list for `tfx.dsl.Pipeline(beam_pipeline_args=...)`.
    """
    if runner not in BEAM_RUNNERS:
        raise ValueError(f"unknown Beam runner {runner!r}; choose one of {list(BEAM_RUNNERS)}")
    if direct_running_mode not in DIRECT_RUNNING_MODES:
        raise ValueError(f"direct_running_mode must be one of {list(DIRECT_RUNNING_MODES)}, "
                         f"got {direct_running_mode!r}")
    if not isinstance(direct_num_workers, int) or direct_num_workers < 0:
        raise ValueError(f"direct_num_workers must be an int >= 0, got {direct_num_workers!r}")
    if not isinstance(parallelism, int) or parallelism < 1:
        raise ValueError(f"parallelism must be an int >= 1, got {parallelism!r}")
    if runner == "direct":
        return ["--runner=DirectRunner",
                f"--direct_running_mode={direct_running_mode}",
                f"--direct_num_workers={direct_num_workers}",
                f"--sdk_container_image={DIRECT_RUNNER_NO_IMAGE}"]
    if runner == "dataflow":
        missing = [name for name, value in (("project", project), ("region", region),
                                            ("temp_location", temp_location)) if not value]
        if missing:
            raise ValueError(f"the Dataflow runner needs {', '.join(missing)}")
        return ["--runner=DataflowRunner",
                f"--project={project}",
                f"--region={region}",
                f"--temp_location={temp_location}",
                "--experiments=use_runner_v2",
                f"--sdk_container_image={image or DEFAULT_IMAGE}"]
    if bool(master) == bool(job_endpoint):
        example = "http://localhost:8081" if runner == "flink" else "http://localhost:6066"
        raise ValueError(f"the {runner} runner needs a master URL (e.g. {example}) or a job "
                         f"server endpoint (e.g. localhost:8099), one of them")
    if environment_type not in ENVIRONMENT_TYPES:
        raise ValueError(f"environment_type must be one of {list(ENVIRONMENT_TYPES)}, got "
                         f"{environment_type!r}")
    environment = [f"--environment_type={environment_type}"]
    if environment_type == "LOOPBACK":
        environment.append("--experiments=use_loopback_process_worker=True")
    elif environment_type == "DOCKER":
        environment.append(f"--environment_config={environment_config or image or DEFAULT_IMAGE}")
    elif not environment_config:
        raise ValueError(f"environment_type {environment_type} needs environment_config "
                         f"(EXTERNAL: a worker pool's host:port; PROCESS: a JSON command)")
    else:
        environment.append(f"--environment_config={environment_config}")
    portable = environment + [f"--sdk_worker_parallelism={parallelism}",
                              "--environment_cache_millis=1000000",
                              "--experiments=pre_optimize=all"]
    if job_endpoint:
        flink_only = [f"--parallelism={parallelism}"] if runner == "flink" else []
        return ["--runner=PortableRunner", f"--job_endpoint={job_endpoint}"] + flink_only + portable
    if runner == "flink":
        return ["--runner=FlinkRunner", f"--flink_master={master}", "--flink_submit_uber_jar",
                f"--parallelism={parallelism}"] + portable
    return ["--runner=SparkRunner", f"--spark_rest_url={master}",
            "--spark_submit_uber_jar"] + portable


def direct_beam_args_by_workers(workers: int) -> List[str]:
    """DirectRunner args for a benchmark at `workers` workers: in_memory at 1, else
    multi_processing."""
    mode = "in_memory" if workers == 1 else "multi_processing"
    return beam_pipeline_args("direct", direct_running_mode=mode, direct_num_workers=workers)


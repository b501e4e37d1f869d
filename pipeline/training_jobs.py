"""Multi-worker training jobs: a Kubeflow TFJob manifest or a Vertex AI CustomJobSpec.

`drgrad pipeline training-job --target tfjob|vertex --image IMAGE --workers 2 --out FILE`
writes a job whose replicas all run the project image with

    drgrad train --distribute multi-worker --dataset D --out RUN_DIR [...]

one chief plus `workers - 1` workers; the platform sets `TF_CONFIG` in each replica (the
training operator for a TFJob, Vertex AI for the worker pools in order: pool 0 is the chief,
pool 1 the workers), which is what `tf.distribute.MultiWorkerMirroredStrategy` reads.

Each replica builds and fits the model under `tf.distribute.MultiWorkerMirroredStrategy`
(`drgrad.training.distribution`, ``multi_worker``); the chief writes the run directory, the
other workers a temporary one (training/train.py). A TFX pipeline's Trainer takes the same
strategy from its training section, ``distribute: multi_worker`` (pipeline/pipeline_config.py).

* TFJob (`kubectl apply -f FILE`, needs the Kubeflow training operator): `kubeflow.org/v1`
  `TFJob` with `Chief` (1) and `Worker` (workers - 1) replica specs; the container is named
  `tensorflow` (the operator's default port 2222 and `TF_CONFIG` go there); the run directory
  is a PersistentVolumeClaim (`claim`) mounted at `/runs`.
* Vertex (`gcloud ai custom-jobs create --region R --display-name NAME --config FILE`): the
  `CustomJobSpec` YAML `gcloud --config` reads, two `workerPoolSpecs` with
  `machineSpec`/`replicaCount`/`containerSpec`; the run directory is under `/gcs/<bucket>/`,
  Vertex AI's Cloud Storage FUSE mount of the bucket.
"""
import re
from typing import Dict, List, Optional

from drgrad.pipeline import configs

TARGETS = ("tfjob", "vertex")
TFJOB_MOUNT = "/runs"
DEFAULT_MACHINE_TYPE = "n1-standard-8"
DEFAULT_CLAIM = "drgrad-runs"
_NAME = re.compile(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?")


def train_command(dataset: str, run_dir: str, train_args: Optional[List[str]] = None):
    """The command every replica runs (module docstring)."""
    return ["drgrad", "train", "--distribute", "multi-worker", "--dataset", dataset,
            "--out", run_dir, *(train_args or [])]


def default_run_dir(target: str, dataset: str) -> str:
    """`/runs/train/<dataset>` (TFJob claim) or `/gcs/<bucket>/.../train/<dataset>` (Vertex)."""
    if target == "tfjob":
        return f"{TFJOB_MOUNT}/train/{dataset}"
    return (configs.DEFAULT_CLOUD_ROOT.replace("gs://", "/gcs/", 1).rstrip("/")
            + f"/train/{dataset}")


def training_job(target: str, image: str, workers: int = 2, dataset: str = "census",
                 run_dir: Optional[str] = None, train_args: Optional[List[str]] = None,
                 name: Optional[str] = None, namespace: Optional[str] = None,
                 claim: str = DEFAULT_CLAIM,
                 machine_type: str = DEFAULT_MACHINE_TYPE) -> Dict:
    """The job as a dict (module docstring).

    Args:
      target: "tfjob" or "vertex".
      image: the project image (Dockerfile), with `drgrad` on its PATH.
      workers: replicas in all, chief included; >= 2.
      dataset: `drgrad train --dataset` (a built-in name, or a dataset file inside the image).
      run_dir: `drgrad train --out` (default `default_run_dir`).
      train_args: further `drgrad train` arguments (e.g. ["--epochs", "3"]).
      name: job name (default `drgrad-train-<dataset>`), a DNS label.
      namespace: TFJob namespace (none set by default).
      claim: TFJob PersistentVolumeClaim mounted at `/runs`.
      machine_type: Vertex machine type of every replica.
    """
    if target not in TARGETS:
        raise ValueError(f"unknown training job target {target!r}; choose one of "
                         f"{list(TARGETS)}")
    if not isinstance(image, str) or not image or any(c.isspace() for c in image):
        raise ValueError(f"image must be a container image name, got {image!r}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 2:
        raise ValueError(f"a multi-worker job needs workers >= 2 (chief included), "
                         f"got {workers!r}")
    name = name or configs.default_pipeline_name(dataset).replace("drgrad-", "drgrad-train-",
                                                                  1)
    if not _NAME.fullmatch(name):
        raise ValueError(f"job name {name!r} must be a DNS label: lowercase letters, digits "
                         f"and '-', starting with a letter, at most 63 characters")
    command = train_command(dataset, run_dir or default_run_dir(target, dataset), train_args)
    if target == "vertex":
        return _vertex(image, workers, command, machine_type)
    return _tfjob(image, workers, command, name, namespace, claim)


def _tfjob(image, workers, command, name, namespace, claim):
    def replica(count):
        return {"replicas": count, "restartPolicy": "OnFailure", "template": {"spec": {
            "containers": [{"name": "tensorflow", "image": image, "command": list(command),
                            "ports": [{"name": "tfjob-port", "containerPort": 2222}],
                            "volumeMounts": [{"name": "runs", "mountPath": TFJOB_MOUNT}]}],
            "volumes": [{"name": "runs", "persistentVolumeClaim": {"claimName": claim}}]}}}

    metadata = {"name": name}
    if namespace:
        metadata["namespace"] = namespace
    return {"apiVersion": "kubeflow.org/v1", "kind": "TFJob", "metadata": metadata,
            "spec": {"runPolicy": {"cleanPodPolicy": "None"},
                     "tfReplicaSpecs": {"Chief": replica(1), "Worker": replica(workers - 1)}}}


def _vertex(image, workers, command, machine_type):
    def pool(count):
        return {"machineSpec": {"machineType": machine_type}, "replicaCount": count,
                "containerSpec": {"imageUri": image, "command": list(command)}}

    return {"workerPoolSpecs": [pool(1), pool(workers - 1)]}


def write_training_job(path: str, target: str, image: str, **options) -> Dict:
    """Writes `training_job(target, image, **options)` as YAML to `path`; returns the job."""
    import yaml  # pylint: disable=g-import-not-at-top

    job = training_job(target, image, **options)
    submit = ("kubectl apply -f FILE" if target == "tfjob" else
              "gcloud ai custom-jobs create --region REGION --display-name NAME --config FILE")
    with open(path, "w", encoding="utf-8") as f:
        f.write("# Generated by `drgrad pipeline training-job`; submit with: " + submit + "\n")
        yaml.safe_dump(job, f, sort_keys=False)
    return job

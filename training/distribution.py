"""The tf.distribute strategy a trainer builds and fits the model in (`drgrad train
--distribute`, the TFX Trainer's ``distribute``): none | mirrored | multi_worker.

* ``none``: TensorFlow's default strategy (one device; nothing distributed is traced).
* ``mirrored``: `tf.distribute.MirroredStrategy` over every local GPU, or, without GPUs, every
  logical CPU device (one unless the process configured more before TensorFlow started).
* ``multi_worker``: `tf.distribute.MultiWorkerMirroredStrategy`, the cluster from `TF_CONFIG`
  (set by a Kubeflow TFJob or Vertex AI, pipeline/training_jobs.py).

`MultiTaskModel.train_step` all-reduces the gradients before the gradient strategy combines
them (model/multitask_model.py); docs/SCALING.md "Training under tf.distribute".
"""
CHOICES = ("none", "mirrored", "multi_worker")


def normalize(name):
    """``"multi-worker"`` (the CLI spelling) -> ``"multi_worker"``; refuses unknown names."""
    value = str(name).replace("-", "_")
    if value not in CHOICES:
        raise ValueError(f"distribute must be one of {list(CHOICES)}, got {name!r}")
    return value


def make_strategy(name):
    """The `tf.distribute.Strategy` for ``name`` (module docstring)."""
    import tensorflow as tf  # pylint: disable=g-import-not-at-top

    name = normalize(name)
    if name == "none":
        return tf.distribute.get_strategy()
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    devices = (tf.config.list_logical_devices("GPU")
               or tf.config.list_logical_devices("CPU"))
    return tf.distribute.MirroredStrategy([d.name for d in devices])


def is_chief(strategy):
    """Whether this process writes the run's outputs: always, except a multi-worker cluster's
    non-chief workers (the chief, or worker 0 when the cluster has no chief, writes)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    if resolver.task_type == "chief":
        return True
    return (resolver.task_type == "worker" and resolver.task_id == 0
            and "chief" not in resolver.cluster_spec().as_dict())

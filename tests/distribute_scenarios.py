"""tf.distribute scenarios for tests/test_distribute.py, each run in its own process: logical
CPU devices (and `TF_CONFIG`) must be set before TensorFlow initialises.

    python tests/distribute_scenarios.py equivalence STRATEGY OUT.json [NAN_STEP]
    python tests/distribute_scenarios.py every-strategy OUT.json
    python tests/distribute_scenarios.py worker OUT.npz          (TF_CONFIG from the caller)
    python tests/distribute_scenarios.py pipeline WORK_DIR OUT.json
    python tests/distribute_scenarios.py train RUN_DIR      (drgrad train --distribute mirrored)

`equivalence`: the tiny Split-MMoE (tests/tiny_split_mmoe.py) trained STEPS steps of a global
batch of GLOBAL_BATCH on one device and under `MirroredStrategy` over two logical CPUs from
the same initial weights; writes the largest differences of the trainable weights and of the
strategy's state (σ, EMAs, ...), of the mixer's μ, of the logged statistics and of the
reported loss, and how far training moved the weights.
"""
import glob
import json
import os
import sys

os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tiny_split_mmoe import FC, TASKS, TINY, batch  # noqa: E402

STEPS = 3
GLOBAL_BATCH = 8
DEVICES = ("/cpu:0", "/cpu:1")


def _two_logical_cpus():
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)


def _dataset(steps=STEPS, nan_step=None):
    """STEPS global batches; ``nan_step``: that batch's first example has x = NaN."""
    features, labels = batch(seed=1, n=GLOBAL_BATCH * steps, conflicting=True)
    if nan_step is not None:
        features["x"][GLOBAL_BATCH * int(nan_step)] = np.nan
    dataset = tf.data.Dataset.from_tensor_slices((features, labels)).batch(GLOBAL_BATCH)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def _model(strategy_name):
    from drgrad.model import build_model

    backbone = "mmoe" if strategy_name == "drgrad_released" else "split_mmoe"
    model = build_model(FC, TASKS, backbone=backbone, strategy=strategy_name,
                        backbone_args=TINY, seed=3)
    model.compile(optimizer=tf.keras.optimizers.SGD(learning_rate=0.5))
    return model


def _weights(model):
    """``(trainable values, the strategy's state values)``."""
    return ([v.numpy() for v in model.trainable_variables],
            [v.numpy() for v in model.strategy.non_trainable_variables])


def _largest_difference(a, b):
    return max((float(np.max(np.abs(x - y))) for x, y in zip(a, b) if x.size), default=0.0)


def equivalence(strategy_name, out, nan_step=None):
    """See the module docstring; ``nan_step``: that step's batch holds a NaN (`_dataset`)."""
    _two_logical_cpus()
    single = _model(strategy_name)
    initial, (initial_train, _) = single.get_weights(), _weights(single)
    single.fit(_dataset(nan_step=nan_step), epochs=1, verbose=0)
    mirrored_strategy = tf.distribute.MirroredStrategy(list(DEVICES))
    with mirrored_strategy.scope():
        mirrored = _model(strategy_name)
    mirrored.set_weights(initial)
    mirrored.fit(_dataset(nan_step=nan_step), epochs=1, verbose=0)
    (single_train, single_state), (mirrored_train, mirrored_state) = (
        _weights(single), _weights(mirrored))
    result = {"replicas": mirrored_strategy.num_replicas_in_sync,
              "trainable": _largest_difference(single_train, mirrored_train),
              "state": _largest_difference(single_state, mirrored_state),
              "moved": _largest_difference(single_train, initial_train),
              "stats": max((abs(single.read_stats()[k] - v)
                            for k, v in mirrored.read_stats().items()), default=0.0),
              "loss": abs(float(single.loss_tracker.result())
                          - float(mirrored.loss_tracker.result())),
              "steps": int(mirrored.optimizer.iterations.numpy()),
              "skipped": int(mirrored.skipped_steps.numpy())}
    for name, single_value, mirrored_value in (
            ("mu", getattr(single.mixer, "mu", None), getattr(mirrored.mixer, "mu", None)),
            ("sigma", getattr(single.strategy, "sigma", None),
             getattr(mirrored.strategy, "sigma", None))):
        if single_value is not None:
            result[name] = [float(x) for x in single_value.numpy()]
            result[f"{name}_difference"] = _largest_difference([single_value.numpy()],
                                                               [mirrored_value.numpy()])
    _write_json(out, result)


def every_strategy(out):
    """Two steps of every registered strategy under MirroredStrategy: ``{name: "ok" | error}``."""
    from drgrad.model.strategies import available_strategies

    _two_logical_cpus()
    mirrored_strategy = tf.distribute.MirroredStrategy(list(DEVICES))
    outcome = {}
    for name in available_strategies():
        try:
            with mirrored_strategy.scope():
                model = _model(name)
            model.fit(_dataset(steps=2), epochs=1, verbose=0)
            finite = all(np.all(np.isfinite(v.numpy())) for v in model.variables)
            steps = int(model.optimizer.iterations.numpy())
            outcome[name] = "ok" if finite and steps == 2 else f"steps {steps}, finite {finite}"
        except Exception as error:  # pylint: disable=broad-except
            outcome[name] = f"{type(error).__name__}: {str(error).splitlines()[0][:300]}"
    _write_json(out, outcome)


def worker(out):
    """One MultiWorkerMirroredStrategy worker (`TF_CONFIG` set by the caller): STEPS DRGrad
    steps, then its weights, μ and σ into ``out`` (.npz)."""
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    with strategy.scope():
        model = _model("drgrad")
    model.fit(_dataset(), epochs=1, verbose=0)
    arrays = {f"trainable_{i}": v.numpy() for i, v in enumerate(model.trainable_variables)}
    arrays.update(mu=model.mixer.mu.numpy(), sigma=model.strategy.sigma.numpy(),
                  replicas=np.array(strategy.num_replicas_in_sync),
                  steps=np.array(model.optimizer.iterations.numpy()))
    np.savez(out, **arrays)


def pipeline(work_dir, out, rows=1000):
    """The census pipeline (span-1, ``rows`` rows per split, 1 epoch: the e2e test's run) with
    ``distribute="mirrored"`` over two logical CPUs: what the Trainer recorded and what it
    pushed."""
    from drgrad.data.datasets import build
    from drgrad.pipeline import local_runner
    from drgrad.pipeline.trainer import DISTRIBUTE_FILE

    _two_logical_cpus()
    data_root = build("census", os.path.join(work_dir, "data"), rows=int(rows))["path"]
    paths = local_runner.run(data_root, os.path.join(work_dir, "run"), "census", epochs=1,
                             batch_size=256, distribute="mirrored")
    (recorded,) = glob.glob(os.path.join(paths.pipeline_root, "Trainer", "**", DISTRIBUTE_FILE),
                            recursive=True)
    with open(recorded, encoding="utf-8") as f:
        result = {"trainer": json.load(f)}
    result["pushed"] = sorted(os.listdir(paths.serving_model_dir))
    _write_json(out, result)


def train(run_dir):
    """`drgrad train`'s function with ``distribute="mirrored"`` over two logical CPUs (one
    epoch of 2,000 synthetic rows); it writes ``run_dir/metrics.json``."""
    from drgrad.training.train import train as train_run

    _two_logical_cpus()
    train_run("synthetic", run_dir, epochs=1, rows=2000, batch_size=256, verbose=0,
              distribute="mirrored")


def _write_json(path, value):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(value, f)


if __name__ == "__main__":
    scenario, *arguments = sys.argv[1:]
    {"equivalence": equivalence, "every-strategy": every_strategy,
     "worker": worker, "pipeline": pipeline, "train": train}[scenario](*arguments)

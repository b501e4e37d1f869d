"""Training under tf.distribute here: examples/s on 1 vs 2 replicas, the router's share of the
step time, and the bytes each gradient strategy all-reduces per step.

    .venv/bin/python -m drgrad.bench.distribute_throughput [--batch-size 1024 --steps 20]

Two logical CPU devices are configured before TensorFlow starts; "2 replicas" is
`MirroredStrategy` over them (on one machine's cores: it shows the synchronization cost, not a
second machine's compute). The model is `train_step_cost`'s census-shaped Split-MMoE; each
configuration's Keras ``train_function`` runs on one in-memory global batch (distributed by
the strategy), rounds interleave the configurations, and the best round counts. Router share:
1 − time(equal_weight) / time(drgrad) on the same Split-MMoE at the same replica count (what
DRGrad adds: router, updater, statistics; ``router=False`` would still compute the router for
its statistics).

Bytes all-reduced per step (`MultiTaskModel.train_step`, model/multitask_model.py), from the
shapes of what it reduces: the summed gradient of every dense trainable variable (4 bytes per
element), each embedding table's `tf.IndexedSlices` (one row of ``dim`` floats + an int64
index per example of the replica's batch: the lookups, not the table), and, for a strategy with
``needs_task_gradients``, one more gradient per task for every variable of its groups; the task
losses and the batch size (T + 1 floats) are left out. Run it on a quiet machine only.
"""
import argparse
import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

from drgrad.bench.train_step_cost import (  # noqa: E402
    census_like, round_robin_step_seconds)
from drgrad.model import build_model  # noqa: E402
from drgrad.model.strategies import available_strategies  # noqa: E402

TASKS = ["income", "marital"]
# (strategy, replicas)
CONFIGS = tuple((name, replicas) for name in ("drgrad", "equal_weight", "pcgrad")
                for replicas in (1, 2))


def allreduced_bytes(model, local_batch):
    """``{"summed": bytes, "per_task": bytes}`` one replica all-reduces per step."""
    embeddings = {v.ref() for v in model.backbone.variable_groups()["embeddings"]}

    def size(variable):
        if variable.ref() in embeddings:
            return local_batch * (int(variable.shape[-1]) * 4 + 8)
        return int(variable.shape.num_elements()) * 4

    summed = sum(size(v) for v in model.trainable_variables)
    per_task = 0
    if model.strategy.needs_task_gradients:
        groups = model.backbone.variable_groups()
        group_vars = [v for g in model.strategy.required_groups(model) for v in groups[g]]
        per_task = len(model.task_names) * sum(size(v) for v in group_vars)
    return {"summed": summed, "per_task": per_task}


def _train_function(model, strategy, features, labels):
    model.make_train_function()
    dataset = tf.data.Dataset.from_tensors((features, labels)).repeat()
    iterator = iter(strategy.experimental_distribute_dataset(dataset))
    return lambda: model.train_function(iterator)


def throughput(batch_size, steps, rounds):
    """``{(name, replicas): examples/s}`` of the best round."""
    fc, features, labels = census_like(batch_size)
    strategies = {1: tf.distribute.get_strategy(),
                  2: tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])}
    runners = {}
    for name, replicas in CONFIGS:
        with strategies[replicas].scope():
            model = build_model(fc, TASKS, backbone="split_mmoe", strategy=name, seed=0)
        run = _train_function(model, strategies[replicas], features, labels)
        for _ in range(3):  # trace + warm up
            run()
        runners[(name, replicas)] = run
    times = round_robin_step_seconds(runners, rounds, steps)
    return {key: batch_size / min(seconds) for key, seconds in times.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=1024, help="global batch")
    parser.add_argument("--steps", type=int, default=20, help="steps per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", default=None, metavar="FILE", help="also write the results")
    args = parser.parse_args(argv)
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

    fc, _, _ = census_like(8)
    local_batch = args.batch_size // 2
    print(f"bytes all-reduced per step and replica (2 replicas, local batch {local_batch}):")
    volume = {}
    for name in available_strategies():
        backbone = "mmoe" if name == "drgrad_released" else "split_mmoe"
        model = build_model(fc, TASKS, backbone=backbone, strategy=name, seed=0)
        volume[name] = allreduced_bytes(model, local_batch)
        total = volume[name]["summed"] + volume[name]["per_task"]
        print(f"  {name:16s} summed {volume[name]['summed']:>9,d}  per-task "
              f"{volume[name]['per_task']:>9,d}  total {total:>9,d}  "
              f"({total / volume[name]['summed']:.2f}x)")

    rates = throughput(args.batch_size, args.steps, args.rounds)
    print(f"examples/s (global batch {args.batch_size}, best of {args.rounds} rounds x "
          f"{args.steps} steps, {os.cpu_count()} cores):")
    for (name, replicas), rate in rates.items():
        print(f"  {name:18s} {replicas} replica(s) {rate:>9,.0f}")
    shares = {replicas: 1 - rates[("drgrad", replicas)] / rates[("equal_weight", replicas)]
              for replicas in (1, 2)}
    for replicas, share in shares.items():
        print(f"router share of the DRGrad step, {replicas} replica(s): {share:.1%}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"bytes": volume, "router_share": shares,
                       "examples_per_s": {f"{n}/{r}": v for (n, r), v in rates.items()}}, f,
                      indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

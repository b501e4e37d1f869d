"""Train-step cost of DRGrad against MMoE and Split-MMoE, measured side by side.

    .venv/bin/python -m drgrad.bench.train_step_cost [--batch-sizes 256 2048]

Three compiled models on census-shaped inputs (32 categoricals x vocab 64, embedding 8,
7 numerics; 8 experts x 64, towers 32 -> 1; Adam): ``mmoe`` + equal_weight, ``split_mmoe`` +
equal_weight, ``split_mmoe`` + drgrad (router + literal updater). Each model's Keras
``train_function`` (a `tf.function`, as in ``fit``) runs on the same in-memory batch. Rounds
interleave the models (model A k steps, B k steps, C k steps, repeat) so load changes on a
shared machine hit all three alike. Reported: the minimum over rounds of the mean step time
(the least load-contaminated figure) and the median. Goal: DRGrad / MMoE <= 1.03.
"""
import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from drgrad.model import FeatureConfig, build_model  # noqa: E402

CONFIGS = (("mmoe", "mmoe", "equal_weight"), ("split_mmoe", "split_mmoe", "equal_weight"),
           ("drgrad", "split_mmoe", "drgrad"))


def census_like(batch_size, seed=0):
    rng = np.random.RandomState(seed)
    fc = FeatureConfig(categorical={f"c{i}": 64 for i in range(32)},
                       numeric=tuple(f"n{i}" for i in range(7)), embedding_dim=8)
    features = {name: tf.constant(rng.randint(0, 64, batch_size), tf.int64)
                for name in fc.categorical}
    features.update({name: tf.constant(rng.randn(batch_size), tf.float32) for name in fc.numeric})
    labels = {t: tf.constant((rng.rand(batch_size) < 0.3).astype(np.float32))
              for t in ("income", "marital")}
    return fc, features, labels


def step_function(model, features, labels):
    model.make_train_function()
    function = model.train_function
    dataset = tf.data.Dataset.from_tensors((features, labels)).repeat()
    iterator = iter(dataset)
    return lambda: function(iterator)


def round_robin_step_seconds(runners, rounds, steps):
    """``{name: [seconds per step, one per round]}``: each round times ``steps`` calls of every
    runner in turn (so slow drifts of the machine hit all alike), waiting for the last step."""
    times = {name: [] for name in runners}
    for _ in range(rounds):
        for name, run in runners.items():
            start = time.perf_counter()
            for _ in range(steps):
                logs = run()
            float(logs["loss"])  # wait for the last step
            times[name].append((time.perf_counter() - start) / steps)
    return times


def measure(batch_size, rounds, steps):
    fc, features, labels = census_like(batch_size)
    runners = {}
    for name, backbone, strategy in CONFIGS:
        model = build_model(fc, ["income", "marital"], backbone=backbone, strategy=strategy,
                            seed=0)
        run = step_function(model, features, labels)
        for _ in range(5):  # trace + warm up
            run()
        runners[name] = run
    times = round_robin_step_seconds(runners, rounds, steps)
    return ({name: min(values) for name, values in times.items()},
            {name: statistics.median(values) for name, values in times.items()})


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[256, 2048])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--steps", type=int, default=20, help="steps per model per round")
    args = parser.parse_args(argv)
    print(f"TF {tf.__version__}, {os.cpu_count()} CPUs; median over {args.rounds} rounds of "
          f"{args.steps} steps")
    print(f"{'batch':>6} {'stat':>6} {'mmoe ms':>9} {'split ms':>9} {'drgrad ms':>10} "
          f"{'drgrad/mmoe':>12} {'drgrad/split':>13}")
    for batch_size in args.batch_sizes:
        for stat, t in zip(("min", "median"), measure(batch_size, args.rounds, args.steps)):
            print(f"{batch_size:>6} {stat:>6} {t['mmoe'] * 1e3:>9.2f} "
                  f"{t['split_mmoe'] * 1e3:>9.2f} {t['drgrad'] * 1e3:>10.2f} "
                  f"{t['drgrad'] / t['mmoe']:>12.3f} {t['drgrad'] / t['split_mmoe']:>13.3f}",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

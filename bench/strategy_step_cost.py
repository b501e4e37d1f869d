"""Step time of every gradient strategy relative to `equal_weight`, side by side.

The question users ask: what does each method cost per training step, next to DRGrad's? For
each backbone, every strategy trains the same model shape on the same synthetic batch; the
compiled train step (`train_on_batch`) is traced and warmed up, then all strategies are timed
round-robin (one step each per round). Reported: median
milliseconds per step and the ratio to `equal_weight` on that backbone. DRGrad needs a split
backbone; on the others it is reported as "n/a".

Usage:
    python -m drgrad.bench.strategy_step_cost \
        [--backbones mmoe,split_mmoe] [--batch 2048] [--steps 30] [--tasks 2] [--json out.json]
"""
import argparse
import json
import os
import statistics
import sys
import time


STRATEGIES = ("equal_weight", "drgrad", "pcgrad", "cagrad", "nash_mtl", "adatask", "igbv2",
              "gradcraft")


def _parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backbones", default="mmoe,split_mmoe")
    parser.add_argument("--strategies", default=",".join(STRATEGIES))
    parser.add_argument("--batch", type=int, default=2048)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--tasks", type=int, default=2)
    parser.add_argument("--vocab", type=int, default=10000)
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args(argv)
    for name in ("batch", "steps", "warmup", "tasks", "vocab"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name} must be >= 1")
    if args.tasks < 2:
        raise ValueError("--tasks must be >= 2 (multi-task strategies)")
    return args


def _batch(args, np, tf):
    rng = np.random.default_rng(0)
    n = args.batch
    features = {f"cat_{i}": tf.constant(rng.integers(0, args.vocab, n)) for i in range(6)}
    features.update({f"num_{i}": tf.constant(rng.normal(size=n).astype(np.float32))
                     for i in range(8)})
    labels = {f"task_{k}": tf.constant((rng.random(n) < 0.3).astype(np.float32))
              for k in range(args.tasks)}
    return features, labels


def build_models(backbone, strategies, args, labels):
    """``{strategy: compiled model}`` (None where the pair is not applicable)."""
    from drgrad.model import build_model  # pylint: disable=g-import-not-at-top
    from drgrad.model.config import FeatureConfig  # pylint: disable=g-import-not-at-top
    config = FeatureConfig(categorical={f"cat_{i}": args.vocab for i in range(6)},
                           numeric=tuple(f"num_{i}" for i in range(8)),
                           personalization=("cat_0",), embedding_dim=16)
    models = {}
    for strategy in strategies:
        try:
            models[strategy] = build_model(config, tuple(labels), backbone=backbone,
                                           strategy=strategy, seed=0)
        except ValueError as error:
            if strategy == "drgrad" and "split" in str(error):
                models[strategy] = None
                continue
            raise
    return models


def time_models(models, args, features, labels):
    """Median seconds per compiled train step of each model, timed round-robin.

    Interleaving (one step of each model per round) spreads machine-load drift over all
    strategies instead of penalizing whichever happened to run during a busy spell.
    """
    live = {name: model for name, model in models.items() if model is not None}
    for model in live.values():
        for _ in range(args.warmup):
            model.train_on_batch(features, labels)
    times = {name: [] for name in live}
    for _ in range(args.steps):
        for name, model in live.items():
            start = time.perf_counter()
            model.train_on_batch(features, labels)
            times[name].append(time.perf_counter() - start)
    return {name: (statistics.median(times[name]) if name in times else None)
            for name in models}


def main(argv=None):
    args = _parse(argv)
    import numpy as np  # pylint: disable=g-import-not-at-top
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    features, labels = _batch(args, np, tf)
    strategies = [s for s in args.strategies.split(",") if s]
    if "equal_weight" not in strategies:
        strategies.insert(0, "equal_weight")
    device = "GPU" if tf.config.list_physical_devices("GPU") else "CPU"
    print(f"device={device} batch={args.batch} tasks={args.tasks} steps={args.steps} "
          f"tf={tf.__version__}")
    results = {}
    for backbone in [b for b in args.backbones.split(",") if b]:
        row = time_models(build_models(backbone, strategies, args, labels), args, features,
                          labels)
        tf.keras.backend.clear_session()
        results[backbone] = row
        base = row["equal_weight"]
        print(f"\n{backbone}\n{'strategy':<14}{'ms/step':>10}{'x equal_weight':>16}")
        for strategy, seconds in row.items():
            if seconds is None:
                print(f"{strategy:<14}{'n/a':>10}{'n/a':>16}")
            else:
                print(f"{strategy:<14}{seconds * 1e3:>10.2f}{seconds / base:>16.2f}")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"device": device, "args": vars(args), "seconds_per_step": results},
                      handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())

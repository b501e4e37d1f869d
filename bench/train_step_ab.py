"""Train-step time of this tree against another checkout (an older commit), alternated.

    git worktree add /tmp/old <commit>
    .venv/bin/python -m drgrad.bench.train_step_ab --old-tree /tmp/old --pairs 10

Each pair runs `train_step_cost` once in the other checkout (its own script, its own code:
the script puts its checkout first on ``sys.path``; a checkout from before the `drgrad`
namespace has ``bench/train_step_cost.py`` and top-level packages) and once here
(`python -m drgrad.bench.train_step_cost`), in alternating order, each in a fresh process,
so machine load drifts hit both alike. Reported per model (MMoE, Split-MMoE, DRGrad) and batch
size: the median over pairs of new / old of the per-run median step time. Run on a quiet
machine only (nothing else running, no edits to the code it imports).

First, a check that needs no quiet machine: the op types (with counts) of each side's traced
`train_step`, `tf.cond` branches included, for MMoE, Split-MMoE, DRGrad and PCGrad; equal
counts mean both sides run the same ops, whatever the timings' noise says.
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys

MODELS = ("mmoe", "split_mmoe", "drgrad")
# "  2048 median     12.34     12.56      12.60        1.021         1.003"
_ROW = re.compile(r"^\s*(\d+)\s+median\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s")


def _run(command, cwd, env):
    """`{(batch, model): median step ms}` of one `train_step_cost` run."""
    output = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True,
                            check=True, timeout=1800).stdout
    times = {}
    for line in output.splitlines():
        match = _ROW.match(line)
        if match:
            batch = int(match.group(1))
            for model, value in zip(MODELS, match.group(2, 3, 4)):
                times[(batch, model)] = float(value)
    if not times:
        raise RuntimeError(f"no timing rows in the output of {command}:\n{output}")
    return times


_OPS_SCRIPT = """
import collections, json, os, sys
os.environ["TF_USE_LEGACY_KERAS"] = "1"
if sys.argv[1]:
    sys.path.insert(0, sys.argv[1])
    from model import FeatureConfig, build_model
else:
    from drgrad.model import FeatureConfig, build_model
import tensorflow as tf
counts = {}
for backbone, strategy in (("mmoe", "equal_weight"), ("split_mmoe", "equal_weight"),
                           ("split_mmoe", "drgrad"), ("mmoe", "pcgrad")):
    fc = FeatureConfig(categorical={f"c{i}": 64 for i in range(4)}, numeric=("n0",))
    model = build_model(fc, ["a", "b"], backbone=backbone, strategy=strategy, seed=0)
    x = {f"c{i}": tf.zeros([8], tf.int64) for i in range(4)}
    x["n0"] = tf.zeros([8])
    y = {"a": tf.zeros([8]), "b": tf.ones([8])}
    graph = tf.function(model.train_step).get_concrete_function((x, y)).graph.as_graph_def()
    ops = collections.Counter(node.op for node in graph.node)
    for function in graph.library.function:
        ops.update(node.op for node in function.node_def)
    counts[backbone + "+" + strategy] = dict(ops)
print(json.dumps(counts))
"""


def op_counts(old_tree, env):
    """``{model: {op type: count}}`` of the traced train_step, old tree (a path) or this one."""
    output = subprocess.run([sys.executable, "-c", _OPS_SCRIPT, old_tree or ""], env=env,
                            capture_output=True, text=True, check=True, timeout=600).stdout
    return json.loads(output.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old-tree", required=True, help="checkout of the older commit")
    parser.add_argument("--pairs", type=int, default=10,
                        help="old/new runs, alternated (0: only compare the traced op counts)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds inside each run")
    parser.add_argument("--steps", type=int, default=20, help="steps per model per round")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[256, 2048])
    args = parser.parse_args(argv)
    options = ["--rounds", str(args.rounds), "--steps", str(args.steps), "--batch-sizes",
               *map(str, args.batch_sizes)]
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    old_script = os.path.join(os.path.abspath(args.old_tree), "bench", "train_step_cost.py")
    if not os.path.isfile(old_script):
        raise SystemExit(f"{old_script} not found: --old-tree must be a checkout")
    old_ops, new_ops = op_counts(os.path.abspath(args.old_tree), env), op_counts(None, env)
    for model in old_ops:
        same = old_ops[model] == new_ops[model]
        print(f"traced train_step {model}: {sum(new_ops[model].values())} ops new, "
              f"{sum(old_ops[model].values())} old: {'same' if same else 'DIFFERENT'} op types "
              f"and counts", flush=True)
    if args.pairs == 0:
        return 0
    old = [sys.executable, old_script, *options]
    new = [sys.executable, "-m", "drgrad.bench.train_step_cost", *options]
    ratios = {}
    for pair in range(args.pairs):
        # Alternate which side goes first, so a drift within a pair favours neither.
        order = (("old", old), ("new", new)) if pair % 2 == 0 else (("new", new), ("old", old))
        times = {side: _run(command, args.old_tree if side == "old" else None, env)
                 for side, command in order}
        for key, value in times["new"].items():
            ratios.setdefault(key, []).append(value / times["old"][key])
        print(f"pair {pair + 1}/{args.pairs}: " + ", ".join(
            f"{model}@{batch} {times['new'][(batch, model)]:.2f}/"
            f"{times['old'][(batch, model)]:.2f} ms"
            for batch in args.batch_sizes for model in MODELS), flush=True)
    print(f"\nnew / old train-step time, median over {args.pairs} alternated pairs "
          f"(each run: median of {args.rounds} rounds x {args.steps} steps)")
    print(f"{'batch':>6} " + " ".join(f"{m:>11}" for m in MODELS))
    for batch in args.batch_sizes:
        print(f"{batch:>6} " + " ".join(
            f"{statistics.median(ratios[(batch, m)]):>11.3f}" for m in MODELS))
    return 0


if __name__ == "__main__":
    sys.exit(main())

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
"""
import argparse
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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old-tree", required=True, help="checkout of the older commit")
    parser.add_argument("--pairs", type=int, default=10, help="old/new runs, alternated")
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

"""The GradCraft table (issue #20): every method of the GradCraft slides' table on a PLE
backbone, per-task AUC and GAUC, their averages and the relative improvement over Single.

Layout of the slides' Wechat table (Bai et al., "GradCraft", KDD 2024), transposed: one row
per method, columns ``AUC <task>`` …, ``AV-A`` (mean over tasks), ``RI-A``, then the same for
GAUC, then the train-step time relative to EW. RI is GradCraft's relative improvement, the mean
over tasks of ``(M_t − M_t^Single) / M_t^Single`` (it reproduces the slides' RI-A of EW,
0.091 %, from their per-task AUCs). The Single row takes task ``t`` from the cell trained on
task ``t`` alone. Step costs are timed round-robin by `drgrad.bench.strategy_step_cost` on its
synthetic batch with the table's number of tasks.

The simulator writes train, eval and test per day (10 % each to eval and test)::

    drgrad data simulate --preset gradcraft --days 1 --rows-per-day N --out DATA
    drgrad bench --dataset DATA/sim-gradcraft/sim-gradcraft.yaml --grid gradcraft-table \\
        --seeds 1 --epochs E --patience E --out OUT
    python -m drgrad.bench.gradcraft_table table OUT --dataset DATA/sim-gradcraft/sim-gradcraft.yaml
"""
import argparse
import os
import sys

import numpy as np

from drgrad.bench import report
from drgrad.data.cli import positive_int

# The slides' column names; a backbone other than PLE is named after the label.
LABELS = {"equal_weight": "EW", "uncertainty": "UC", "dwa": "DWA", "mgda": "MGDA",
          "pcgrad": "PCGrad", "pcgrad_plus": "PCGrad+", "gradvac": "GradVac",
          "cagrad": "CAGrad", "imtl": "IMTL", "dbmtl": "DB-MTL", "gradcraft": "GradCraft",
          "metabalance": "MetaBalance", "drgrad_released": "DRGrad (released)",
          "drgrad": "DRGrad, paper reading"}
SINGLE = "Single"
TABLE_BACKBONE = "ple"


def label_of(row):
    """The table's name of a results.csv row's method."""
    if row.get("role") == "single_task":
        return SINGLE
    label = LABELS.get(row["strategy"], row["strategy"])
    return label if row["backbone"] == TABLE_BACKBONE else f"{label} ({row['backbone']})"


def _mean(values):
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def table_rows(results, tasks):
    """``[{"method", "backbone", "strategy", "auc": {task}, "gauc": {task}}]`` from result rows
    (finished ones; means over seeds), Single first, then the methods in grid order."""
    ok = [r for r in results if r.get("status") == "ok"]
    single = {"method": SINGLE, "backbone": TABLE_BACKBONE, "strategy": "equal_weight",
              "auc": {}, "gauc": {}}
    methods = {}
    for row in ok:
        if row.get("role") == "single_task":
            task = tasks[int(row["single_task"])]
            for metric, prefix in (("auc", "test_"), ("gauc", "gauc_")):
                single[metric].setdefault(task, []).append(row.get(prefix + task))
            continue
        entry = methods.setdefault(label_of(row), {
            "method": label_of(row), "backbone": row["backbone"], "strategy": row["strategy"],
            "auc": {t: [] for t in tasks}, "gauc": {t: [] for t in tasks}})
        for task in tasks:
            entry["auc"][task].append(row.get(f"test_{task}"))
            entry["gauc"][task].append(row.get(f"gauc_{task}"))
    rows = ([single] if single["auc"] else []) + list(methods.values())
    for entry in rows:
        for metric in ("auc", "gauc"):
            entry[metric] = {t: _mean(entry[metric].get(t, [])) for t in tasks}
    return rows


def average(values, tasks):
    """Mean over tasks (AV-A / AV-G); None if a task has no value."""
    if any(values.get(t) is None for t in tasks):
        return None
    return float(np.mean([values[t] for t in tasks]))


def relative_improvement(values, single, tasks):
    """GradCraft's RI: mean over tasks of ``(values[t] − single[t]) / single[t]``; None if a
    task has no value on either side."""
    if any(values.get(t) is None or single.get(t) is None for t in tasks):
        return None
    return float(np.mean([(values[t] - single[t]) / single[t] for t in tasks]))


def _percent(value):
    return "—" if value is None else f"{value * 100:+.3f}%"


def render_table(rows, tasks, step_cost=None):
    """The markdown table of `table_rows`; ``step_cost`` maps a method to its step time over
    EW's (methods without one show "—")."""
    single = next((r for r in rows if r["method"] == SINGLE), None)
    head = (["method"] + [f"AUC {t}" for t in tasks] + ["AV-A", "RI-A"]
            + [f"GAUC {t}" for t in tasks] + ["AV-G", "RI-G", "step × EW"])
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    for row in rows:
        cols = [row["method"]]
        for metric in ("auc", "gauc"):
            values = row[metric]
            cols += [report.fmt(values[t]) for t in tasks]
            cols.append(report.fmt(average(values, tasks)))
            cols.append(_percent(relative_improvement(values, single[metric], tasks))
                        if single is not None else "—")
        cost = (step_cost or {}).get(row["method"])
        cols.append("—" if cost is None else f"{cost:.2f}")
        lines.append("| " + " | ".join(cols) + " |")
    return "\n".join(lines) + "\n"


def measure_step_cost(rows, tasks, batch=1024, steps=20, warmup=3):
    """``{method: median step time / EW's}`` of the table's multi-task methods, timed
    round-robin by `drgrad.bench.strategy_step_cost` (one compiled model per backbone ×
    strategy, on its synthetic batch with ``len(tasks)`` tasks). Single trains EW's step once
    per task and has no entry."""
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    from drgrad.bench import strategy_step_cost  # pylint: disable=g-import-not-at-top
    args = argparse.Namespace(batch=batch, steps=steps, warmup=warmup, tasks=len(tasks),
                              vocab=10000)
    features, labels = strategy_step_cost._batch(args, np, tf)  # pylint: disable=protected-access
    pairs = {(TABLE_BACKBONE, "equal_weight")} | {(r["backbone"], r["strategy"]) for r in rows
                                                  if r["method"] != SINGLE}
    models = {}
    for backbone in sorted({b for b, _ in pairs}):
        built = strategy_step_cost.build_models(
            backbone, sorted(s for b, s in pairs if b == backbone), args, labels)
        models.update({(backbone, s): model for s, model in built.items()})
    seconds = strategy_step_cost.time_models(models, args, features, labels)
    base = seconds[(TABLE_BACKBONE, "equal_weight")]
    return {r["method"]: seconds[(r["backbone"], r["strategy"])] / base for r in rows
            if r["method"] != SINGLE and seconds.get((r["backbone"], r["strategy"]))}


def write_table(out, dataset, steps=20, batch=1024):
    """Reads ``out/results.csv`` (a `gradcraft-table` bench), times the step costs and writes
    ``out/gradcraft_table.md``; returns its text."""
    from drgrad.bench.harness import read_results  # pylint: disable=g-import-not-at-top
    from drgrad.data.specs import get_spec  # pylint: disable=g-import-not-at-top
    tasks = list(get_spec(dataset).tasks)
    rows = table_rows(read_results(os.path.join(out, "results.csv")), tasks)
    if not rows:
        raise ValueError(f"{out}/results.csv has no finished runs")
    cost = measure_step_cost(rows, tasks, batch=batch, steps=steps) if steps else None
    text = render_table(rows, tasks, cost)
    with open(os.path.join(out, "gradcraft_table.md"), "w") as f:
        f.write(text)
    return text


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    table = commands.add_parser("table", help="write OUT/gradcraft_table.md")
    table.add_argument("out", help="the `drgrad bench --grid gradcraft-table` output folder")
    table.add_argument("--dataset", required=True, help="the dataset file the bench ran on")
    table.add_argument("--steps", type=int, default=20,
                       help="timed steps per method for the step cost (0: skip timing)")
    table.add_argument("--batch", type=positive_int, default=1024)
    args = parser.parse_args(argv)
    try:
        if args.steps < 0:
            raise ValueError(f"--steps must be >= 0, got {args.steps}")
        print(write_table(args.out, args.dataset, steps=args.steps, batch=args.batch))
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

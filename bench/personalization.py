"""Personalization study: does the PPNet gate help, and for which users?

DRGrad's personalized gate (PPNet, paper §3.3) reads user / item ids; the paper reports the
gain on average only and leaves the cold-start question open. This study trains, per seed,
the model presets `mmoe`, `drgrad_no_ppnet` and `drgrad` on MovieLens-100K (time-ordered
80/10/10 split, `data.movielens`) with the harness's protocol (`drgrad.training.train.train`: early
stopping on validation mean AUC, test touched once), then splits the **test** rows by the
activity of their user in the train split (number of train ratings): the cold rows (users
first seen after the train period: activity 0) form one group, the warm rows are cut into
quintiles of equal row count. It reports each task's AUC per group, mean over seeds, with
DRGrad − DRGrad w/o PPNet per group. (With MovieLens's time split most test rows are cold:
users keep joining, so a plain quintile split would put four fifths of the rows at activity 0.)

    drgrad bench-personalization --source ../shared/data/movielens-100k --seeds 3 \
        --out runs/bench/personalization

Writes `DIR/personalization.csv` (one row per cell × seed × activity group) and
`DIR/personalization.md`; the runs themselves are `DIR/<cell>/seed-<n>/` and are reused when
the command is repeated.
"""
import csv
import json
import os
from typing import Dict, List, Sequence

import numpy as np

CELLS = ("mmoe", "drgrad_no_ppnet", "drgrad")
QUINTILES = 5
DATASET = "movielens-100k"


def activity_groups(train_users: Sequence, test_users: Sequence, warm_groups: int = QUINTILES):
    """`(group index per test row, [(min activity, max activity, rows)] per group)`.

    Activity of a test row = number of train rows of its user. Group 0 holds the cold rows
    (activity 0); the warm rows are ranked by activity (ties by row order, so groups have
    equal row counts ±1) and cut into groups 1..`warm_groups`.
    """
    if warm_groups < 1:
        raise ValueError(f"warm_groups must be >= 1, got {warm_groups}")
    counts: Dict = {}
    for user in train_users:
        counts[user] = counts.get(user, 0) + 1
    activity = np.array([counts.get(user, 0) for user in test_users])
    warm = np.flatnonzero(activity > 0)
    if len(warm) < warm_groups:
        raise ValueError(f"{len(warm)} warm test rows cannot make {warm_groups} groups")
    group = np.zeros(len(activity), dtype=int)
    order = warm[np.argsort(activity[warm], kind="stable")]
    for index, rows in enumerate(np.array_split(order, warm_groups), start=1):
        group[rows] = index
    ranges = [(int(activity[group == g].min()) if (group == g).any() else 0,
               int(activity[group == g].max()) if (group == g).any() else 0,
               int((group == g).sum())) for g in range(warm_groups + 1)]
    return group, ranges


def grouped_aucs(labels: Dict[str, np.ndarray], scores: Dict[str, np.ndarray],
                 group: np.ndarray, groups: int = QUINTILES + 1) -> List[Dict[str, float]]:
    """`[{task: AUC}]` per group (NaN where a group lacks a class)."""
    from drgrad.training.metrics import roc_auc

    result = []
    for g in range(groups):
        mask = group == g
        aucs = {}
        for task in labels:
            y = np.asarray(labels[task])[mask]
            aucs[task] = (roc_auc(y, np.asarray(scores[task])[mask])
                          if 0 < y.sum() < len(y) else float("nan"))
        result.append(aucs)
    return result


def _run(out, cell, seed, source, epochs, patience, batch_size):
    from drgrad.training.train import train

    run_dir = os.path.join(out, cell, f"seed-{seed}")
    if not os.path.isfile(os.path.join(run_dir, "metrics.json")):
        if os.path.isdir(run_dir):
            import shutil
            shutil.rmtree(run_dir)   # an interrupted run
        train(DATASET, run_dir, preset=cell, seed=seed, source=source, epochs=epochs,
              patience=patience, batch_size=batch_size, verbose=0)
    return run_dir


def run_study(source, out, seeds=3, epochs=15, patience=2, batch_size=1024, cells=CELLS,
              verbose=True):
    """Trains (or reuses) every cell × seed and writes the CSV and the report; returns rows."""
    import tensorflow as tf

    from drgrad import data
    from drgrad.training.run_dir import load_trained
    from drgrad.training.callbacks import predict_arrays

    frames = data.load_frames(DATASET, source=source)
    group, ranges = activity_groups(frames["train"]["user_id"], frames["test"]["user_id"])
    tasks = list(data.get_spec(DATASET).tasks)
    rows = []
    for seed in range(seeds):
        for cell in cells:
            run_dir = _run(out, cell, seed, source, epochs, patience, batch_size)
            model, preprocessor, _ = load_trained(run_dir)
            scores, labels = predict_arrays(model, preprocessor.to_dataset(frames["test"], 4096))
            with open(os.path.join(run_dir, "metrics.json")) as handle:
                overall = json.load(handle)["test"]
            for index, aucs in enumerate(grouped_aucs(labels, scores, group)):
                low, high, count = ranges[index]
                rows.append({"cell": cell, "seed": seed, "group": _group_name(index),
                             "activity_min": low, "activity_max": high, "rows": count,
                             **{f"test_{t}": aucs[t] for t in tasks},
                             **{f"overall_{t}": overall[t] for t in tasks}})
            tf.keras.backend.clear_session()
            if verbose:
                print(f"{cell} seed {seed}: " + ", ".join(
                    f"{t} {overall[t]:.4f}" for t in tasks), flush=True)
    write_csv(os.path.join(out, "personalization.csv"), rows)
    with open(os.path.join(out, "personalization.md"), "w") as handle:
        handle.write(report(rows, tasks))
    return rows


def _group_name(index):
    return "cold" if index == 0 else f"Q{index}"


def write_csv(path, rows):
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def report(rows, tasks) -> str:
    """Markdown: per activity group, each cell's mean test AUC over seeds, and DRGrad − w/o
    PPNet."""
    cells = list(dict.fromkeys(r["cell"] for r in rows))
    names = list(dict.fromkeys(r["group"] for r in rows))
    seeds = sorted({r["seed"] for r in rows})
    lines = [f"# Personalization study: {DATASET}, test AUC by user activity", "",
             f"Seeds: {len(seeds)}. Activity = the user's number of train ratings (cold: none; "
             "Q1..Q5: warm test rows in quintiles of activity). Mean over seeds; "
             "Δ = drgrad − drgrad_no_ppnet.", ""]

    def mean(cell, name, key):
        values = [float(r[key]) for r in rows
                  if r["cell"] == cell and (name is None or r["group"] == name)]
        values = [v for v in values if not np.isnan(v)]
        return float(np.mean(values)) if values else float("nan")

    for task in tasks:
        header = ["group", "activity", "rows", *cells]
        if {"drgrad", "drgrad_no_ppnet"} <= set(cells):
            header.append("Δ PPNet")
        lines += [f"## {task}", "", "| " + " | ".join(header) + " |",
                  "|" + "---|" * len(header)]
        for name in names:
            first = next(r for r in rows if r["group"] == name)
            values = [mean(c, name, f"test_{task}") for c in cells]
            line = [name, f"{first['activity_min']}–{first['activity_max']}",
                    str(first["rows"]), *(f"{v:.4f}" for v in values)]
            if "Δ PPNet" in header:
                delta = (mean("drgrad", name, f"test_{task}")
                         - mean("drgrad_no_ppnet", name, f"test_{task}"))
                line.append(f"{delta:+.4f}")
            lines.append("| " + " | ".join(line) + " |")
        overall = [mean(c, None, f"overall_{task}") for c in cells]
        line = ["all", "", "", *(f"{v:.4f}" for v in overall)]
        if "Δ PPNet" in header:
            key = f"overall_{task}"
            line.append(f"{mean('drgrad', None, key) - mean('drgrad_no_ppnet', None, key):+.4f}")
        lines += ["| " + " | ".join(line) + " |", ""]
    return "\n".join(lines) + "\n"

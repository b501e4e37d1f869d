"""The census study of docs/RESULTS.md: every cell of the paper's Table 3, the DRGrad variant
search and the routing levels on seed 0, and the goal's comparison over 5 seeds.

    .venv/bin/python -m drgrad.bench.census_study --out runs/bench/census
    .venv/bin/python -m drgrad.bench.census_study --out runs/bench/census --report-only

Start it once per core to train in parallel: the harness's run locks split the runs, and
finished runs are reused, so a rerun resumes. Writes, under --out:

* ``report-seed0.md``, ``results-seed0.csv``, ``figures-seed0/``: all cells, seed 0;
* ``report.md``, ``results.csv``, ``figures/``: the 5-seed cells (MMoE, Split-MMoE, PLE,
  MMoE + PCGrad, PLE + GradCraft, DRGrad), with paired t-tests.

Validation-only selection among the DRGrad cells is the report's "Selected on validation only"
line; the test split is evaluated once per run.

This module also holds the census *authors' protocol* (`drgrad bench --protocol authors`,
docs/REFERENCE.md): `train_authors` trains one run of it, `streaming_auc` is the AUC the
authors' TF1 estimator reports.
"""
import argparse
import os
import shutil
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from drgrad.bench import harness  # noqa: E402
from drgrad.bench.presets import (  # noqa: E402
    AUTHORS_PROTOCOL, AUTHORS_VARIANTS, GRIDS, parse_cell)

# Routing at v1 / vs with one ξ per example (paper Fig. 3(c)'s per-user gradients).
PER_EXAMPLE_UPSTREAM = ('split_mmoe:drgrad:{"variant": "upstream", "upstream_mode": "example", '
                        '"backbone_args": {"ppnet": false}}')
FIVE_SEED_CELLS = ("mmoe", "split_mmoe", "ple", "pcgrad", "ple+gradcraft", "drgrad")
SEEDS = 5

STREAMING_THRESHOLDS = 200


def streaming_auc(labels, scores, num_thresholds=STREAMING_THRESHOLDS):
    """The AUC of TF1's `tf.compat.v1.metrics.auc` (ROC, trapezoidal; what the estimator's
    binary head reports): confusion counts at ``num_thresholds`` thresholds ``-1e-7``,
    ``i / (num_thresholds - 1)`` for ``i = 1 .. num_thresholds - 2`` and ``1 + 1e-7`` (a score
    above a threshold is a positive prediction), recall ``(tp + 1e-6) / (tp + fn + 1e-6)``, false
    positive rate ``fp / (fp + tn + 1e-6)``, trapezoids between consecutive thresholds. A
    positive and a negative between the same two thresholds count half a correctly ordered
    pair whatever their order, so this AUC approximates the exact one from above or below.
    """
    import numpy as np  # pylint: disable=g-import-not-at-top
    if isinstance(num_thresholds, bool) or not isinstance(num_thresholds, int) or (
            num_thresholds < 3):
        raise ValueError(f"num_thresholds must be an int >= 3, got {num_thresholds!r}")
    labels = np.asarray(labels).reshape(-1) > 0
    scores = np.asarray(scores, np.float64).reshape(-1)
    if labels.shape != scores.shape:
        raise ValueError(f"labels and scores differ in length: {labels.size} vs {scores.size}")
    thresholds = np.concatenate([[-1e-7], np.arange(1, num_thresholds - 1) / (num_thresholds - 1),
                                 [1.0 + 1e-7]])

    def above(values):
        values = np.sort(values)
        return len(values) - np.searchsorted(values, thresholds, side="right")

    tp, fp = above(scores[labels]), above(scores[~labels])
    recall = (tp + 1e-6) / (labels.sum() + 1e-6)
    fp_rate = fp / ((~labels).sum() + 1e-6)
    return float(np.sum((fp_rate[:-1] - fp_rate[1:]) * (recall[:-1] + recall[1:]) / 2.0))


def train_authors(run_dir, cell, seed, epochs=AUTHORS_PROTOCOL["epochs"],
                  batch_size=AUTHORS_PROTOCOL["batch_size"], rows=None, log_every=10,
                  variant="authors"):
    """Trains one run of ``cell`` on census under the authors' protocol (`AUTHORS_PROTOCOL`,
    changed as `AUTHORS_VARIANTS[variant]` says) with `drgrad.training.train.train` (no early
    stopping, Adam β2 0.9999, the protocol's split as ``frames``) and returns its metrics:
    exact AUC on ``val`` (the authors' split: the overlapping 20,000 rows; reported only) and
    ``test``, ``test_auc200`` (`streaming_auc`) and ``protocol`` (``variant``).
    """
    if variant not in AUTHORS_VARIANTS:
        raise ValueError(f"variant must be one of {tuple(AUTHORS_VARIANTS)}, got {variant!r}")
    protocol = {**AUTHORS_PROTOCOL, "split": "authors", **AUTHORS_VARIANTS[variant]}
    from drgrad.data import census  # pylint: disable=g-import-not-at-top
    from drgrad.training.train import train  # pylint: disable=g-import-not-at-top
    load = census.load_authors if protocol["split"] == "authors" else census.load
    return train("census", run_dir, frames=load(rows=rows), epochs=epochs,
                 batch_size=batch_size, seed=seed, patience=None,
                 learning_rate=protocol["learning_rate"], beta_2=protocol["beta_2"],
                 positive_weights=protocol["positive_weights"],
                 task_weights=cell.task_weights(census.SPEC.tasks), log_every=log_every,
                 verbose=0, test_metrics={"test_auc200": streaming_auc},
                 metadata={"protocol": variant}, **cell.train_kwargs())


def study_cells():
    """All cells, in report order: paper-table3, PLE + GradCraft, the DRGrad variants, the
    upstream routing cells (presets share cell names only for identical configurations)."""
    cells, seen = [], set()
    extra = [c for c in GRIDS["gradcraft"] if c.name == "ple+gradcraft"]
    for cell in (*GRIDS["paper-table3"], *extra, *GRIDS["drgrad-variants"], *GRIDS["upstream"],
                 parse_cell(PER_EXAMPLE_UPSTREAM)):
        if cell.name not in seen:
            seen.add(cell.name)
            cells.append(cell)
    return tuple(cells)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, metavar="DIR")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--patience", type=int, default=2)
    parser.add_argument("--report-only", action="store_true",
                        help="train nothing; write the reports from the finished runs")
    args = parser.parse_args(argv)
    cells = study_cells()
    by_name = {cell.name: cell for cell in cells}
    five = tuple(by_name[name] for name in FIVE_SEED_CELLS)
    protocol = dict(epochs=args.epochs, patience=args.patience,
                    command=" ".join(["python -m drgrad.bench.census_study", *sys.argv[1:]]))
    if not args.report_only:
        # Seed 0 of everything first, so an interrupted study still compares every cell.
        harness.run_bench("census", cells, args.out, seeds=1, plots=False, **protocol)
        harness.run_bench("census", five, args.out, seeds=SEEDS, plots=False, **protocol)
    harness.run_bench("census", cells, args.out, seeds=1, train_missing=False, **protocol)
    shutil.copy(os.path.join(args.out, "results.csv"),
                os.path.join(args.out, "results-seed0.csv"))
    with open(os.path.join(args.out, "report.md")) as f:
        report = f.read().replace("](figures/", "](figures-seed0/")
    with open(os.path.join(args.out, "report-seed0.md"), "w") as f:
        f.write(report)
    shutil.rmtree(os.path.join(args.out, "figures-seed0"), ignore_errors=True)
    shutil.copytree(os.path.join(args.out, "figures"), os.path.join(args.out, "figures-seed0"))
    harness.run_bench("census", five, args.out, seeds=SEEDS, train_missing=False, **protocol)
    print(f"wrote {args.out}/report.md (5 seeds) and {args.out}/report-seed0.md (all cells)")


if __name__ == "__main__":
    main()

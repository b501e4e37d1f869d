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
"""
import argparse
import os
import shutil
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from drgrad.bench import harness  # noqa: E402
from drgrad.bench.presets import GRIDS, parse_cell  # noqa: E402

# Routing at v1 / vs with one ξ per example (paper Fig. 3(c)'s per-user gradients).
PER_EXAMPLE_UPSTREAM = ('split_mmoe:drgrad:{"variant": "upstream", "upstream_mode": "example", '
                        '"backbone_args": {"ppnet": false}}')
FIVE_SEED_CELLS = ("mmoe", "split_mmoe", "ple", "pcgrad", "ple+gradcraft", "drgrad")
SEEDS = 5


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

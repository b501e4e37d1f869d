"""The synthetic study of docs/RESULTS.md: the `narrow` grid on the `angle` generator at 100,000
rows per split, plus single-task references of the same width as the narrow shared layer (a
32-unit shared bottom), so that "Δ vs single-task" can be read as transfer and not capacity.

    .venv/bin/python -m drgrad.bench.synthetic_study --out runs/bench/synthetic-narrow-100k --cos=0,0.5,-0.5

Start it once per core to train in parallel (run locks split the runs; finished runs are
reused). Writes report.md, results.csv and figures/ under --out.
"""
import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from drgrad.bench import harness  # noqa: E402
from drgrad.bench.cli import parse_cos  # noqa: E402
from drgrad.bench.presets import GRIDS, Cell  # noqa: E402

NARROW_SINGLE_TASK = tuple(
    Cell(f"single_task_32/{k}", backbone="shared_bottom", strategy="equal_weight",
         backbone_args={"bottom_units": [32]}, role="single_task", single_task=k)
    for k in (0, 1))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, metavar="DIR")
    parser.add_argument("--cos", default="0,0.5,-0.5")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--no-train", action="store_true")
    args = parser.parse_args(argv)
    cells = GRIDS["narrow"] + NARROW_SINGLE_TASK
    harness.run_bench("synthetic", cells, args.out, seeds=args.seeds, epochs=15, patience=2,
                      rows=args.rows, cos_values=parse_cos(args.cos),
                      train_missing=not args.no_train,
                      command=" ".join(["python -m drgrad.bench.synthetic_study", *sys.argv[1:]]))


if __name__ == "__main__":
    main()

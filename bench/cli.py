"""`drgrad bench`: the benchmark harness (bench/harness.py). Nothing heavy at import."""
import argparse

from drgrad.data.cli import dataset_argument
from drgrad.data.cli import positive_int as _positive_int


def parse_cos(text):
    """``"0.5"`` or ``"0.9,0.5,0,-0.5,-0.9"`` -> list of floats in [-1, 1]."""
    values = []
    for item in str(text).split(","):
        item = item.strip()
        try:
            value = float(item)
        except ValueError:
            raise ValueError(f"--cos takes numbers in [-1, 1], got {item!r}") from None
        if not -1.0 <= value <= 1.0:
            raise ValueError(f"--cos values must be in [-1, 1], got {value}")
        values.append(value)
    if len(set(values)) != len(values):
        raise ValueError(f"--cos has duplicate values: {text}")
    return values


def flip_argument(text):
    """argparse type of ``--flip-labels``: ``TASK=FRACTION`` -> ``(task, fraction)``, fraction
    in [0, 1], with a one-line message otherwise (the task is checked against the dataset's
    once the grid is read)."""
    from drgrad.data import label_noise  # pylint: disable=g-import-not-at-top
    try:
        return label_noise.parse_flip(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def flips_of(pairs):
    """The ``--flip-labels`` values (``[(task, fraction), ...]``) as ``{task: fraction}``; a
    task given twice is an error."""
    flips = {}
    for task, fraction in pairs or ():
        if task in flips:
            raise ValueError(f"--flip-labels names task {task!r} twice")
        flips[task] = fraction
    return flips


def register(subparsers):
    from drgrad.bench.presets import AUTHORS_VARIANTS  # pylint: disable=g-import-not-at-top
    from drgrad.bench.presets import GRIDS  # pylint: disable=g-import-not-at-top
    parser = subparsers.add_parser(
        "bench", help="train a grid of models × seeds on one protocol; write tables and plots",
        description="Trains every cell of --grid once per seed (same budget, early stopping "
                    "on validation mean AUC, test evaluated once) and writes DIR/results.csv, "
                    "DIR/report.md and DIR/figures/*.png. Finished runs are reused, so "
                    "rerunning the same command resumes an interrupted benchmark.")
    parser.add_argument("--dataset", required=True, type=dataset_argument,
                        help="a built-in dataset name or a dataset file (PATH.yaml)")
    parser.add_argument("--grid", required=True,
                        help=f"a preset ({', '.join(GRIDS)}) or a comma list of cells: model "
                             "presets (mmoe, drgrad_no_ppnet, ...) or "
                             "backbone:strategy[:json-strategy-args]")
    parser.add_argument("--seeds", type=_positive_int, default=5)
    parser.add_argument("--out", required=True, metavar="DIR")
    parser.add_argument("--rows", type=_positive_int, default=None,
                        help="at most N rows per split")
    parser.add_argument("--protocol", default="pinned", choices=("pinned", *AUTHORS_VARIANTS),
                        help="pinned: the project's (early stopping, Adam 1e-3, batch 1024); "
                             "authors: the released DRGrad's census protocol (229,285 / 70,000 "
                             "re-split, Adam 5e-4 β2 0.9999, batch 32, 16 epochs, income "
                             "positives ×3, no early stopping; docs/REFERENCE.md); "
                             "authors-pinned-split / authors-unweighted: the same on the pinned "
                             "split / with income positives ×1")
    parser.add_argument("--epochs", type=_positive_int, default=None,
                        help="default 15 (pinned) or 16 (authors)")
    parser.add_argument("--patience", type=int, default=2,
                        help="early-stopping patience (pinned protocol only)")
    parser.add_argument("--batch-size", type=_positive_int, default=None,
                        help="default 1024 (pinned) or 32 (authors)")
    parser.add_argument("--cos", default=None,
                        help="synthetic: cos θ, one value or a comma list (sweep); default 0.5")
    parser.add_argument("--generator", default="angle", choices=("angle", "paper"))
    parser.add_argument("--source", default=None, help="raw data location (dataset specific)")
    parser.add_argument("--flip-labels", action="append", type=flip_argument,
                        metavar="TASK=FRACTION",
                        help="flip that share (in [0, 1]) of TASK's training labels at random "
                             "in every run (seeded by the run's seed; validation and test keep "
                             "theirs), every cell renamed '<cell> [TASK=FRACTION]'; any task, "
                             "the primary one included; repeatable, one per task. The "
                             "census-noise grid sets its own levels")
    parser.add_argument("--log-every", type=_positive_int, default=10,
                        help="log router statistics every N steps")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG figures")
    parser.add_argument("--no-train", action="store_true",
                        help="train nothing: report the finished runs of the grid, the others "
                             "as 'not run' (a benchmark still in progress)")
    parser.add_argument("--report-only", action="store_true",
                        help="rewrite report.md and figures from DIR/results.csv; train nothing")
    parser.set_defaults(func=_bench)

    study = subparsers.add_parser(
        "bench-personalization",
        help="MovieLens: DRGrad vs DRGrad w/o PPNet (and MMoE), test AUC by user-activity "
             "quintile",
        description="Trains the mmoe, drgrad_no_ppnet and drgrad presets per seed on "
                    "movielens-100k and writes DIR/personalization.csv and "
                    "DIR/personalization.md (bench/personalization.py).")
    study.add_argument("--source", required=True, help="the ml-100k folder (never committed)")
    study.add_argument("--out", required=True, metavar="DIR")
    study.add_argument("--seeds", type=_positive_int, default=3)
    study.add_argument("--epochs", type=_positive_int, default=15)
    study.add_argument("--patience", type=int, default=2)
    study.add_argument("--batch-size", type=_positive_int, default=1024)
    study.set_defaults(func=_personalization)


def protocol_defaults(protocol):
    """``(epochs, batch_size)`` of ``--protocol`` when not given."""
    if protocol != "pinned":
        # pylint: disable-next=g-import-not-at-top
        from drgrad.bench.presets import AUTHORS_PROTOCOL
        return AUTHORS_PROTOCOL["epochs"], AUTHORS_PROTOCOL["batch_size"]
    return 15, 1024


def command_line(args):
    """The ``drgrad bench ...`` command that reproduces ``args`` (for report.md)."""
    import shlex  # pylint: disable=g-import-not-at-top

    from drgrad.data import label_noise  # pylint: disable=g-import-not-at-top
    argv = ["drgrad", "bench", "--dataset", args.dataset, "--grid", args.grid,
            "--seeds", str(args.seeds)]
    if args.protocol == "pinned":
        argv += ["--patience", str(args.patience)]
    else:
        argv += ["--protocol", args.protocol]
    argv += ["--out", args.out]
    for flag, value, default in (("--epochs", args.epochs, None), ("--rows", args.rows, None),
                                 ("--cos", args.cos, None),
                                 ("--batch-size", args.batch_size, None),
                                 ("--source", args.source, None),
                                 ("--log-every", args.log_every, 10)):
        if value == default:
            continue
        if flag == "--cos":
            argv.append(f"--cos={value}")     # "=" keeps a leading minus from reading as a flag
        else:
            argv += [flag, str(value)]
    if args.dataset == "synthetic" and args.generator != "angle":
        argv += ["--generator", args.generator]
    for task, fraction in args.flip_labels or ():
        argv += ["--flip-labels", label_noise.flip_text({task: fraction})]
    return shlex.join(argv)


def _personalization(args):
    from drgrad.bench import personalization  # pylint: disable=g-import-not-at-top
    if args.patience < 0:
        raise ValueError(f"--patience must be >= 0, got {args.patience}")
    personalization.run_study(args.source, args.out, seeds=args.seeds, epochs=args.epochs,
                              patience=args.patience, batch_size=args.batch_size)
    print(f"wrote {args.out}/personalization.csv, personalization.md")
    return 0


def _bench(args):
    from drgrad.bench import harness  # pylint: disable=g-import-not-at-top
    command = command_line(args)
    epochs, batch_size = protocol_defaults(args.protocol)
    args.epochs, args.batch_size = args.epochs or epochs, args.batch_size or batch_size
    cos = parse_cos(args.cos) if args.cos is not None else None
    if cos is not None and args.dataset != "synthetic":
        raise ValueError("--cos applies to --dataset synthetic only")
    if args.patience < 0:
        raise ValueError(f"--patience must be >= 0, got {args.patience}")
    flips = flips_of(args.flip_labels)
    if args.report_only:
        from drgrad import data  # pylint: disable=g-import-not-at-top
        import os  # pylint: disable=g-import-not-at-top
        if not os.path.isfile(os.path.join(args.out, "results.csv")):
            raise FileNotFoundError(f"{args.out}/results.csv not found: nothing to report")
        tasks = list(data.get_spec(args.dataset).tasks)
        harness.refresh_derived(args.out, tasks)
        harness.finish(args.out, args.dataset, tasks,
                       command=command, epochs=args.epochs,
                       batch_size=args.batch_size,
                       patience=args.patience, seeds=args.seeds, rows=args.rows,
                       generator=args.generator if args.dataset == "synthetic" else None,
                       plots=not args.no_plots, protocol=args.protocol)
        print(f"wrote {args.out}/report.md")
        return 0
    harness.run_bench(args.dataset, args.grid, args.out, seeds=args.seeds, epochs=args.epochs,
                      patience=args.patience, rows=args.rows, cos_values=cos,
                      generator=args.generator, source=args.source,
                      batch_size=args.batch_size, log_every=args.log_every,
                      command=command, plots=not args.no_plots,
                      train_missing=not args.no_train, protocol=args.protocol,
                      flip_labels=flips)
    print(f"wrote {args.out}/results.csv, report.md, figures/")
    return 0

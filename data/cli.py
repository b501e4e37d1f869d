"""`drgrad data ...`: build dataset CSV spans for TFX and standalone training.

    drgrad data build NAME --out DIR [--rows N] [--seed S] [--source PATH] [--overwrite]
                          [--generator paper|angle] [--regime cooperate|conflict] [--cos C]
    drgrad data split-days NAME --out DIR [--source PATH] [--days K] [--rows N] [--seed S]
    drgrad data list

Nothing heavy is imported until a handler runs.
"""
import argparse

_MAX_SPANS_SHOWN = 10


def positive_int(text):
    """argparse type: an int >= 1, with a one-line message otherwise (shared by every CLI)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def dataset_choices():
    """What every command's ``--dataset`` accepts: each registered dataset and its aliases."""
    from drgrad.data.specs import ALIASES, dataset_names  # pylint: disable=g-import-not-at-top

    return tuple(sorted(set(dataset_names()) | set(ALIASES)))


def _add_common(parser):
    from drgrad.data.specs import dataset_names

    parser.add_argument("name", metavar="NAME",
                        help=f"dataset: one of {', '.join(dataset_names())}")
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="output root; the dataset is written to DIR/NAME/")
    parser.add_argument("--source", metavar="PATH",
                        help="raw data location (census: default the committed copy; "
                             "movielens-100k: the ml-100k folder; byterec: the sample file)")
    parser.add_argument("--rows", type=positive_int, metavar="N",
                        help="at most N rows per split (seeded sample; default all)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace DIR/NAME if it exists (default: refuse)")
    synthetic = parser.add_argument_group("synthetic dataset options")
    synthetic.add_argument("--generator", choices=("angle", "paper"),
                           help="label generator (default angle)")
    synthetic.add_argument("--regime", choices=("cooperate", "conflict"),
                           help="cos(theta) = 0.5 (cooperate, default) or -0.5 (conflict)")
    synthetic.add_argument("--cos", type=float, metavar="C",
                           help="cos(theta) in [-1, 1] (instead of --regime)")


def register(subparsers):
    """Adds the `data` command group to the `drgrad` parser."""
    data = subparsers.add_parser("data", help="build datasets (CSV spans for TFX)",
                                 description=__doc__.split("\n\n")[0])
    commands = data.add_subparsers(dest="data_command", metavar="ACTION")
    commands.required = True

    build = commands.add_parser("build", help="write DIR/NAME/span-1/{train,eval,test}")
    _add_common(build)
    build.set_defaults(func=_build)

    days = commands.add_parser("split-days", help="write one span per day (train, eval)")
    _add_common(days)
    days.add_argument("--days", type=positive_int, metavar="K",
                      help="movielens-100k: the first K rating days (default all); other "
                           "datasets: deal the rows into K days (default 7)")
    days.set_defaults(func=_split_days)

    listing = commands.add_parser("list", help="list the datasets and their tasks")
    listing.set_defaults(func=_list)


def _options(args):
    options = {}
    for key in ("generator", "regime", "cos"):
        value = getattr(args, key, None)
        if value is not None:
            options[key] = value
    from drgrad.data.specs import get_spec

    if options and get_spec(args.name).name != "synthetic":
        flags = ", ".join(f"--{key}" for key in options)
        raise ValueError(f"{flags} only apply to the synthetic dataset, not {args.name!r}")
    return options


def _report(result):
    manifest = result["manifest"]
    print(f"wrote {manifest['dataset']} to {result['path']}")
    spans = list(manifest["spans"].items())
    shown = spans if len(spans) <= _MAX_SPANS_SHOWN else (
        spans[:_MAX_SPANS_SHOWN - 2] + [None] + spans[-2:])
    for entry in shown:
        if entry is None:
            print(f"  ... {len(spans) - _MAX_SPANS_SHOWN + 2} more spans ...")
            continue
        number, span = entry
        counts = ", ".join(f"{split} {rows:,}" for split, rows in span["rows"].items())
        date = f" ({span['date']})" if span["date"] else ""
        print(f"  span-{number}{date}: {counts}")
    if len(spans) > 1:
        totals = {}
        for _, span in spans:
            for split, rows in span["rows"].items():
                totals[split] = totals.get(split, 0) + rows
        print(f"  {len(spans)} spans, total: "
              + ", ".join(f"{split} {rows:,}" for split, rows in totals.items()))
    print(f"  manifest: {result['path']}/manifest.json")
    return 0


def _build(args):
    from drgrad.data.datasets import build

    return _report(build(args.name, args.out, rows=args.rows, seed=args.seed,
                         source=args.source, overwrite=args.overwrite, **_options(args)))


def _split_days(args):
    from drgrad.data.datasets import split_days

    return _report(split_days(args.name, args.out, source=args.source, days=args.days,
                              rows=args.rows, seed=args.seed, overwrite=args.overwrite,
                              **_options(args)))


def _list(args):
    from drgrad.data.specs import SPECS

    for name, spec in sorted(SPECS.items()):
        print(f"{name}: tasks {', '.join(spec.tasks)} (primary {spec.primary_task}); "
              f"{len(spec.categorical)} categorical, {len(spec.numeric)} numeric. "
              f"{spec.description}")
    return 0

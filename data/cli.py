"""`drgrad data ...`: build dataset CSV spans for TFX and standalone training.

    drgrad data build NAME --out DIR [--rows N] [--seed S] [--source PATH] [--overwrite]
                          [--generator paper|angle] [--regime cooperate|conflict] [--cos C]
    drgrad data split-days NAME --out DIR [--source PATH] [--days K] [--rows N] [--seed S]
    drgrad data split-days --dataset FILE --out DIR [--days K]   (days of its timestamp column)
    drgrad data list
    drgrad data simulate --out DIR [--name NAME] [--preset default|gradcraft] [--days K]
                         [--rows-per-day N] [--format csv|tfrecord|parquet] [--set KEY=VALUE] ...
    drgrad data init --from PATH [--format csv|parquet|tfrecord] [--name NAME] [--out FILE]
                     [--rows N] [--overwrite]
    drgrad data check --dataset FILE

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


def dataset_argument(value):
    """argparse type of every ``--dataset``: a built-in name (or alias), or a dataset file
    (a value ending in .yaml/.yml or holding a path separator), checked now, in one line."""
    from drgrad.data import dataset_file, specs  # pylint: disable=g-import-not-at-top

    try:
        specs.get_dataset(value)
    except (ValueError, FileNotFoundError) as error:
        if not dataset_file.is_dataset_file(value):
            error = (f"unknown dataset {value!r}: built-in datasets are "
                     f"{', '.join(sorted(set(specs.dataset_names()) | set(specs.ALIASES)))}; "
                     f"or give a dataset file (PATH.yaml)")
        raise argparse.ArgumentTypeError(str(error)) from None
    return value


def _add_common(parser, optional_name=False):
    from drgrad.data.specs import dataset_names

    parser.add_argument("name", metavar="NAME", nargs="?" if optional_name else None,
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
    _add_common(days, optional_name=True)
    days.add_argument("--dataset", type=dataset_argument, metavar="FILE",
                      help="instead of NAME: your dataset file, one span per UTC day of its "
                           "timestamp column, each day split train/eval by its partition rule")
    days.add_argument("--days", type=positive_int, metavar="K",
                      help="movielens-100k and a dataset file: the first K days (default all); "
                           "other datasets: deal the rows into K days (default 7)")
    days.set_defaults(func=_split_days)

    listing = commands.add_parser("list", help="list the datasets and their tasks")
    listing.set_defaults(func=_list)

    _add_simulate(commands)

    from drgrad.data.dataset_file import FORMATS

    init = commands.add_parser("init", help="draft a dataset file and TFDV schema from your "
                                            "logs")
    init.add_argument("--from", dest="source", required=True, metavar="PATH",
                      help="your logs: a span layout (span-N/{train,eval,test}/), a folder of "
                           "files or one file")
    init.add_argument("--format", choices=FORMATS,
                      help="the files' format (default: from their extensions)")
    init.add_argument("--name", help="the dataset's name (default: PATH's name, slugged)")
    init.add_argument("--out", metavar="FILE",
                      help="the dataset file to write (default ./NAME.yaml); its TFDV schema "
                           "goes beside it as schema.pbtxt")
    init.add_argument("--rows", type=positive_int, metavar="N",
                      help="rows sampled over all files (default 10000)")
    init.add_argument("--overwrite", action="store_true",
                      help="replace FILE and its schema.pbtxt if they exist (default: refuse)")
    init.set_defaults(func=_init)

    check = commands.add_parser("check", help="check your logs against a dataset file and "
                                              "its schema")
    check.add_argument("--dataset", required=True, metavar="FILE", help="the dataset file")
    check.set_defaults(func=_check)


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

    if (args.name is None) == (args.dataset is None):
        raise ValueError("split-days takes a built-in NAME or --dataset FILE (one of them)")
    args.name = args.name or args.dataset
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


def _init(args):
    from drgrad.data.init_draft import DEFAULT_SAMPLE_ROWS, draft, write

    dataset, schema = draft(args.source, fmt=args.format, name=args.name,
                            sample_rows=args.rows or DEFAULT_SAMPLE_ROWS)
    out, schema_file = write(dataset, schema, args.out or f"{dataset.name}.yaml",
                             overwrite=args.overwrite)
    features = dataset.features
    timestamp = f"; timestamp {dataset.timestamp}" if dataset.timestamp else ""
    print(f"wrote {out}: tasks {', '.join(dataset.tasks)}; {len(features.categorical)} "
          f"categorical, {len(features.numeric)} numeric{timestamp}")
    print(f"wrote {schema_file} (TFDV schema of the sampled rows)")
    print(f"next: put the primary task first and check the features in {out}, then run\n"
          f"  drgrad data check --dataset {out}")
    return 0


def _check(args):
    from drgrad.data.check import check
    from drgrad.data.dataset_file import load

    report = check(load(args.dataset))
    for anomaly in report.anomalies:
        print(anomaly.line())
    if report.anomalies:
        return 1
    print(f"ok: {report.rows} rows in {report.files} files, {report.columns} columns")
    if report.schema is None:
        print(f"note: no schema.pbtxt beside {args.dataset}: TFDV was not run")
    return 0


def _add_simulate(commands):
    simulate = commands.add_parser(
        "simulate", help="write a simulated multi-task recommender log (one span a day)",
        description="A recommender log with known structure (drgrad.data.simulator): Zipf "
                    "users/items/authors, cold start, drift, tasks from latent factors, "
                    "per-user task conflict; with its dataset file and generator.json.")
    simulate.add_argument("--out", required=True, metavar="DIR",
                          help="output root; the dataset is written to DIR/NAME/")
    simulate.add_argument("--name", help="dataset name (default sim-PRESET)")
    simulate.add_argument("--preset", default="default",
                          help="task set and knobs to start from: default (click, like, finish, "
                               "share, follow, dislike) or gradcraft (GradCraft's six tasks)")
    simulate.add_argument("--format", choices=("csv", "tfrecord", "parquet"), default="csv",
                          help="file format of the parts (default csv)")
    simulate.add_argument("--workers", type=positive_int, default=2,
                          help="processes writing spans (default 2; output does not depend "
                               "on it)")
    simulate.add_argument("--overwrite", action="store_true",
                          help="replace DIR/NAME if it exists (default: refuse)")
    knobs = simulate.add_argument_group("knobs (default: the preset's)")
    for flag, kind, text in (
            ("--days", positive_int, "days, one span each"),
            ("--rows-per-day", positive_int, "rows a day"),
            ("--users", positive_int, "initial users"), ("--items", positive_int, "initial items"),
            ("--authors", positive_int, "authors"), ("--seed", int, "random seed"),
            ("--conflict-user-fraction", float,
             "share of users for whom the conflict task runs against the primary"),
            ("--cos", float, "cos of the angle between an auxiliary task's signal and the "
                             "primary's")):
        knobs.add_argument(flag, type=kind, help=text)
    knobs.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       dest="settings", help="any knob, e.g. zipf_items=1.2, tasks=click,like, "
                                             "tasks.like.rate=0.03 (repeatable)")
    simulate.set_defaults(func=_simulate)


def _simulate(args):
    from drgrad.data import simulator_config, simulator_output

    knobs = {key: getattr(args, key) for key in ("days", "rows_per_day", "users", "items",
                                                 "authors", "seed", "conflict_user_fraction",
                                                 "cos")}
    config = simulator_config.configure(args.preset, knobs, args.settings)
    result = simulator_output.simulate(config, args.out, args.name or f"sim-{args.preset}",
                                       fmt=args.format, workers=args.workers,
                                       overwrite=args.overwrite, preset=args.preset)
    _report(result)
    rates = ", ".join(f"{name} {task['requested_rate']:.2%} -> {task['achieved_rate']:.2%}"
                      for name, task in result["generator"]["tasks"].items())
    print(f"  task rates (requested -> achieved): {rates}")
    print(f"  dataset file: {result['description']}")
    print(f"  generating parameters: {result['path']}/generator.json")
    return 0

"""`drgrad schedule`: daily retraining on Kubeflow Pipelines, Vertex AI, Airflow or cron.

```
drgrad schedule --target kfp    --at 02:00 --host http://kfp:8080 [--package pipeline.yaml]
drgrad schedule --target vertex --at 02:00 --timezone Europe/Berlin --project P --location L
drgrad schedule --target airflow --at 02:00 --data-root /data/census --run-root /srv/drgrad --out dags/
drgrad schedule --target cron   --at 02:00 --data-root /data/census --run-root /srv/drgrad --out cron/
```

`--at HH:MM` (or `--cron`, in the target's own dialect) is converted per target: 6 fields with
seconds for KFP, ``TZ=<zone>`` + 5 fields for Vertex, 5 fields for Airflow and cron.
`--dry-run` prints the API call (KFP, Vertex) or the file (Airflow, cron) and changes nothing.
KFP and Vertex compile the pipeline into `--out` with `pipeline.kubeflow_v2_runner` unless
`--package` names a compiled one. See docs/SCHEDULING.md.
"""
import argparse
import datetime
import json
import os
import sys

TARGETS = ("kfp", "vertex", "airflow", "cron")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "schedule", help="schedule daily retraining (KFP, Vertex AI, Airflow, cron)",
        description=__doc__.split("\n\n")[0] + " See docs/SCHEDULING.md.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", required=True, choices=TARGETS)
    when = parser.add_mutually_exclusive_group()
    when.add_argument("--at", default="02:00", help="daily start time HH:MM (default 02:00)")
    when.add_argument("--cron", default=None,
                      help="full cron expression in the target's dialect instead of --at "
                           "(KFP: 6 fields with seconds; others: 5 fields)")
    parser.add_argument("--timezone", default="UTC",
                        help="IANA zone of --at (default UTC); for KFP it must be the "
                             "cluster's CRON_SCHEDULE_TIMEZONE")
    parser.add_argument("--dataset", default="census", help="dataset registry name")
    parser.add_argument("--pipeline-name", default=None, help="default drgrad-<dataset>")
    parser.add_argument("--out", default=None,
                        help="directory for generated files (default runs/schedule/<target>)")
    parser.add_argument("--dry-run", action="store_true",
                        help="print what would be created or written; change nothing")
    cloud = parser.add_argument_group("kfp and vertex")
    cloud.add_argument("--package", default=None,
                       help="compiled pipeline (kfp: pipeline.yaml, vertex: pipeline.json); "
                            "default: compile into --out")
    cloud.add_argument("--image", default=None, help="pipeline image when compiling")
    cloud.add_argument("--cloud-root", default=None, help="gs:// root when compiling")
    cloud.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                       help="run-time parameter declared by the package (repeatable)")
    cloud.add_argument("--description", default=None)
    cloud.add_argument("--service-account", default=None)
    kfp_group = parser.add_argument_group("kfp")
    kfp_group.add_argument("--host", default=None, help="KFP API endpoint")
    kfp_group.add_argument("--experiment", default="drgrad-daily")
    kfp_group.add_argument("--namespace", default=None)
    vertex_group = parser.add_argument_group("vertex")
    vertex_group.add_argument("--project", default=None)
    vertex_group.add_argument("--location", default=None, help="region, e.g. europe-west4")
    vertex_group.add_argument("--pipeline-root", default=None, help="gs:// pipeline root")
    local = parser.add_argument_group("airflow and cron")
    local.add_argument("--data-root", default=None, help="absolute span-<N>/ data directory")
    local.add_argument("--run-root", default=None,
                       help="absolute run directory (pipeline root, MLMD, serving/)")
    local.add_argument("--start-date", default=None,
                       help="airflow: first day YYYY-MM-DD (default: today)")
    local.add_argument("--days-ago", type=int, default=1,
                       help="cron: run date = today - N days (default 1: yesterday)")
    local.add_argument("--wrapper", default=None,
                       help="cron: absolute path of drgrad-daily.sh on the host "
                            "(default: the copy written to --out)")
    local.add_argument("--drgrad", default=None,
                       help="cron: the drgrad command on the host (default: this one)")
    local.add_argument("--lock", default=None, help="cron: lock file")
    local.add_argument("--log", default=None, help="cron: log file")
    local.add_argument("--pipeline-arg", action="append", default=[], metavar="ARG",
                       help="cron: extra argument for `drgrad pipeline run` (repeatable; write "
                            "--pipeline-arg=--flag for flags); "
                            "airflow: KEY=VALUE for create_pipeline")
    parser.set_defaults(func=_handle)


def _handle(args) -> int:
    from drgrad.pipeline import configs
    from drgrad.pipeline.schedules import cronexpr

    cronexpr.check_timezone(args.timezone)
    name = configs.check_pipeline_name(
        args.pipeline_name or configs.default_pipeline_name(args.dataset))
    out = os.path.abspath(args.out or os.path.join("runs", "schedule", args.target))
    hour, minute = cronexpr.parse_at(args.at) if args.cron is None else (None, None)
    dialect = cronexpr.SECONDS if args.target == "kfp" else cronexpr.UNIX
    schedule = args.cron if args.cron is not None else cronexpr.daily(hour, minute, dialect)
    handler = {"kfp": _kfp, "vertex": _vertex, "airflow": _airflow, "cron": _cron}[args.target]
    return handler(args, name, out, schedule)


def _params(args):
    from drgrad.pipeline.schedules import package

    return dict(package.parse_param(text) for text in args.param)


def _compiled(args, target, name, out):
    """The package to schedule: --package, or a fresh compile into --out."""
    if args.package:
        return os.path.abspath(args.package)
    from drgrad.pipeline import kubeflow_v2_runner

    options = {"dataset": args.dataset, "pipeline_name": name}
    if args.image:
        options["image"] = args.image
    if args.cloud_root:
        options["cloud_root"] = args.cloud_root
    path = kubeflow_v2_runner.compile_pipeline(target, out, **options)
    print(f"compiled {path}", file=sys.stderr)
    return path


def _print_plan(plan) -> None:
    print(json.dumps(plan, indent=2, sort_keys=True, default=str))


def _kfp(args, name, out, schedule) -> int:
    from drgrad.pipeline.schedules import kfp

    run = kfp.KfpRecurringRun(
        package_path=_compiled(args, "kfp", name, out), job_name=f"{name}-daily", cron=schedule,
        experiment=args.experiment, params=_params(args), namespace=args.namespace,
        service_account=args.service_account,
        description=args.description or (f"daily DRGrad retraining of {name}: {schedule} in "
                                          f"the KFP controller's zone ({args.timezone})"))
    if args.dry_run:
        _print_plan(run.plan())
        return 0
    if not args.host:
        raise ValueError("--target kfp needs --host (the KFP API endpoint), or --dry-run")
    result = kfp.submit(run, host=args.host)
    print(f"created recurring run {result.recurring_run_id} ({schedule}, no_catchup)")
    return 0


def _vertex(args, name, out, schedule) -> int:
    from drgrad.pipeline.schedules import cronexpr, vertex

    if not cronexpr.parse(schedule, allow_timezone=True).timezone:
        schedule = f"TZ={args.timezone} {schedule}"
    missing = [flag for flag, value in (("--project", args.project),
                                        ("--location", args.location)) if not value]
    if missing:
        raise ValueError(f"--target vertex needs {' and '.join(missing)}")
    job = vertex.VertexSchedule(
        template_path=_compiled(args, "vertex", name, out), display_name=f"{name}-daily",
        cron=schedule, project=args.project, location=args.location,
        pipeline_root=args.pipeline_root, params=_params(args),
        service_account=args.service_account)
    if args.dry_run:
        _print_plan(job.plan())
        return 0
    result = vertex.submit(job)
    print(f"created schedule {result.resource_name} ({schedule})")
    return 0


def _local_roots(args):
    missing = [flag for flag, value in (("--data-root", args.data_root),
                                        ("--run-root", args.run_root)) if not value]
    if missing:
        raise ValueError(f"--target {args.target} needs {' and '.join(missing)} (absolute "
                         "paths as the scheduler's host sees them)")
    return args.data_root, args.run_root


def _airflow(args, name, out, schedule) -> int:
    from drgrad.pipeline.schedules import airflow, package

    data_root, run_root = _local_roots(args)
    start = (datetime.date.fromisoformat(args.start_date) if args.start_date
             else datetime.date.today())
    dag = airflow.AirflowDag(
        pipeline_name=name, dataset=args.dataset, data_root=data_root, run_root=run_root,
        schedule=schedule, timezone=args.timezone, start_date=start,
        pipeline_args=dict(package.parse_param(text) for text in args.pipeline_arg))
    if args.dry_run:
        print(dag.render(), end="")
        return 0
    print(airflow.write(dag, out))
    return 0


def _cron(args, name, out, schedule) -> int:
    from drgrad.pipeline.schedules import cron

    data_root, run_root = _local_roots(args)
    drgrad = args.drgrad or os.path.join(os.path.dirname(os.path.abspath(sys.executable)),
                                         "drgrad")
    entry = cron.CronEntry(
        schedule=schedule, timezone=args.timezone,
        wrapper=args.wrapper or os.path.join(out, cron.WRAPPER_NAME),
        lock=args.lock or os.path.join(run_root, f"{name}.lock"),
        log=args.log or os.path.join(run_root, "logs", f"{name}.log"),
        days_ago=args.days_ago,
        pipeline_args=("--dataset", args.dataset, "--data-root", data_root, "--root", run_root,
                       *args.pipeline_arg),
        drgrad=drgrad, name=name)
    if args.dry_run:
        print(entry.render(), end="")
        return 0
    paths = cron.write(entry, out)
    print(paths["crontab"])
    print(f"install with: crontab {paths['crontab']}  (replaces that user's crontab)",
          file=sys.stderr)
    return 0

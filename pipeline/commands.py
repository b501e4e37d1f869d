"""`drgrad pipeline run|compile`: the TFX pipeline from the command line.

`drgrad pipeline run --dataset census --backbone split_mmoe --strategy drgrad --rows 20000`
builds the dataset's CSV spans under `<root>/data` (unless `--data-root` is given), runs the
pipeline with the LocalDagRunner under `--root` (default `./runs/<dataset>`), and prints each
task's eval AUC and the pushed model's path (or why nothing was pushed). While it runs, `run`
and `backfill` print one line per component as it starts and ends and keep the TF/TFX/Beam
messages in `<root>/logs/pipeline-<time>.log` (`--verbose` shows them too; `console`).

Daily retraining: `drgrad pipeline run --data-root DIR --date 2024-03-02` ingests that day's
span (DIR is a `drgrad data split-days` folder; its manifest maps dates to spans), trains on
the newest `--window-spans` validated spans, reuses the Transform analyzer cache and warm-starts
from the latest blessed model. `drgrad pipeline backfill --data-root DIR --from D1 --to D2`
runs those days in order and stops at the first day that fails, saying which (both through
`pipeline.backfill.run_days`).

`drgrad pipeline compile --target kfp|vertex [--out DIR] [--image IMAGE]` writes
`pipeline.yaml` (KFP v2) or `pipeline.json` (Vertex PipelineJob); with `--dataset FILE
[--dataset-uri URI]` the compiled pipeline reads a user's dataset file from the image or a
bucket (`kubeflow_v2_runner.dataset_location`); a file it cannot read is exit status 2.

`run`, `backfill` and `compile` take `--runner direct|dataflow|flink|spark` with that runner's
options (`--project --region --temp-location`; `--master` or `--job-endpoint`,
`--environment-type`), turned into Beam arguments by `configs.beam_pipeline_args`.
`drgrad pipeline training-job --target tfjob|vertex --image IMAGE --out FILE` writes a
multi-worker training job (`pipeline.training_jobs`).

Heavy modules (TFX, TensorFlow) are imported inside the handlers only.
"""
import argparse
import os
import re
import sys

from drgrad.data.cli import dataset_argument
from drgrad.data.cli import positive_int as _positive_int
from drgrad.pipeline import configs
from drgrad.pipeline.evaluation import DEFAULT_METRICS, OPTIONAL_METRICS
from drgrad.pipeline.configs import BEAM_RUNNERS, DEFAULT_WINDOW_SPANS, ENVIRONMENT_TYPES
from drgrad.pipeline.kubeflow_v2_runner import check_dataset_uri


def _fraction(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0.0 <= value <= 1.0001:
        raise argparse.ArgumentTypeError(f"expected a value in [0, 1.0001], got {text!r}")
    return value


def _dataset_uri(text):
    try:
        return check_dataset_uri(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _add_model_args(parser):
    parser.add_argument("--dataset", default="census", type=dataset_argument,
                        help="a built-in dataset name or a dataset file PATH.yaml (default: "
                             "census)")
    parser.add_argument("--backbone", default=None,
                        help="model backbone (default split_mmoe; shared_bottom for one task)")
    parser.add_argument("--strategy", default=None,
                        help="multi-task training strategy (default drgrad; equal_weight for "
                             "one task)")
    parser.add_argument("--epochs", type=_positive_int, default=None,
                        help="passes over the train split (default: 1)")
    parser.add_argument("--batch-size", type=_positive_int, default=None,
                        help="examples per training step (default: 1024)")
    parser.add_argument("--train-steps", type=_positive_int, default=None,
                        help="train for exactly this many steps instead of --epochs")
    parser.add_argument("--distribute", default=None,
                        choices=("none", "mirrored", "multi-worker"),
                        help="the Trainer's tf.distribute strategy (default none): mirrored "
                             "(every local GPU, else every logical CPU) or multi-worker "
                             "(TF_CONFIG)")
    parser.add_argument("--min-auc", type=_fraction, default=None,
                        help="Evaluator AUC floor for every task (default: 0.5)")
    parser.add_argument("--max-auc-drop", type=float, default=None,
                        help="tolerated AUC drop vs the blessed model (default: 0.01)")
    parser.add_argument("--metric", action="append", choices=OPTIONAL_METRICS, default=None,
                        help="an Evaluator metric per task beside AUC and ExampleCount "
                             "(repeatable; each costs about one AUC's time)")


def _date(text):
    from drgrad.pipeline.daily import check_date  # pylint: disable=g-import-not-at-top

    try:
        return check_date(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


# The `--runner` options each Beam runner takes (configs.beam_pipeline_args's arguments).
_RUNNER_OPTIONS = {
    "direct": ("beam_workers",),
    "dataflow": ("project", "region", "temp_location", "worker_image"),
    "flink": ("master", "job_endpoint", "environment_type", "environment_config",
              "worker_image"),
    "spark": ("master", "job_endpoint", "environment_type", "environment_config",
              "worker_image"),
}

# configs.beam_pipeline_args's argument names in its errors, to be shown as flags.
_OPTION_NAMES = re.compile(
    r"\b(project|region|temp_location|environment_type|environment_config)\b")


def _add_beam_args(parser):
    group = parser.add_argument_group(
        "Beam runner (ExampleGen, StatisticsGen, Transform, Evaluator; pipeline/README.md)")
    group.add_argument("--runner", choices=BEAM_RUNNERS, default="direct",
                       help="Beam runner of the data components (default direct)")
    group.add_argument("--beam-workers", type=int, default=None,
                       help="direct: workers, 1 = in_memory (default), N > 1 = "
                            "multi_processing, 0 = one per CPU")
    group.add_argument("--project", default=None, help="dataflow: Google Cloud project")
    group.add_argument("--region", default=None, help="dataflow: region (e.g. us-central1)")
    group.add_argument("--temp-location", default=None, help="dataflow: gs:// temp location")
    group.add_argument("--master", default=None,
                       help="flink: http://host:8081, spark: http://host:6066 (Beam submits an "
                            "uber jar built from its job server jar, fetched from Maven)")
    group.add_argument("--job-endpoint", default=None,
                       help="flink/spark: a running job server, host:8099 (instead of --master)")
    group.add_argument("--environment-type", choices=ENVIRONMENT_TYPES, default=None,
                       help="flink/spark: where SDK workers run (default LOOPBACK)")
    group.add_argument("--environment-config", default=None,
                       help="flink/spark: DOCKER image (default the worker image), EXTERNAL "
                            "host:port, PROCESS JSON command")
    group.add_argument("--worker-image", default=None,
                       help="dataflow/flink/spark: SDK worker image (default "
                            "gcr.io/YOUR_PROJECT/drgrad-pipeline:latest)")


def _add_console_args(parser):
    parser.add_argument("--verbose", action="store_true",
                        help="also show the TF/TFX/Beam messages on the console (they always "
                             "go to <root>/logs/pipeline-<time>.log)")


def _add_daily_args(parser):
    parser.add_argument("--window-spans", type=_positive_int, default=DEFAULT_WINDOW_SPANS,
                        help="daily runs: Transform and Trainer read the newest N validated "
                             f"spans (default: {DEFAULT_WINDOW_SPANS})")
    parser.add_argument("--no-warm-start", action="store_true",
                        help="daily runs: train from scratch instead of from the blessed model")


def register(subparsers):
    """Adds `drgrad pipeline {run,backfill,compile,training-job}`."""
    parser = subparsers.add_parser(
        "pipeline", help="run the TFX pipeline locally or compile it for KFP / Vertex",
        description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="pipeline_command",
                                     metavar="{run,backfill,compile,training-job}")
    commands.required = True

    run = commands.add_parser(
        "run", help="run the pipeline with the LocalDagRunner",
        description="Run ExampleGen -> ... -> Pusher locally; prints per-task AUCs and the "
                    "pushed model path.")
    _add_model_args(run)
    run.add_argument("--rows", type=_positive_int, default=None,
                     help="rows per split when building the data (default: all)")
    run.add_argument("--root", default=None,
                     help="run directory: pipeline root, metadata.sqlite, serving/ "
                          "(default: ./runs/<dataset>; with --date ./runs/<dataset>-daily)")
    run.add_argument("--data-root", default=None,
                     help="directory with span-<N>/{train,eval}/ CSVs (or its parent, as "
                          "written by `drgrad data build --out`); default: build under "
                          "<root>/data")
    run.add_argument("--no-cache", action="store_true",
                     help="re-execute every component even if its inputs did not change")
    run.add_argument("--no-materialize", action="store_true",
                     help="Transform writes only the transform graph; the Trainer applies it "
                          "to the raw examples (no second pass over the data in Transform)")
    run.add_argument("--warm-start", action="store_true",
                     help="start training from the latest blessed model's weights when it has "
                          "the same model config")
    _add_beam_args(run)
    _add_daily_args(run)
    _add_console_args(run)
    run.add_argument("--date", type=_date, default=None, metavar="YYYY-MM-DD",
                     help="daily run: ingest this day's span of a split-days --data-root; "
                          "implies the rolling window, the analyzer cache and warm start")
    run.set_defaults(func=_run)

    backfill = commands.add_parser(
        "backfill", help="run the daily pipeline for every day of a date range, in order",
        description="Runs `pipeline run --date D` for D = --from .. --to (every day must be in "
                    "the data manifest) and stops at the first day that fails, naming it.")
    _add_model_args(backfill)
    backfill.add_argument("--data-root", required=True,
                          help="a `drgrad data split-days` folder (span-<N>/ + manifest.json)")
    backfill.add_argument("--root", default=None,
                          help="run directory (default: ./runs/<dataset>-daily)")
    backfill.add_argument("--from", dest="date_from", type=_date, required=True,
                          metavar="YYYY-MM-DD")
    backfill.add_argument("--to", dest="date_to", type=_date, required=True,
                          metavar="YYYY-MM-DD")
    _add_beam_args(backfill)
    _add_daily_args(backfill)
    _add_console_args(backfill)
    backfill.set_defaults(func=_backfill)

    compile_ = commands.add_parser(
        "compile", help="compile for Kubeflow Pipelines v2 (YAML) or Vertex (JSON)")
    compile_.add_argument("--target", required=True, choices=("kfp", "vertex"))
    compile_.add_argument("--out", default=".", help="output directory (default: .)")
    compile_.add_argument("--image", default=None,
                          help="container image of every step "
                               "(default: gcr.io/YOUR_PROJECT/drgrad-pipeline:latest)")
    compile_.add_argument("--cloud-root", default=None,
                          help="bucket prefix for data, artifacts and pushed models "
                               "(default: gs://YOUR_BUCKET/drgrad)")
    compile_.add_argument("--dataset-uri", type=_dataset_uri, default=None, metavar="URI",
                          help="with --dataset FILE: where the pipeline's containers find FILE "
                               "(its schema.pbtxt and data beside it as locally): "
                               "gs://BUCKET/.../NAME.yaml, or a path inside the image (default: "
                               "/drgrad/<FILE's path in this checkout>)")
    _add_model_args(compile_)
    _add_beam_args(compile_)
    compile_.set_defaults(func=_compile)

    job = commands.add_parser(
        "training-job", help="write a multi-worker training job: Kubeflow TFJob or Vertex AI",
        description="Write a TFJob manifest (kubectl apply -f) or a Vertex AI CustomJobSpec "
                    "(gcloud ai custom-jobs create --config) whose chief and workers run "
                    "`drgrad train --distribute multi-worker` (pipeline/training_jobs.py; the "
                    "flag lands with the tf.distribute work).")
    job.add_argument("--target", required=True, choices=("tfjob", "vertex"))
    job.add_argument("--image", required=True, help="the project image (Dockerfile)")
    job.add_argument("--workers", type=_positive_int, default=2,
                     help="replicas in all, chief included (default 2; at least 2)")
    job.add_argument("--dataset", default="census", help="drgrad train --dataset")
    job.add_argument("--run-dir", default=None,
                     help="drgrad train --out inside the containers (default: tfjob "
                          "/runs/train/<dataset> on the claim, vertex /gcs/<bucket>/...)")
    job.add_argument("--name", default=None, help="job name (default drgrad-train-<dataset>)")
    job.add_argument("--namespace", default=None, help="tfjob: namespace")
    job.add_argument("--claim", default=None,
                     help="tfjob: PersistentVolumeClaim mounted at /runs (default drgrad-runs)")
    job.add_argument("--machine-type", default=None,
                     help="vertex: machine type of every replica (default n1-standard-8)")
    job.add_argument("--train-arg", action="append", default=[], metavar="ARG",
                     help="one more `drgrad train` argument (repeatable, e.g. "
                          "--train-arg=--epochs --train-arg=3)")
    job.add_argument("--out", required=True, metavar="FILE", help="YAML file to write")
    job.set_defaults(func=_training_job)


def _model_kwargs(args, spec):
    if len(spec.tasks) == 1:
        # One task: a single-task model (DRGrad needs a primary and an auxiliary task).
        if args.strategy == "drgrad":
            raise ValueError(f"DRGrad needs two or more tasks; dataset {spec.name!r} has one "
                             f"({spec.tasks[0]!r}): leave --strategy out for a single-task "
                             f"model (shared_bottom + equal_weight)")
        kwargs = {"backbone": args.backbone or "shared_bottom",
                  "strategy": args.strategy or "equal_weight"}
    else:
        kwargs = {"backbone": args.backbone or "split_mmoe", "strategy": args.strategy or "drgrad"}
    for name in ("epochs", "batch_size", "train_steps", "min_auc", "max_auc_drop"):
        value = getattr(args, name)
        if value is not None:
            kwargs[name] = value
    if args.distribute is not None:
        kwargs["distribute"] = args.distribute.replace("-", "_")
    if args.metric:
        kwargs["metrics"] = DEFAULT_METRICS + tuple(dict.fromkeys(args.metric))
    return kwargs


def resolve_data_root(data_root, dataset_name):
    """The folder holding `span-<N>/`: `data_root` itself or `data_root/<dataset>`."""
    if not os.path.isdir(data_root):
        raise FileNotFoundError(f"--data-root not found: {data_root}")
    nested = os.path.join(data_root, dataset_name)
    if os.path.isdir(nested):
        return nested
    if any(name.startswith("span-") for name in os.listdir(data_root)):
        return data_root
    raise FileNotFoundError(f"no span-<N> folders in {data_root} or {nested}")


def _run(args):
    from drgrad.data.specs import get_dataset, get_spec

    from drgrad.pipeline import console, local_runner

    spec = get_spec(args.dataset)
    if args.date is not None:
        if not args.data_root:
            raise ValueError("--date needs --data-root: a `drgrad data split-days` folder")
        return _run_days(args, [args.date])
    beam_pipeline_args = _beam_args(args)  # checked before any data is built
    root = os.path.abspath(args.root or os.path.join("runs", spec.name))
    options, data_root = {}, None
    if get_dataset(args.dataset).source.loader is None and not args.data_root:
        data_root, options = local_runner.dataset_file_options(args.dataset)
    elif args.data_root:
        data_root = resolve_data_root(args.data_root, spec.name)
    options.update(_model_kwargs(args, spec))
    # A built-in by its name (not an alias); a dataset file by its path.
    dataset = args.dataset if get_dataset(args.dataset).source.loader is None else spec.name
    with console.capture(local_runner.RunPaths(root=root, model_name=spec.name),
                         configs.default_pipeline_name(spec.name), verbose=args.verbose):
        if data_root is None:
            data_root = _built_data(spec.name, root, args.rows)
        paths = local_runner.run(data_root, root, dataset,
                                 beam_pipeline_args=beam_pipeline_args,
                                 enable_cache=not args.no_cache, warm_start=args.warm_start,
                                 materialize=not args.no_materialize, **options)
        _print_outcome(paths)
    return 0


def _built_data(dataset_name, root, rows):
    """`<root>/data/<dataset>`, built by `drgrad.data.datasets.build` unless it exists."""
    from drgrad.data.datasets import build

    data_root = os.path.join(root, "data", dataset_name)
    if os.path.isdir(data_root):
        print(f"using existing data {data_root}")
        return data_root
    data_root = build(dataset_name, os.path.join(root, "data"), rows=rows)["path"]
    print(f"built {dataset_name} data ({'all' if rows is None else rows} rows per split) in "
          f"{data_root}")
    return data_root


def _beam_args(args, default_image=None):
    """`--runner` and its options -> `configs.beam_pipeline_args(...)`; an option the runner
    does not take is an error, as is a missing one (configs names it)."""
    foreign = [name for names in _RUNNER_OPTIONS.values() for name in names
               if name not in _RUNNER_OPTIONS[args.runner] and getattr(args, name) is not None]
    if foreign:
        flags = ", ".join(sorted({"--" + name.replace("_", "-") for name in foreign}))
        raise ValueError(f"not used by --runner {args.runner}: {flags}")
    if args.runner == "direct":
        workers = 1 if args.beam_workers is None else args.beam_workers
        if workers < 0:
            raise ValueError(f"--beam-workers must be >= 0, got {workers}")
        return configs.direct_beam_args_by_workers(workers)
    try:
        return configs.beam_pipeline_args(
            args.runner, project=args.project, region=args.region,
            temp_location=args.temp_location, image=args.worker_image or default_image,
            master=args.master, job_endpoint=args.job_endpoint,
            environment_type=args.environment_type or "LOOPBACK",
            environment_config=args.environment_config)
    except ValueError as error:  # name the flags, not the Python arguments
        raise ValueError(_OPTION_NAMES.sub(lambda m: "--" + m.group(1).replace("_", "-"),
                                           str(error))) from None


def _print_outcome(paths):
    from drgrad.pipeline import evaluation, local_runner

    outputs = local_runner.latest_outputs(paths)
    if outputs["evaluation"]:
        for task, metrics in sorted(evaluation.read_metrics(outputs["evaluation"]).items()):
            if "auc" in metrics:
                print(f"eval AUC {task}: {metrics['auc']:.4f}")
    print(f"blessed: {outputs['blessed']}")
    if outputs["pushed"]:
        print(f"pushed model: {outputs['pushed_destination']}")
    elif outputs["blessed"] is False:
        print(f"not pushed: the Evaluator did not bless the model (an AUC under --min-auc, or "
              f"more than --max-auc-drop under the blessed model's); serving directory "
              f"unchanged: {paths.serving_model_dir}")
    else:
        print(f"not pushed (serving directory unchanged: {paths.serving_model_dir})")
    print(f"run directory: {paths.root}")


def _run_days(args, dates):
    from drgrad.data.specs import get_spec

    from drgrad.pipeline import backfill, console, local_runner

    spec = get_spec(args.dataset)
    beam_pipeline_args = _beam_args(args)
    data_root = resolve_data_root(args.data_root, spec.name)
    root = os.path.abspath(args.root or os.path.join("runs", f"{spec.name}-daily"))

    def report(date, paths):
        print(f"== {date}")
        _print_outcome(paths)

    try:
        with console.capture(local_runner.RunPaths(root=root, model_name=spec.name),
                             configs.default_pipeline_name(spec.name), verbose=args.verbose):
            backfill.run_days(data_root, root, spec.name, dates,
                              window_spans=args.window_spans, warm_start=not args.no_warm_start,
                              beam_pipeline_args=beam_pipeline_args, on_day=report,
                              **_model_kwargs(args, spec))
    except backfill.DayFailedError as error:
        print(f"drgrad pipeline: stopped: {error}", file=sys.stderr)
        return 1
    return 0


def _backfill(args):
    from drgrad.pipeline.backfill import date_range

    return _run_days(args, date_range(args.date_from, args.date_to))


def _compile(args):
    from drgrad.data.specs import get_spec
    from drgrad.pipeline import kubeflow_v2_runner

    spec = get_spec(args.dataset)
    image = args.image or configs.DEFAULT_IMAGE
    try:
        path = kubeflow_v2_runner.compile_pipeline(
            args.target, args.out, image=image, dataset=args.dataset,
            dataset_uri=args.dataset_uri,
            cloud_root=args.cloud_root or configs.DEFAULT_CLOUD_ROOT,
            beam_pipeline_args=_beam_args(args, default_image=image),
            **_model_kwargs(args, spec))
    except kubeflow_v2_runner.DatasetLocationError as error:
        print(f"drgrad pipeline compile: error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0


def _training_job(args):
    from drgrad.pipeline import training_jobs

    if args.target == "tfjob" and args.machine_type is not None:
        raise ValueError("--machine-type applies to --target vertex only")
    if args.target == "vertex" and (args.claim is not None or args.namespace is not None):
        raise ValueError("--claim and --namespace apply to --target tfjob only")
    options = {name: getattr(args, name) for name in ("claim", "machine_type")
               if getattr(args, name) is not None}
    training_jobs.write_training_job(
        args.out, args.target, args.image, workers=args.workers, dataset=args.dataset,
        run_dir=args.run_dir, train_args=args.train_arg, name=args.name,
        namespace=args.namespace, **options)
    print(f"wrote {args.out}")
    return 0

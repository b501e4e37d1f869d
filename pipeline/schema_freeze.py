"""`drgrad schema freeze --root RUN_DIR --dataset FILE`: the schema SchemaGen inferred, kept.

A dataset file with no `schema.pbtxt` beside it runs with SchemaGen, which infers the schema
from each run's statistics (`pipeline.pipeline._validate`), so yesterday's data never constrains
today's. The TFX way out is to freeze the first inferred schema and import it from then on: this
command reads the run directory's ML Metadata (`<root>/metadata.sqlite`, `local_runner.RunPaths`),
takes the newest `Schema` output of the dataset pipeline's SchemaGen (or ImportSchemaGen, so a
frozen schema can be re-frozen after editing the data), and writes it beside the dataset file
as `schema.pbtxt` (`drgrad.data.check.schema_path`), where `PipelineConfig.schema_file` finds it:
the next run imports it with ImportSchemaGen and ExampleValidator checks every span against it.

It refuses to replace an existing `schema.pbtxt` unless `--force`. What it changes, it says
(printed and written in the file's header), with the curated schemas' rules
(`drgrad.pipeline.schema`):

* the TRAINING and SERVING environments are declared;
* each task is a label: integers in {0, 1}, required in TRAINING only (a serving request has
  no labels);
* a categorical column loses the closed list of values SchemaGen saw (a new id tomorrow is the
  Transform vocabulary's OOV bucket, not an anomaly).

Everything else (types, presence, shapes, other columns such as the timestamp) stays as
inferred. A task or feature of the dataset file missing from the schema, or a task that is not
an integer column, is an error (the run was not on this dataset, or its labels are bad).
Errors are one line on stderr and exit status 2.
"""
import os
import sys
from typing import List, NamedTuple

# The components whose `schema` output is a frozen schema's source, newest wins.
SCHEMA_COMPONENTS = ("SchemaGen", "ImportSchemaGen")
SCHEMA_TYPE = "Schema"
SCHEMA_FILE_OF_ARTIFACT = "schema.pbtxt"  # what both components write in their artifact uri


class InferredSchema(NamedTuple):
    """A `Schema` artifact of the run: its uri, the component and MLMD artifact id."""

    uri: str
    component: str
    artifact_id: int


def register(subparsers):
    """Adds `drgrad schema freeze`."""
    parser = subparsers.add_parser(
        "schema", help="the TFDV schema of a dataset file",
        description="The TFDV schema beside a dataset file (pipeline/schema_freeze.py).")
    commands = parser.add_subparsers(dest="schema_command", metavar="{freeze}")
    commands.required = True
    freeze_ = commands.add_parser(
        "freeze", help="write the schema a pipeline run inferred beside the dataset file",
        description="Write the newest SchemaGen schema of a run directory beside the dataset "
                    "file as schema.pbtxt, labels restricted to {0, 1} in TRAINING only and "
                    "categorical value lists dropped; later runs import it (ImportSchemaGen).")
    freeze_.add_argument("--root", required=True, metavar="RUN_DIR",
                         help="the `drgrad pipeline run --root` directory of a run on FILE")
    freeze_.add_argument("--dataset", required=True, metavar="FILE",
                         help="the dataset file (PATH.yaml) the run read")
    freeze_.add_argument("--force", action="store_true",
                         help="replace an existing schema.pbtxt beside the file")
    freeze_.set_defaults(func=_freeze_command)


def latest_schema(root: str, pipeline_name: str) -> InferredSchema:
    """The newest LIVE `Schema` output of `pipeline_name`'s SchemaGen / ImportSchemaGen in the
    run directory's MLMD; FileNotFoundError when there is none."""
    import ml_metadata as mlmd  # pylint: disable=g-import-not-at-top

    from drgrad.pipeline import local_runner  # pylint: disable=g-import-not-at-top

    paths = local_runner.RunPaths(root=os.path.abspath(root), model_name=pipeline_name)
    if not os.path.isfile(paths.metadata_path):
        raise FileNotFoundError(f"no pipeline run under {paths.root} (no metadata.sqlite): run "
                                f"`drgrad pipeline run --dataset FILE --root {root}` first")
    store = mlmd.MetadataStore(local_runner.metadata_config(paths))
    found = []
    for component in SCHEMA_COMPONENTS:
        context = store.get_context_by_type_and_name("node", f"{pipeline_name}.{component}")
        if context is None:
            continue
        found += [InferredSchema(artifact.uri, component, artifact.id)
                  for artifact in store.get_artifacts_by_context(context.id)
                  if artifact.type == SCHEMA_TYPE and artifact.state == mlmd.proto.Artifact.LIVE]
    if not found:
        raise FileNotFoundError(f"no schema of pipeline {pipeline_name!r} in {paths.root}: run "
                                f"`drgrad pipeline run` on the dataset file with this --root "
                                f"first (its SchemaGen infers the schema)")
    return max(found, key=lambda schema: schema.artifact_id)


def freeze(schema, spec) -> List[str]:
    """Applies the module docstring's rules to a `Schema` proto in place, for a
    `data.specs.DatasetSpec`; returns one sentence per kind of change made (none: [])."""
    from drgrad.pipeline.schema import (  # pylint: disable=g-import-not-at-top
        add_environments, open_domain, restrict_label)
    from tensorflow_metadata.proto.v0 import schema_pb2  # pylint: disable=g-import-not-at-top

    features = {feature.name: feature for feature in schema.feature}
    missing = [column for column in list(spec.tasks) + list(spec.features)
               if column not in features]
    if missing:
        raise ValueError(f"the schema lacks columns of dataset {spec.name!r}: {missing}; was "
                         f"the run on this dataset file?")
    not_int = [f"{task} ({schema_pb2.FeatureType.Name(features[task].type)})"
               for task in spec.tasks if features[task].type != schema_pb2.INT]
    if not_int:
        raise ValueError(f"labels must be integer columns, the schema has {', '.join(not_int)};"
                         f" check the data with `drgrad data check`")
    changes = []
    if add_environments(schema):
        changes.append("declared the TRAINING and SERVING environments")
    labels = [task for task in spec.tasks if restrict_label(features[task])]
    if labels:
        changes.append(f"labels {', '.join(labels)}: integers in {{0, 1}}, required in TRAINING "
                       f"only")
    opened = [column for column in spec.categorical if open_domain(schema, features[column])]
    if opened:
        changes.append(f"categorical {', '.join(opened)}: the inferred list of values dropped "
                       f"(a new id gets the OOV bucket)")
    return changes


def freeze_schema(root: str, dataset: str, force: bool = False):
    """Freezes the run's newest schema beside the dataset file (module docstring); returns
    `(schema.pbtxt path, the InferredSchema read, changes)`."""
    from google.protobuf import text_format  # pylint: disable=g-import-not-at-top
    from tensorflow_metadata.proto.v0 import schema_pb2  # pylint: disable=g-import-not-at-top

    from drgrad.data.check import schema_path  # pylint: disable=g-import-not-at-top
    from drgrad.data.dataset_file import is_dataset_file  # pylint: disable=g-import-not-at-top
    from drgrad.data.specs import get_spec  # pylint: disable=g-import-not-at-top
    from drgrad.pipeline import configs  # pylint: disable=g-import-not-at-top

    if not is_dataset_file(dataset):
        raise ValueError(f"--dataset must be a dataset file (PATH.yaml), got {dataset!r}; the "
                         f"built-in datasets have curated schemas (data/schemas/)")
    spec = get_spec(dataset)
    target = schema_path(dataset)
    if os.path.exists(target) and not force:
        raise FileExistsError(f"{target} exists; --force replaces it")
    source = latest_schema(root, configs.default_pipeline_name(spec.name))
    with open(os.path.join(source.uri, SCHEMA_FILE_OF_ARTIFACT)) as handle:
        schema = text_format.Parse(handle.read(), schema_pb2.Schema())
    changes = freeze(schema, spec)
    header = [f"TFDV schema of dataset {spec.name!r}: {source.component}'s output in "
              f"{os.path.abspath(root)} (MLMD artifact {source.artifact_id}),",
              "frozen by `drgrad schema freeze` (drgrad.pipeline.schema_freeze)"
              + (":" if changes else " unchanged.")]
    header += [f"  {change}." for change in changes]
    with open(target, "w") as handle:
        handle.write("".join(f"# {line}\n" for line in header))
        handle.write(text_format.MessageToString(schema))
    return target, source, changes


def _freeze_command(args):
    try:
        target, source, changes = freeze_schema(args.root, args.dataset, force=args.force)
    except (ValueError, FileNotFoundError, FileExistsError) as error:
        print(f"drgrad schema freeze: error: {error}", file=sys.stderr)
        return 2
    print(f"froze {source.component}'s schema (MLMD artifact {source.artifact_id}) into "
          f"{target}")
    for change in changes:
        print(f"  {change}")
    print("the next `drgrad pipeline run` on this dataset file imports it (ImportSchemaGen)")
    return 0

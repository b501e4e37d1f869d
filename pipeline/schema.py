"""The curated TFDV schema of a dataset, derived from its `DatasetSpec`.

`data/schemas/<dataset>/schema.pbtxt` is committed and read by `ImportSchemaGen`; the
ExampleValidator checks every span against it. It is generated from the spec (one source of
truth for names and types) by `python -m drgrad.pipeline.schema DATASET [OUT]` and then kept under
review like code. What it enforces, and why:

* every feature and label column is present in every example, exactly one value (`shape {}`),
  with the type CsvExampleGen infers (`raw_dtypes`): a column of the wrong type or a dropped
  column is an anomaly that stops the pipeline (`pipeline.validation_gate`);
* labels are integers in {0, 1}, required in the TRAINING environment only (a serving request
  has no labels);
* float features must not be NaN or infinite (a NaN never reaches the weights);
* categorical values have no closed domain: new values are expected every day and get the
  Transform vocabulary's OOV bucket.
"""
import os
import sys

TRAINING = "TRAINING"
SERVING = "SERVING"


def curated_schema(spec):
    """A `tensorflow_metadata` `Schema` proto for a `data.specs.DatasetSpec`."""
    from tensorflow_metadata.proto.v0 import schema_pb2

    types = {"int": schema_pb2.INT, "float": schema_pb2.FLOAT, "string": schema_pb2.BYTES}
    schema = schema_pb2.Schema()
    add_environments(schema)
    for column in spec.features:
        feature = schema.feature.add(name=column, type=types[spec.raw_dtypes[column]])
        feature.presence.min_fraction = 1.0
        feature.presence.min_count = 1
        feature.shape.SetInParent()
        if spec.raw_dtypes[column] == "float":
            feature.float_domain.disallow_nan = True
            feature.float_domain.disallow_inf = True
    for task in spec.tasks:
        feature = schema.feature.add(name=task, type=schema_pb2.INT)
        feature.presence.min_fraction = 1.0
        feature.presence.min_count = 1
        feature.shape.SetInParent()
        restrict_label(feature)
    return schema


def add_environments(schema) -> bool:
    """Declares the TRAINING and SERVING environments (a serving request has no labels);
    returns whether the schema lacked one."""
    missing = [name for name in (TRAINING, SERVING) if name not in schema.default_environment]
    schema.default_environment.extend(missing)
    return bool(missing)


def restrict_label(feature) -> bool:
    """Makes `feature` a label: integers in {0, 1}, required in TRAINING only; returns whether
    that changed it."""
    before = feature.SerializeToString(deterministic=True)
    feature.int_domain.min = 0
    feature.int_domain.max = 1
    if SERVING not in feature.not_in_environment:
        feature.not_in_environment.append(SERVING)
    return feature.SerializeToString(deterministic=True) != before


def open_domain(schema, feature) -> bool:
    """Drops the closed value domain of a categorical `feature` (a new id is the OOV bucket's,
    not an anomaly), and the schema's string domain it referenced when no other feature does;
    returns whether it had one."""
    kind = feature.WhichOneof("domain_info")
    if kind is None:
        return False
    name = feature.domain if kind == "domain" else None
    feature.ClearField(kind)
    if name is not None and not any(other.domain == name for other in schema.feature):
        kept = [domain for domain in schema.string_domain if domain.name != name]
        del schema.string_domain[:]
        schema.string_domain.extend(kept)
    return True


def schema_text(spec) -> str:
    """The schema as committed: a header comment, then the text proto."""
    from google.protobuf import text_format

    header = (f"# Curated TFDV schema of the {spec.name!r} dataset (pipeline/schema.py).\n"
              f"# Regenerate: python -m drgrad.pipeline.schema {spec.name} "
              f"data/schemas/{spec.name}/schema.pbtxt\n")
    return header + text_format.MessageToString(curated_schema(spec))


def main(argv=None):
    from drgrad.data.specs import get_spec

    argv = sys.argv[1:] if argv is None else argv
    if not 1 <= len(argv) <= 2:
        print("usage: python -m drgrad.pipeline.schema DATASET [OUT]", file=sys.stderr)
        return 2
    spec = get_spec(argv[0])
    text = schema_text(spec)
    if len(argv) == 1:
        sys.stdout.write(text)
    else:
        os.makedirs(os.path.dirname(os.path.abspath(argv[1])), exist_ok=True)
        with open(argv[1], "w") as handle:
            handle.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

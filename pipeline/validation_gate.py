"""`ValidationGate`: stops the pipeline when `ExampleValidator` found anomalies.

TFX's `ExampleValidator` records anomalies but never fails, so on its own a bad data day (a
column of the wrong type, a missing label column) would flow into Transform, Trainer and maybe
the Pusher. The gate reads the `ExampleAnomalies` artifact and

* raises `DataValidationError` naming the span and the split when a split of the examples has
  no examples at all (TFDV finds no anomaly in empty statistics, so an empty span would
  otherwise reach Transform);
* raises `DataValidationError` naming the span, the split and each anomaly when any split has
  one (the run fails before Transform; nothing is trained or pushed);
* otherwise republishes the schema as its `validated_schema` output.

Transform and Trainer read `validated_schema` instead of the schema itself, so the dependency is
carried by data (MLMD lineage shows which validation admitted a model) and holds on every
orchestrator, without experimental task-only dependencies.
"""
import os
from typing import Any, Dict, List, Optional

from tfx import types
from tfx.dsl.components.base import base_component, base_executor, executor_spec
from tfx.types import artifact_utils, standard_artifacts
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter

ANOMALIES_FILE = "SchemaDiff.pb"
SCHEMA_FILE = "schema.pbtxt"


class DataValidationError(RuntimeError):
    """A data span failed schema validation; the message lists every anomaly."""


def read_anomalies(anomalies_artifact, ignored_splits=()) -> Dict[str, List[str]]:
    """`{split: ["feature: description", ...]}` for every split with anomalies.

    Args:
      anomalies_artifact: an `ExampleAnomalies` artifact written by `ExampleValidator`.
      ignored_splits: split names not checked.
    """
    import tensorflow as tf
    from tensorflow_metadata.proto.v0 import anomalies_pb2

    found = {}
    for split in artifact_utils.decode_split_names(anomalies_artifact.split_names):
        if split in ignored_splits:
            continue
        path = os.path.join(artifact_utils.get_split_uri([anomalies_artifact], split),
                            ANOMALIES_FILE)
        if not tf.io.gfile.exists(path):
            raise FileNotFoundError(f"ExampleValidator output missing for split {split!r}: "
                                    f"{path}")
        anomalies = anomalies_pb2.Anomalies()
        anomalies.ParseFromString(tf.io.gfile.GFile(path, "rb").read())
        problems = [f"{feature}: {info.description or info.short_description}"
                    for feature, info in sorted(anomalies.anomaly_info.items())]
        if anomalies.HasField("dataset_anomaly_info"):
            info = anomalies.dataset_anomaly_info
            problems.append(f"<dataset>: {info.description or info.short_description}")
        if problems:
            found[split] = problems
    return found


def empty_splits(examples_artifact, ignored_splits=()) -> List[str]:
    """Split names of an `Examples` artifact whose files hold no example (e.g. a span whose
    CSVs are only a header)."""
    import tensorflow as tf

    empty = []
    for split in artifact_utils.decode_split_names(examples_artifact.split_names):
        if split in ignored_splits:
            continue
        pattern = os.path.join(artifact_utils.get_split_uri([examples_artifact], split), "*")
        files = tf.io.gfile.glob(pattern)
        # ExampleGen writes gzipped TFRecords; reading one record is enough.
        if not files or not any(True for _ in tf.data.TFRecordDataset(
                files, compression_type="GZIP").take(1)):
            empty.append(split)
    return empty


def _span(examples) -> int:
    """An Examples artifact's span (TFX 1.16 ExampleGen records it as a custom property)."""
    if examples.has_custom_property("span"):
        return examples.get_int_custom_property("span")
    return examples.span


class Executor(base_executor.BaseExecutor):
    """Fails on an empty split or on anomalies; otherwise republishes the schema."""

    def Do(self, input_dict: Dict[str, List[types.Artifact]],
           output_dict: Dict[str, List[types.Artifact]],
           exec_properties: Dict[str, Any]) -> None:
        import tensorflow as tf

        anomalies = artifact_utils.get_single_instance(input_dict["anomalies"])
        ignored = tuple(filter(None, (exec_properties.get("ignored_splits") or "").split(",")))
        for examples in input_dict.get("examples") or ():
            empty = empty_splits(examples, ignored_splits=ignored)
            if empty:
                raise DataValidationError(
                    f"data span {_span(examples)} has no examples in split(s) "
                    f"{', '.join(sorted(empty))} (artifact {examples.uri}); the pipeline stops "
                    "before Transform, nothing is trained or pushed")
        found = read_anomalies(anomalies, ignored_splits=ignored)
        if found:
            span = "?"
            if input_dict.get("examples"):
                span = ", ".join(str(_span(e)) for e in input_dict["examples"])
            elif anomalies.has_property("span"):
                span = anomalies.span
            lines = [f"  [{split}] {problem}" for split, problems in sorted(found.items())
                     for problem in problems]
            raise DataValidationError(
                f"data span {span} failed validation against the schema "
                f"({sum(len(p) for p in found.values())} anomalies; artifact {anomalies.uri}); "
                "the pipeline stops before Transform, nothing is trained or pushed:\n"
                + "\n".join(lines))
        schema_dir = artifact_utils.get_single_uri(input_dict["schema"])
        files = tf.io.gfile.listdir(schema_dir)
        if len(files) != 1:
            raise FileNotFoundError(f"expected one schema file in {schema_dir}, found {files}")
        out_dir = artifact_utils.get_single_uri(output_dict["validated_schema"])
        tf.io.gfile.makedirs(out_dir)
        tf.io.gfile.copy(os.path.join(schema_dir, files[0]), os.path.join(out_dir, SCHEMA_FILE),
                         overwrite=True)


class ValidationGateSpec(ComponentSpec):
    """Inputs: ExampleValidator's anomalies and the schema they were checked against."""

    PARAMETERS = {"ignored_splits": ExecutionParameter(type=str, optional=True)}
    INPUTS = {
        "examples": ChannelParameter(type=standard_artifacts.Examples, optional=True),
        "anomalies": ChannelParameter(type=standard_artifacts.ExampleAnomalies),
        "schema": ChannelParameter(type=standard_artifacts.Schema),
    }
    OUTPUTS = {"validated_schema": ChannelParameter(type=standard_artifacts.Schema)}


class ValidationGate(base_component.BaseComponent):
    """Passes the schema on only when the examples have no anomalies (module docstring).

    Args:
      anomalies: channel of `ExampleAnomalies` (`ExampleValidator.outputs['anomalies']`).
      examples: optional channel of the validated `Examples`: their span is named in the
        error, and MLMD records which examples each gate execution admitted.
      schema: channel of the `Schema` used by that ExampleValidator.
      ignored_splits: split names whose anomalies do not stop the pipeline.
    """

    SPEC_CLASS = ValidationGateSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

    def __init__(self, anomalies: types.BaseChannel, schema: types.BaseChannel,
                 examples: Optional[types.BaseChannel] = None, ignored_splits=()):
        if isinstance(ignored_splits, str):
            raise TypeError("ignored_splits must be a sequence of split names, not a string")
        validated_schema = types.Channel(type=standard_artifacts.Schema)
        super().__init__(spec=ValidationGateSpec(
            anomalies=anomalies, schema=schema, examples=examples,
            ignored_splits=",".join(ignored_splits) or None,
            validated_schema=validated_schema))

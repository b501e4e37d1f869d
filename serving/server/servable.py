"""One loaded model version: its SavedModel signatures, called with NumPy inputs.

A `Servable` reads the SignatureDefs from `saved_model.pb` (exactly what TF Serving reports as
metadata) and calls the loaded concrete functions. It knows nothing about the model that
produced it: the serving runtime depends on SavedModels on disk only.
"""
import os
import re

import grpc
import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

from drgrad.serving.server.errors import ServingError, failed_precondition, invalid_argument

DEFAULT_SIGNATURE = "serving_default"
WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")
_INIT_OP_SIGNATURE = "__saved_model_init_op"
# TF Serving replays at most this many warmup records.
MAX_WARMUP_RECORDS = 1000


def read_signature_defs(saved_model_dir):
    """Returns the serving MetaGraph's `{key: SignatureDef}` read from `saved_model.pb`."""
    path = os.path.join(saved_model_dir, "saved_model.pb")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no saved_model.pb in {saved_model_dir}")
    proto = saved_model_pb2.SavedModel()
    with open(path, "rb") as f:
        proto.ParseFromString(f.read())
    for meta_graph in proto.meta_graphs:
        if "serve" in meta_graph.meta_info_def.tags:
            return dict(meta_graph.signature_def)
    raise ValueError(f"{saved_model_dir} has no MetaGraph tagged 'serve'")


class SignatureInfo:
    """Inputs and outputs of one signature: `{key: (tf.DType, shape list with None)}`."""

    def __init__(self, key, signature_def, function):
        self.key = key
        self.method_name = signature_def.method_name
        self.function = function
        self.inputs = {k: _tensor_info_spec(v) for k, v in signature_def.inputs.items()}
        self.outputs = {k: _tensor_info_spec(v) for k, v in signature_def.outputs.items()}

    @property
    def batchable(self):
        """True when every input and output is batched along dim 0, so requests can be merged."""
        specs = list(self.inputs.values()) + list(self.outputs.values())
        return bool(self.inputs) and all(
            shape is not None and len(shape) >= 1 and shape[0] is None for _, shape in specs)


def _tensor_info_spec(tensor_info):
    dtype = tf.dtypes.as_dtype(tensor_info.dtype)
    if tensor_info.tensor_shape.unknown_rank:
        return dtype, None
    return dtype, [None if d.size < 0 else int(d.size) for d in tensor_info.tensor_shape.dim]


def _status_from_tf_error(error):
    """Maps a `tf.errors.OpError` to a ServingError with the same canonical code."""
    code = {c.value[0]: c for c in grpc.StatusCode}.get(error.error_code, grpc.StatusCode.INTERNAL)
    return ServingError(code, clean_tf_message(error.message))


def clean_tf_message(message):
    """The op's own message, without eager-mode boilerplate ("Graph execution error", node
    trace lines, "[Op:...]")."""
    lines = []
    for line in message.splitlines():
        stripped = line.strip()
        if (not stripped or stripped.startswith(("Graph execution error", "Detected at node",
                                                 "<stack traces", "[[{{node")) or
                stripped.startswith("File ")):
            continue
        lines.append(re.sub(r"\s*\[Op:[^\]]*\]\s*$", "", stripped))
    return " ".join(lines) or message


class Servable:
    """A loaded SavedModel version.

    Args:
      name: model name.
      version: int version.
      path: the version directory (`<base_path>/<version>`).
    """

    def __init__(self, name, version, path):
        if not isinstance(version, int) or version < 0:
            raise ValueError(f"version must be a non-negative int, got {version!r}")
        self.name = name
        self.version = version
        self.path = path
        self.signature_defs = read_signature_defs(path)
        self._loaded = tf.saved_model.load(path, tags=["serve"])
        self.signatures = {}
        for key, signature_def in self.signature_defs.items():
            if key == _INIT_OP_SIGNATURE:
                continue
            self.signatures[key] = SignatureInfo(key, signature_def, self._loaded.signatures[key])

    def signature(self, signature_name):
        """Returns the SignatureInfo for a name; an empty name means `serving_default`."""
        key = signature_name or DEFAULT_SIGNATURE
        info = self.signatures.get(key)
        if info is None:
            raise failed_precondition(
                f'Serving signature name: "{key}" not found in signature def')
        return info

    def run(self, signature_name, inputs, output_filter=()):
        """Calls a signature with `{key: np.ndarray}` and returns `{key: np.ndarray}`."""
        info = self.signature(signature_name)
        check_input_keys(info, inputs)
        unknown = [k for k in output_filter if k not in info.outputs]
        if unknown:
            raise invalid_argument(f"output tensor alias not found in signature: {unknown[0]} "
                                   f"Outputs expected to be in the set {sorted(info.outputs)}.")
        # The loaded signature's flat call: its keyword wrapper re-validates, in Python, the
        # dtypes and shapes `_to_tensor` has just checked, which costs more than the model at
        # small batches (about 1.3 of 2.3 ms at batch 1, docs/RELIABILITY.md). The flat
        # inputs are the keyword inputs in `tf.nest` order: sorted by key.
        tensors = [_to_tensor(key, inputs[key], *info.inputs[key]) for key in sorted(inputs)]
        try:
            outputs = info.function._call_flat(  # pylint: disable=protected-access
                tensors, info.function.captured_inputs)
        except tf.errors.OpError as error:
            raise _status_from_tf_error(error) from None
        keys = output_filter or outputs.keys()
        return {k: outputs[k].numpy() for k in keys}

    def warmup(self):
        """Replays `assets.extra/tf_serving_warmup_requests` (PredictionLog records); returns count."""
        path = os.path.join(self.path, WARMUP_FILE)
        if not os.path.isfile(path):
            return 0
        from tensorflow_serving.apis import prediction_log_pb2  # pylint: disable=g-import-not-at-top

        count = 0
        for record in tf.data.TFRecordDataset(path).take(MAX_WARMUP_RECORDS):
            log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
            kind = log.WhichOneof("log_type")
            if kind == "predict_log":
                request = log.predict_log.request
                inputs = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
                self.run(request.model_spec.signature_name, inputs)
            elif kind in ("regress_log", "classify_log"):
                request = getattr(log, kind).request
                examples = serialize_input(request.input)
                info = self.signature(request.model_spec.signature_name)
                self.run(info.key, {next(iter(info.inputs)): examples})
            else:
                raise ValueError(f"unsupported warmup record type {kind!r} in {path}")
            count += 1
        return count


def check_input_keys(info, keys):
    """INVALID_ARGUMENT unless `keys` are exactly the signature's inputs (TF Serving's text)."""
    expected, sent = set(info.inputs), set(keys)
    if expected != sent:
        raise invalid_argument(
            f"input size does not match signature: {len(sent)}!={len(expected)} "
            f"len({sorted(sent)}) != len({sorted(expected)}). "
            f"Sent extra: {sorted(sent - expected)}. "
            f"Missing but required: {sorted(expected - sent)}.")


def _to_tensor(key, value, dtype, shape):
    array = np.asarray(value)
    if dtype == tf.string:
        if array.dtype.kind not in ("S", "U", "O"):
            raise invalid_argument(
                f"Expects arg[{key}] to be string but {array.dtype} is provided")
    elif array.dtype.kind in ("S", "U", "O"):
        raise invalid_argument(
            f"Expects arg[{key}] to be {dtype.name} but string is provided")
    elif dtype.is_integer and array.dtype.kind == "f":
        raise invalid_argument(f"Expects arg[{key}] to be {dtype.name} but float is provided")
    if shape is not None:
        if array.ndim != len(shape) or any(
                want is not None and want != got for want, got in zip(shape, array.shape)):
            raise invalid_argument(
                f"Input {key} has shape {list(array.shape)}, but the signature expects "
                f"{[-1 if d is None else d for d in shape]}")
    try:
        return tf.convert_to_tensor(array, dtype=dtype)
    except (TypeError, ValueError) as error:
        raise invalid_argument(f"Input {key} cannot be converted to {dtype.name}: {error}") from None


def serialize_input(input_proto):
    """Serialized tf.Examples of a `tensorflow.serving.Input`, the context merged into each.

    Merging the context first and then the example is what concatenating their wire encodings
    (as TF Serving does) means: a feature in the example wins.
    """
    kind = input_proto.WhichOneof("kind")
    if kind == "example_list":
        examples = [e.SerializeToString() for e in input_proto.example_list.examples]
    elif kind == "example_list_with_context":
        context = input_proto.example_list_with_context.context
        examples = []
        for example in input_proto.example_list_with_context.examples:
            merged = type(example)()
            merged.CopyFrom(context)
            merged.MergeFrom(example)
            examples.append(merged.SerializeToString())
    else:
        raise invalid_argument("Input is empty")
    if not examples:
        raise invalid_argument("Input is empty")
    return np.array(examples, dtype=object)


def run_regress(servable, signature_name, serialized_examples):
    """Regress: one string input, output key `outputs`; returns float values [B]."""
    info = servable.signature(signature_name)
    _check_example_input(info)
    if "outputs" not in info.outputs:
        raise invalid_argument(f"No regression outputs found in SignatureDef: {info.key}")
    if len(info.outputs) != 1:
        raise invalid_argument("Expected one output Tensor.")
    outputs = servable.run(info.key, {next(iter(info.inputs)): serialized_examples})
    values = np.asarray(outputs["outputs"], dtype=np.float32)
    if values.ndim == 2 and values.shape[1] == 1:
        values = values[:, 0]
    if values.ndim != 1 or values.shape[0] != len(serialized_examples):
        raise invalid_argument(
            f"Expected output Tensor shape to be [{len(serialized_examples)}] or "
            f"[{len(serialized_examples)}, 1] but got {list(values.shape)}")
    return info, values


def run_classify(servable, signature_name, serialized_examples):
    """Classify: one string input, outputs `classes` and/or `scores`; returns [[(label, score)]]."""
    info = servable.signature(signature_name)
    _check_example_input(info)
    if not set(info.outputs) & {"classes", "scores"}:
        raise invalid_argument(
            f"Expected classification signature outputs to contain at least one of "
            f"classes or scores, in SignatureDef: {info.key}")
    if len(info.outputs) not in (1, 2) or set(info.outputs) - {"classes", "scores"}:
        raise invalid_argument(
            f"Expected one or two output Tensors, found {len(info.outputs)}")
    outputs = servable.run(info.key, {next(iter(info.inputs)): serialized_examples})
    batch = len(serialized_examples)
    scores = outputs.get("scores")
    classes = outputs.get("classes")
    if scores is not None:
        scores = np.asarray(scores, dtype=np.float32).reshape(batch, -1)
    if classes is not None:
        classes = np.asarray(classes).reshape(batch, -1)
    width = (scores if scores is not None else classes).shape[1]
    results = []
    for row in range(batch):
        results.append([
            (_label(classes[row][i]) if classes is not None else "",
             float(scores[row][i]) if scores is not None else 0.0)
            for i in range(width)])
    return info, results


def _label(value):
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _check_example_input(info):
    if len(info.inputs) != 1:
        raise invalid_argument("Expected one input Tensor.")
    dtype, _ = next(iter(info.inputs.values()))
    if dtype != tf.string:
        raise invalid_argument(
            f"Signature {info.key} takes {dtype.name}, but classify/regress need one string "
            f"input of serialized tf.Examples")


def signature_def_map(servable):
    """The `SignatureDefMap` proto TF Serving returns as `signature_def` metadata."""
    from tensorflow_serving.apis import get_model_metadata_pb2  # pylint: disable=g-import-not-at-top

    proto = get_model_metadata_pb2.SignatureDefMap()
    for key, signature_def in servable.signature_defs.items():
        proto.signature_def[key].CopyFrom(signature_def)
    return proto


__all__ = ["Servable", "SignatureInfo", "read_signature_defs", "serialize_input",
           "check_input_keys",
           "run_regress", "run_classify", "signature_def_map", "DEFAULT_SIGNATURE",
           "WARMUP_FILE"]

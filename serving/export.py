"""Export a multi-task model for TF Serving, and publish it as a served version.

`export_saved_model` writes one SavedModel whose graph is

    serialized tf.Example --parse--> raw features --transform--> model inputs --model--> {task: p}

with the signatures TF Serving users call:

* `serving_default`: input `examples` (string [None], serialized tf.Example) -> `{task: p [None]}`.
* `predict_raw`: one typed tensor per raw feature (shape [None]) -> `{task: p}`, for JSON clients.
* `regress_<task>`: input `inputs` (serialized examples) -> `outputs` (float [None]); its
  method name is `tensorflow/serving/regress`, so TF Serving's Regress API works with or
  without `--enable_signature_method_name_check`.
* `transform_features`: serialized examples -> transformed features (and labels, if given),
  for TFMA's `preprocessing_function_names`.

Only the model's inference `call` is traced: a training-only gradient strategy (DRGrad's router
and updater, arXiv 2510.09643, which act on gradients in `train_step`) cannot appear in the
graph, so serving cost equals the backbone's.

`write_model_version` publishes a SavedModel as `<base>/<model>/<version>/` atomically (built
under a temporary dot-name, then `os.rename`d: TF Serving's poller never sees half a model),
adds `assets.extra/tf_serving_warmup_requests`, and keeps `<base>/models.config` and
`<base>/batching_parameters.txt` current.
"""
import logging
import os
import re
import shutil
import time
import uuid

import numpy as np
import tensorflow as tf

from drgrad.serving import model_config as model_config_lib

_log = logging.getLogger(__name__)

SERVING_DEFAULT = "serving_default"
PREDICT_RAW = "predict_raw"
TRANSFORM_FEATURES = "transform_features"
REGRESS_PREFIX = "regress_"
REGRESS_METHOD = "tensorflow/serving/regress"
WARMUP_RELPATH = os.path.join("assets.extra", "tf_serving_warmup_requests")
# Signature input names become graph placeholder names, so they must be valid op names.
_NAME = re.compile(r"^[A-Za-z0-9.][A-Za-z0-9_.\-]*$")
_MODEL_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")
_RAW_DTYPES = (tf.int64, tf.float32, tf.string)


def _check_feature_spec(spec, what):
    if not isinstance(spec, dict) or not spec:
        raise ValueError(f"{what} must be a non-empty dict of tf.io.FixedLenFeature")
    for name, feature in spec.items():
        if not isinstance(name, str) or not _NAME.match(name):
            raise ValueError(f"{what}: feature name {name!r} is not a valid signature input name "
                             f"(letters, digits, '_', '.', '-')")
        if not isinstance(feature, (tf.io.FixedLenFeature, tf.io.VarLenFeature)):
            raise ValueError(f"{what}[{name!r}] must be a tf.io.FixedLenFeature (or a "
                             f"VarLenFeature: a feature examples may lack), got "
                             f"{type(feature).__name__}")
        if isinstance(feature, tf.io.FixedLenFeature) and list(feature.shape) not in ([], [1]):
            raise ValueError(f"{what}[{name!r}] must be a scalar feature (shape [], or [1] as "
                             f"TFX's SchemaGen infers it), got {list(feature.shape)}")
        if feature.dtype not in _RAW_DTYPES:
            raise ValueError(f"{what}[{name!r}] has dtype {feature.dtype.name}; expected one of "
                             f"{[d.name for d in _RAW_DTYPES]}")


def _scalar_spec(spec):
    """`spec` with every fixed-length feature parsed as one scalar per example (shape []);
    a VarLenFeature (a feature an example may lack) stays one, parsed as a SparseTensor."""
    def scalar_default(feature):
        if feature.default_value is None or list(feature.shape) == []:
            return feature.default_value
        return np.asarray(feature.default_value).reshape(()).item()
    return {name: f if isinstance(f, tf.io.VarLenFeature)
            else tf.io.FixedLenFeature([], f.dtype, scalar_default(f))
            for name, f in spec.items()}


def _present_in_every_row(values):
    """A dense ``[B]`` tensor as the ``[B, 1]`` SparseTensor of a VarLenFeature."""
    rows = tf.range(tf.shape(values, out_type=tf.int64)[0])
    return tf.SparseTensor(indices=tf.stack([rows, tf.zeros_like(rows)], axis=1), values=values,
                           dense_shape=tf.stack([tf.size(rows, out_type=tf.int64), 1]))


def _check_tasks(tasks):
    if isinstance(tasks, str) or not tasks:
        raise ValueError(f"tasks must be a non-empty sequence of names, got {tasks!r}")
    tasks = list(tasks)
    if len(set(tasks)) != len(tasks):
        raise ValueError(f"tasks must be unique, got {tasks}")
    for task in tasks:
        if not isinstance(task, str) or not re.match(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$", task):
            raise ValueError(f"task name {task!r} must be letters, digits, '_', '.', '-'")
        if task.endswith("_bytes"):
            raise ValueError(f"task name {task!r} must not end in '_bytes' (TF Serving's REST "
                             f"API would base64-encode it)")
    return tasks


class _ServingModule(tf.Module):
    """Holds the model and the transform (so their variables and assets are saved)."""

    def __init__(self, model, transform, raw_feature_spec, tasks, label_feature_spec):
        super().__init__(name="drgrad_serving")
        # The model's variables are saved, not the Keras model object: a server needs the
        # signatures only, and a tracked Keras model makes `tf.saved_model.save` also trace
        # every layer's call for Keras's own reloading (docs/SCALING.md). A bound method is not
        # tracked.
        self.model_variables = list(model.variables)
        self._call_model = model.__call__
        # One trace of the model for every signature (each would otherwise trace it again).
        self._model_outputs = tf.function(self._model_outputs_eager)
        if isinstance(transform, tf.Module):
            self.transform_layer = transform   # tracked: TFT vocabularies etc. travel
        self._transform = transform
        # Requests carry one value per example whatever the declared shape; a feature the
        # transform expects as [B, 1] (SchemaGen's inferred shape [1]) is reshaped to it.
        features = {**raw_feature_spec, **(label_feature_spec or {})}
        self._one_column = {name for name, f in features.items()
                            if isinstance(f, tf.io.FixedLenFeature) and list(f.shape) == [1]}
        self._optional = {name for name, f in features.items()
                          if isinstance(f, tf.io.VarLenFeature)}
        self._raw_spec = _scalar_spec(raw_feature_spec)
        self._label_spec = _scalar_spec(label_feature_spec or {})
        self._tasks = list(tasks)

    def transformed(self, raw):
        if self._transform is None:
            return dict(raw)
        return self._transform({name: self._as_declared(name, value)
                                for name, value in raw.items()})

    def _as_declared(self, name, value):
        """One raw feature in the form the transform was traced with."""
        if name in self._one_column:
            return tf.reshape(value, [-1, 1])
        if name in self._optional and not isinstance(value, tf.SparseTensor):
            return _present_in_every_row(value)  # predict_raw: every request row has it
        return value

    def _model_outputs_eager(self, transformed):
        return self._call_model(transformed, training=False)

    def predict(self, raw):
        outputs = self._model_outputs(dict(self.transformed(raw)))
        if not isinstance(outputs, dict) or set(outputs) != set(self._tasks):
            got = sorted(outputs) if isinstance(outputs, dict) else type(outputs).__name__
            raise ValueError(f"the model must return {{task: probability}} for tasks "
                             f"{self._tasks}, got {got}")
        return {t: tf.reshape(tf.cast(outputs[t], tf.float32), [-1]) for t in self._tasks}

    def parse(self, examples, with_labels=False):
        spec = dict(self._raw_spec)
        if with_labels:
            spec.update(self._label_spec)
        return tf.io.parse_example(examples, spec)

    def signatures(self):
        examples_spec = tf.TensorSpec([None], tf.string, name="examples")
        raw_specs = {name: tf.TensorSpec([None], f.dtype, name=name)
                     for name, f in self._raw_spec.items()}

        @tf.function(input_signature=[examples_spec])
        def serve_examples(examples):
            return self.predict(self.parse(examples))

        @tf.function(input_signature=[raw_specs])
        def serve_raw(features):
            return self.predict(features)

        @tf.function(input_signature=[examples_spec])
        def transform_features(examples):
            raw = self.parse(examples, with_labels=True)
            transformed = dict(self.transformed({k: raw[k] for k in self._raw_spec}))
            for label in self._label_spec:
                transformed.setdefault(label, raw[label])
            return transformed

        signatures = {
            SERVING_DEFAULT: serve_examples.get_concrete_function(),
            PREDICT_RAW: serve_raw.get_concrete_function(),
            TRANSFORM_FEATURES: transform_features.get_concrete_function(),
        }
        for task in self._tasks:
            @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
            def regress(inputs, task=task):
                return {"outputs": self.predict(self.parse(inputs))[task]}
            signatures[REGRESS_PREFIX + task] = regress.get_concrete_function()
        return signatures


def export_saved_model(model, transform, raw_feature_spec, tasks, export_dir,
                       label_feature_spec=None):
    """Writes the serving SavedModel (see the module docstring for its signatures).

    Args:
      model: a tf.keras model taking the transformed-features dict and returning
        `{task: probability [B]}` in inference mode (`training=False`).
      transform: callable (a TFT `transform_features_layer()` or a Keras preprocessing layer)
        mapping raw feature tensors to model inputs; None when the model takes raw features.
        A `tf.Module` transform is tracked, so its assets (vocabularies) are saved too.
      raw_feature_spec: `{name: tf.io.FixedLenFeature([] or [1], dtype[, default_value])}` of
        the raw features a request carries (labels excluded), one value per example; dtype
        int64, float32 or string.
      tasks: task names; the outputs of every signature, primary first.
      export_dir: where to write; must not exist yet (or be empty).
      label_feature_spec: optional `{label: FixedLenFeature}` parsed by `transform_features`
        (for TFMA), passed through untransformed when the transform does not output it.

    Returns:
      export_dir.
    """
    if not isinstance(model, tf.Module):
        raise ValueError(f"model must be a tf.keras model, got {type(model).__name__}")
    if transform is not None and not callable(transform):
        raise ValueError(f"transform must be callable or None, got {type(transform).__name__}")
    _check_feature_spec(raw_feature_spec, "raw_feature_spec")
    if label_feature_spec:
        _check_feature_spec(label_feature_spec, "label_feature_spec")
        overlap = set(label_feature_spec) & set(raw_feature_spec)
        if overlap:
            raise ValueError(f"labels {sorted(overlap)} are also in raw_feature_spec")
    tasks = _check_tasks(tasks)
    if os.path.exists(export_dir) and os.listdir(export_dir):
        raise FileExistsError(f"export directory {export_dir} is not empty")

    module = _ServingModule(model, transform, raw_feature_spec, tasks, label_feature_spec)
    signatures = module.signatures()
    tf.saved_model.save(module, export_dir, signatures=signatures)
    _set_method_names(export_dir, {REGRESS_PREFIX + t: REGRESS_METHOD for t in tasks})
    return export_dir


def _set_method_names(export_dir, method_names):
    """TF2 writes every signature as `predict`; Regress-only servers check the method name."""
    from tensorflow.core.protobuf import saved_model_pb2  # pylint: disable=g-import-not-at-top

    path = os.path.join(export_dir, "saved_model.pb")
    proto = saved_model_pb2.SavedModel()
    with open(path, "rb") as f:
        proto.ParseFromString(f.read())
    for meta_graph in proto.meta_graphs:
        for key, method in method_names.items():
            if key in meta_graph.signature_def:
                meta_graph.signature_def[key].method_name = method
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(proto.SerializeToString())
    os.replace(tmp, path)


# --------------------------------------------------------------------------------- versions
def _signature_inputs(saved_model_dir):
    """`{signature: {input: tf.DType}}` read from saved_model.pb (no loading)."""
    from drgrad.serving.server.servable import read_signature_defs  # pylint: disable=g-import-not-at-top

    return {key: {name: tf.dtypes.as_dtype(info.dtype) for name, info in sig.inputs.items()}
            for key, sig in read_signature_defs(saved_model_dir).items()}


def _to_example(row, dtypes):
    example = tf.train.Example()
    for name, value in row.items():
        dtype = dtypes.get(name)
        feature = example.features.feature[name]
        if dtype == tf.string or (dtype is None and isinstance(value, (str, bytes))):
            feature.bytes_list.value.append(value if isinstance(value, bytes)
                                            else str(value).encode("utf-8"))
        elif dtype == tf.int64 or (dtype is None and isinstance(value, int)):
            feature.int64_list.value.append(int(value))
        else:
            feature.float_list.value.append(float(value))
    return example.SerializeToString()


def _default_row(dtypes):
    return {name: ("" if d == tf.string else 0 if d.is_integer else 0.0)
            for name, d in dtypes.items()}


def write_warmup_requests(saved_model_dir, model_name, warmup_examples=None, max_records=8):
    """Writes `assets.extra/tf_serving_warmup_requests` into a SavedModel directory.

    Args:
      saved_model_dir: the version directory being built.
      model_name: model name recorded in the requests.
      warmup_examples: rows (`{raw feature: value}`) or serialized tf.Examples; None makes one
        row of zeros / empty strings from the `predict_raw` signature.
      max_records: cap on the number of requests written.

    Returns:
      The number of PredictionLog records written (0 when nothing could be built).
    """
    from tensorflow_serving.apis import model_pb2  # pylint: disable=g-import-not-at-top
    from tensorflow_serving.apis import predict_pb2  # pylint: disable=g-import-not-at-top
    from tensorflow_serving.apis import prediction_log_pb2  # pylint: disable=g-import-not-at-top

    inputs = _signature_inputs(saved_model_dir)
    raw_dtypes = inputs.get(PREDICT_RAW, {})
    if warmup_examples is None:
        if not raw_dtypes:
            _log.warning("no warmup examples and no %s signature: no warmup file", PREDICT_RAW)
            return 0
        warmup_examples = [_default_row(raw_dtypes)]
    warmup_examples = list(warmup_examples)
    if not warmup_examples:
        raise ValueError("warmup_examples is empty")
    rows = [r for r in warmup_examples if isinstance(r, dict)]
    serialized = [r if isinstance(r, bytes) else _to_example(r, raw_dtypes)
                  for r in warmup_examples]

    requests = []
    if inputs.get(SERVING_DEFAULT) == {"examples": tf.string}:
        for batch in (serialized[:1], serialized):
            requests.append((SERVING_DEFAULT, {"examples": batch}))
    if rows and raw_dtypes and all(set(r) >= set(raw_dtypes) for r in rows):
        columns = {name: [r[name] for r in rows] for name in raw_dtypes}
        requests.append((PREDICT_RAW, columns))
    if not requests:
        _log.warning("warmup examples fit no signature of %s: no warmup file", saved_model_dir)
        return 0
    path = os.path.join(saved_model_dir, WARMUP_RELPATH)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    written = 0
    with tf.io.TFRecordWriter(path) as writer:
        for signature, columns in requests[:max_records]:
            request = predict_pb2.PredictRequest(
                model_spec=model_pb2.ModelSpec(name=model_name, signature_name=signature))
            for name, values in columns.items():
                dtype = inputs[signature][name]
                request.inputs[name].CopyFrom(tf.make_tensor_proto(
                    [v.encode("utf-8") if isinstance(v, str) else v for v in values]
                    if dtype == tf.string else values, dtype=dtype))
            log = prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())
            written += 1
    return written


def write_model_version(base_dir, model_name, export_fn_or_saved_model_dir, version=None,
                        warmup_examples=None, num_latest=None, labels=None, batching=None):
    """Publishes a SavedModel as `<base_dir>/<model_name>/<version>/`, atomically.

    Args:
      base_dir: serving base directory (holds `models.config`, `batching_parameters.txt`).
      model_name: served model name.
      export_fn_or_saved_model_dir: `fn(path)` that writes a SavedModel at `path` (for example
        `lambda p: export_saved_model(model, transform, spec, tasks, p)`), or the directory of
        an existing SavedModel to copy.
      version: int version; default: the current UNIX time (as TFX's Pusher), or one more than
        the newest existing version if that is larger.
      warmup_examples: see `write_warmup_requests`.
      num_latest: set the model's `latest { num_versions }` policy (default policy: latest 1).
      labels: `{label: version}` to set in `models.config` (replaces the model's labels).
      batching: `BatchingParameters` to write; by default the file is written only if missing.

    Returns:
      The final version directory.
    """
    if not isinstance(model_name, str) or not _MODEL_NAME.match(model_name):
        raise ValueError(f"model name {model_name!r} must be letters, digits, '_', '.', '-' and "
                         f"not start with '.'")
    source_dir = None
    if isinstance(export_fn_or_saved_model_dir, (str, os.PathLike)):
        source_dir = os.fspath(export_fn_or_saved_model_dir)
        if not os.path.isfile(os.path.join(source_dir, "saved_model.pb")):
            raise FileNotFoundError(f"{source_dir} is not a SavedModel directory "
                                    f"(no saved_model.pb)")
    elif not callable(export_fn_or_saved_model_dir):
        raise ValueError("export_fn_or_saved_model_dir must be a callable or a SavedModel path")
    if version is not None and (isinstance(version, bool) or not isinstance(version, int)
                                or version < 0):
        raise ValueError(f"version must be a non-negative int, got {version!r}")

    base_dir = os.path.abspath(base_dir)
    model_dir = os.path.join(base_dir, model_name)
    os.makedirs(model_dir, exist_ok=True)
    if version is None:
        existing = [int(n) for n in os.listdir(model_dir) if n.isdigit()]
        version = max([int(time.time())] + [v + 1 for v in existing])
    final_dir = os.path.join(model_dir, str(version))
    if os.path.exists(final_dir):
        raise FileExistsError(f"version {version} of {model_name} already exists: {final_dir}")

    tmp_dir = os.path.join(model_dir, f".{version}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        if source_dir is not None:
            shutil.copytree(source_dir, tmp_dir)
        else:
            export_fn_or_saved_model_dir(tmp_dir)
            if not os.path.isfile(os.path.join(tmp_dir, "saved_model.pb")):
                raise ValueError("the export function wrote no saved_model.pb")
        write_warmup_requests(tmp_dir, model_name, warmup_examples)
        os.rename(tmp_dir, final_dir)
    except BaseException:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise

    config_path = os.path.join(base_dir, model_config_lib.MODELS_CONFIG)
    config = (model_config_lib.read_server_config(config_path) if os.path.isfile(config_path)
              else model_config_lib.new_server_config())
    model_config_lib.upsert_model(config, model_name, model_dir, num_latest=num_latest,
                                  labels=labels)
    model_config_lib.write_server_config(config_path, config)
    batching_path = os.path.join(base_dir, model_config_lib.BATCHING_PARAMETERS)
    if batching is not None or not os.path.isfile(batching_path):
        model_config_lib.write_text_atomically(
            batching_path, (batching or model_config_lib.BatchingParameters()).to_text())
    return final_dir


def graph_ops(export_dir, signature_keys=None):
    """`[(function, node name, op type)]` of every node a serving signature can execute.

    Walks from the signatures' output tensors back through the MetaGraph's nodes and into
    every function they call (recursively), so checkpoint save/restore functions and other
    unused library functions are excluded. `function` is "" for top-level graph nodes.

    Args:
      export_dir: SavedModel directory.
      signature_keys: signatures to walk; default: all except `__saved_model_init_op`.
    """
    from tensorflow.core.protobuf import saved_model_pb2  # pylint: disable=g-import-not-at-top

    proto = saved_model_pb2.SavedModel()
    with open(os.path.join(export_dir, "saved_model.pb"), "rb") as f:
        proto.ParseFromString(f.read())
    meta_graph = next(m for m in proto.meta_graphs if "serve" in m.meta_info_def.tags)
    graph = meta_graph.graph_def
    nodes = {node.name: node for node in graph.node}
    functions = {fn.signature.name: fn for fn in graph.library.function}
    keys = signature_keys or [k for k in meta_graph.signature_def
                              if k != "__saved_model_init_op"]

    def called(node):
        for attr in node.attr.values():
            if attr.func.name:
                yield attr.func.name
            for fn in attr.list.func:
                yield fn.name

    ops, seen_nodes, seen_functions = [], set(), set()
    pending_functions = []
    stack = [info.name.split(":")[0].lstrip("^")
             for key in keys for info in meta_graph.signature_def[key].outputs.values()]
    while stack:
        name = stack.pop()
        if name in seen_nodes or name not in nodes:
            continue
        seen_nodes.add(name)
        node = nodes[name]
        ops.append(("", node.name, node.op))
        stack.extend(i.split(":")[0].lstrip("^") for i in node.input)
        pending_functions.extend(called(node))
    while pending_functions:
        fn_name = pending_functions.pop()
        if fn_name in seen_functions or fn_name not in functions:
            continue
        seen_functions.add(fn_name)
        for node in functions[fn_name].node_def:
            ops.append((fn_name, node.name, node.op))
            pending_functions.extend(called(node))
            if node.op in functions:           # a function called as an op
                pending_functions.append(node.op)
    return ops

"""`models.config` and `batching_parameters.txt`: the two files TF Serving reads beside models.

`models.config` is a `ModelServerConfig` text proto (`--model_config_file`):

    model_config_list {
      config {
        name: "census"
        base_path: "/srv/models/census"
        model_platform: "tensorflow"
        model_version_policy { latest { num_versions: 1 } }
        version_labels { key: "stable" value: 1700000000 }
      }
    }

`batching_parameters.txt` is a `BatchingParameters` text proto (`--batching_parameters_file`),
every field wrapped (`max_batch_size { value: 256 }`). Both the official server and our local one
(`drgrad serve`) read these files, so a base directory written by `write_model_version` serves
the same way in both.

This module imports only protobuf and the tensorflow-serving-api protos, never TensorFlow.
"""
import dataclasses
import os
import re
import tempfile

from google.protobuf import text_format

MODELS_CONFIG = "models.config"
BATCHING_PARAMETERS = "batching_parameters.txt"


def _config_pb2():
    from tensorflow_serving.config import model_server_config_pb2  # pylint: disable=g-import-not-at-top
    return model_server_config_pb2


def new_server_config():
    """An empty `ModelServerConfig` with a `model_config_list`."""
    config = _config_pb2().ModelServerConfig()
    config.model_config_list.SetInParent()
    return config


def parse_server_config(text, config_dir=None):
    """Parses a `ModelServerConfig` text proto; relative base paths resolve against config_dir."""
    config = _config_pb2().ModelServerConfig()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as error:
        raise ValueError(f"invalid model server config: {error}") from None
    validate_server_config(config)
    if config_dir is not None:
        for model in config.model_config_list.config:
            if not os.path.isabs(model.base_path):
                model.base_path = os.path.normpath(os.path.join(config_dir, model.base_path))
    return config


def validate_server_config(config):
    """Raises ValueError unless the config is a model_config_list of uniquely named models."""
    if config.WhichOneof("config") != "model_config_list":
        raise ValueError("only model_config_list server configs are supported")
    names = set()
    for model in config.model_config_list.config:
        if not model.name:
            raise ValueError("every model config needs a name")
        if model.name in names:
            raise ValueError(f"model {model.name!r} is configured twice")
        if not model.base_path:
            raise ValueError(f"model {model.name!r} has no base_path")
        if model.model_platform not in ("", "tensorflow"):
            raise ValueError(f"model {model.name!r}: unsupported model_platform "
                             f"{model.model_platform!r} (only 'tensorflow')")
        names.add(model.name)
        policy = model.model_version_policy.WhichOneof("policy_choice")
        if policy == "latest" and model.model_version_policy.latest.num_versions < 0:
            raise ValueError(f"model {model.name!r}: latest.num_versions must be >= 0")
        if policy == "specific" and not model.model_version_policy.specific.versions:
            raise ValueError(f"model {model.name!r}: specific policy lists no versions")
        for label, version in model.version_labels.items():
            if not re.fullmatch(r"[A-Za-z0-9_]+", label):
                raise ValueError(f"model {model.name!r}: label {label!r} must match [A-Za-z0-9_]+")
            if version < 0:
                raise ValueError(f"model {model.name!r}: label {label!r} has negative version")


def read_server_config(path):
    """Reads `models.config`."""
    with open(path, encoding="utf-8") as f:
        return parse_server_config(f.read(), config_dir=os.path.dirname(os.path.abspath(path)))


def write_text_atomically(path, text):
    """Writes a small text file via a temporary file and `os.replace` (readers never see half)."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def write_server_config(path, config):
    validate_server_config(config)
    write_text_atomically(path, text_format.MessageToString(config))


def upsert_model(config, name, base_path, num_latest=None, specific_versions=None, labels=None):
    """Adds or updates one model entry; unspecified policy/labels keep their current values.

    A new entry gets TF Serving's default policy, `latest { num_versions: 1 }`.
    """
    if num_latest is not None and specific_versions is not None:
        raise ValueError("give num_latest or specific_versions, not both")
    entries = config.model_config_list.config
    entry = next((m for m in entries if m.name == name), None)
    if entry is None:
        entry = entries.add(name=name, model_platform="tensorflow")
        entry.model_version_policy.latest.num_versions = 1
    entry.base_path = base_path
    if num_latest is not None:
        if int(num_latest) < 1:
            raise ValueError(f"num_latest must be >= 1, got {num_latest}")
        entry.model_version_policy.latest.num_versions = int(num_latest)
    if specific_versions is not None:
        versions = sorted({int(v) for v in specific_versions})
        if not versions:
            raise ValueError("specific_versions must list at least one version")
        entry.model_version_policy.specific.versions[:] = versions
    if labels is not None:
        entry.version_labels.clear()
        for label, version in labels.items():
            entry.version_labels[label] = int(version)
    validate_server_config(config)
    return entry


@dataclasses.dataclass
class BatchingParameters:
    """TF Serving's batching parameters (a subset; see TF Serving's batching guide).

    Attributes:
      max_batch_size: most rows merged into one call; a larger request runs on its own.
      batch_timeout_micros: how long an open batch waits for more requests. 0 means no wait:
        a batch closes as soon as a batch thread is free, and gathers what queued meanwhile.
      max_enqueued_batches: queue bound, in batches; past it requests fail RESOURCE_EXHAUSTED.
      num_batch_threads: batches computed concurrently.
    """
    max_batch_size: int = 256
    batch_timeout_micros: int = 0
    max_enqueued_batches: int = 64
    num_batch_threads: int = 2

    def __post_init__(self):
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{field.name} must be an int, got {value!r}")
            low = 0 if field.name == "batch_timeout_micros" else 1
            if value < low:
                raise ValueError(f"{field.name} must be >= {low}, got {value}")

    def to_text(self):
        return "".join(f"{f.name} {{ value: {getattr(self, f.name)} }}\n"
                       for f in dataclasses.fields(self))

    @classmethod
    def from_text(cls, text):
        """Parses the wrapped-field text proto; fields TF Serving knows but we don't use are kept
        out (`allowed_batch_sizes`, `pad_variable_length_inputs`, ...)."""
        known = {f.name for f in dataclasses.fields(cls)}
        values = {}
        body = re.sub(r"#[^\n]*", "", text)
        for name, value in re.findall(r"(\w+)\s*:?\s*\{\s*value\s*:\s*(-?\d+)\s*\}", body):
            if name in known:
                values[name] = int(value)
        leftover = re.sub(r"(\w+)\s*:?\s*\{\s*value\s*:\s*[^}]*\}", "", body)
        leftover = re.sub(r"\w+\s*:\s*\S+", "", leftover).strip()
        if leftover:
            raise ValueError(f"cannot parse batching parameters near {leftover[:40]!r}")
        return cls(**values)

    @classmethod
    def read(cls, path):
        with open(path, encoding="utf-8") as f:
            return cls.from_text(f.read())


@dataclasses.dataclass
class ServerLimits:
    """What `drgrad serve` accepts per request and connection, checked before any work is done.

    Attributes:
      max_body_bytes: request body as sent (REST) or message size (gRPC).
      max_decompressed_bytes: REST body after `Content-Encoding` gzip/deflate, inflated in
        chunks and refused as soon as it passes this (a 200 KB bomb never becomes 200 MB).
      max_batch_rows: rows (dim 0 of each input, or examples) in one request.
      max_json_depth: nesting of arrays/objects in a REST body, scanned before parsing.
      max_tensor_elements: elements of one input tensor, from the declared shape (gRPC
        TensorProto) or the JSON value, before any array is allocated.
      max_inflight_requests: requests admitted at once; beyond it the server answers 429 /
        RESOURCE_EXHAUSTED at once, with a retry hint, instead of queueing.
      retry_after_seconds: the `Retry-After` hint sent with those refusals.
      idle_timeout_seconds: a connection with no complete request header for this long
        (idle keep-alive or a half-sent header) is closed; also gRPC's max connection idle.
      body_timeout_seconds: time to receive a REST body once its header arrived.
      inference_timeout_seconds: per-request deadline for conversion + model call (504 /
        DEADLINE_EXCEEDED).
      parse_threads: threads that parse JSON and convert tensors, off the event loop.
      max_queue_wait_seconds: once `admission.DEFAULT_MIN_INFLIGHT` requests are in flight, a
        request whose predicted wait (in flight ÷ measured service rate) is longer is refused
        at arrival (`serving.server.admission`). Generous (5x the 64-client p99 goal of issue
        17), so a burst a slower moment cannot absorb at once is queued, not refused; what
        would wait longer has little chance of a useful answer.
    """
    max_body_bytes: int = 64 << 20
    max_decompressed_bytes: int = 64 << 20
    max_batch_rows: int = 16384
    max_json_depth: int = 32
    max_tensor_elements: int = 1 << 24
    max_inflight_requests: int = 256
    retry_after_seconds: int = 1
    idle_timeout_seconds: float = 15.0
    body_timeout_seconds: float = 30.0
    inference_timeout_seconds: float = 30.0
    parse_threads: int = 2
    max_queue_wait_seconds: float = 0.25

    def __post_init__(self):
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ValueError(f"{field.name} must be a positive number, got {value!r}")
            if field.type is int and not isinstance(value, int):
                raise ValueError(f"{field.name} must be an int, got {value!r}")

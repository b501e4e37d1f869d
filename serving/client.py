"""Clients for TF Serving's REST and gRPC APIs (the official server or `drgrad serve`).

    client = connect("grpc://127.0.0.1:8500", model="census")
    client.predict([{"age": 39.0, "education": "Bachelors", ...}])   # {task: [p, ...]}
    client.status(); client.metadata()

`predict` sends raw feature rows to the `predict_raw` signature, coerced to the dtypes the
server's metadata declares (so a JSON `39` reaches a float feature as 39.0), and returns one
list of probabilities per output. Both clients return status/metadata as the REST JSON
documents (gRPC responses are converted with the proto3 JSON mapping), so callers can switch
transports freely. The gRPC channel raises the 4 MB default message limits (serving#1382).
"""
import base64
import http.client
import json
import time
import urllib.parse

PREDICT_RAW = "predict_raw"
MAX_MESSAGE_BYTES = 1 << 30


def parse_server(url):
    """`rest://host:port` | `grpc://host:port` (also `http://`) -> (scheme, host, port)."""
    parsed = urllib.parse.urlparse(url)
    scheme = {"http": "rest"}.get(parsed.scheme, parsed.scheme)
    if scheme not in ("rest", "grpc") or not parsed.hostname or parsed.port is None:
        raise ValueError(f"server must look like rest://host:port or grpc://host:port, "
                         f"got {url!r}")
    return scheme, parsed.hostname, parsed.port


def connect(url, model, timeout=30.0):
    """A `RestClient` or `GrpcClient` for a server URL."""
    scheme, host, port = parse_server(url)
    cls = RestClient if scheme == "rest" else GrpcClient
    return cls(host, port, model, timeout=timeout)


class ServingClientError(RuntimeError):
    """A request the server refused; `.code` is the HTTP status or gRPC code name."""

    def __init__(self, code, message):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def _coerce(name, value, dtype):
    """A row value as the signature dtype expects it (DT_FLOAT/DT_INT64/DT_STRING/...)."""
    if value is None:
        raise ValueError(f"feature {name!r} is null")
    if dtype == "DT_STRING":
        return value if isinstance(value, (str, bytes)) else str(value)
    if dtype in ("DT_INT64", "DT_INT32"):
        if isinstance(value, float) and not value.is_integer():
            raise ValueError(f"feature {name!r} must be an integer, got {value!r}")
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ValueError(f"feature {name!r} must be an integer, got {value!r}") from None
    if dtype in ("DT_FLOAT", "DT_DOUBLE"):
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ValueError(f"feature {name!r} must be a number, got {value!r}") from None
    return value


class _Client:
    def __init__(self, model, signature):
        if not model:
            raise ValueError("model name is required")
        self.model = model
        self.signature = signature
        self._input_dtypes = None

    def input_dtypes(self):
        """`{input: "DT_..."}` of the predict signature, read once from the metadata."""
        if self._input_dtypes is None:
            signatures = self.metadata()["metadata"]["signature_def"]["signature_def"]
            if self.signature not in signatures:
                raise ValueError(f"model {self.model!r} has no signature {self.signature!r}; "
                                 f"it has {sorted(signatures)}")
            self._input_dtypes = {k: v["dtype"]
                                  for k, v in signatures[self.signature]["inputs"].items()}
        return self._input_dtypes

    def _columns(self, rows):
        rows = list(rows)
        if not rows:
            raise ValueError("no rows to predict")
        dtypes = self.input_dtypes()
        columns = {name: [] for name in dtypes}
        for index, row in enumerate(rows):
            if not isinstance(row, dict):
                raise ValueError(f"row {index} is not an object")
            missing = [n for n in dtypes if n not in row]
            if missing:
                raise ValueError(f"row {index} is missing feature(s) {missing}")
            for name, dtype in dtypes.items():
                columns[name].append(_coerce(name, row[name], dtype))
        return columns, dtypes

    def wait_until_available(self, timeout=60.0, interval=0.1):
        """Polls status until a version is AVAILABLE; returns the status document."""
        deadline = time.monotonic() + timeout
        last = None
        while True:
            try:
                status = self.status()
                states = [v["state"] for v in status.get("model_version_status", [])]
                if "AVAILABLE" in states:
                    return status
                last = states
            except (ServingClientError, OSError) as error:
                last = error
            if time.monotonic() > deadline:
                raise TimeoutError(f"model {self.model!r} not available after {timeout}s "
                                   f"(last: {last})")
            time.sleep(interval)


class RestClient(_Client):
    """REST client over one keep-alive HTTP connection (not thread-safe: one per thread)."""

    def __init__(self, host, port, model, timeout=30.0, signature=PREDICT_RAW):
        super().__init__(model, signature)
        self.host, self.port, self.timeout = host, port, timeout
        self._conn = None

    def _request(self, method, path, body=None):
        payload = None if body is None else json.dumps(body).encode("utf-8")
        for attempt in range(2):
            if self._conn is None:
                self._conn = http.client.HTTPConnection(self.host, self.port,
                                                        timeout=self.timeout)
            try:
                self._conn.request(method, path, body=payload,
                                   headers={"Content-Type": "application/json"})
                response = self._conn.getresponse()
                data = response.read()
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.close()
                if attempt:
                    raise
        document = json.loads(data.decode("utf-8")) if data else {}
        if response.status != 200:
            raise ServingClientError(response.status, document.get("error", data[:200]))
        return document

    def _path(self, suffix="", version=None, label=None):
        path = f"/v1/models/{urllib.parse.quote(self.model, safe='')}"
        if version is not None:
            path += f"/versions/{int(version)}"
        elif label is not None:
            path += f"/labels/{urllib.parse.quote(label, safe='')}"
        return path + suffix

    def status(self, version=None, label=None):
        return self._request("GET", self._path(version=version, label=label))

    def metadata(self, version=None, label=None):
        return self._request("GET", self._path("/metadata", version, label))

    def predict(self, rows, version=None, label=None):
        """Raw feature rows -> `{output: [value per row]}` via the columnar format."""
        columns, dtypes = self._columns(rows)
        inputs = {name: [{"b64": base64.b64encode(v).decode("ascii")}
                         if isinstance(v, bytes) else v for v in values]
                  for name, values in columns.items()}
        document = self._request("POST", self._path(":predict", version, label),
                                 {"signature_name": self.signature, "inputs": inputs})
        outputs = document["outputs"]
        if not isinstance(outputs, dict):   # a single-output signature
            outputs = {"outputs": outputs}
        return {k: list(v) for k, v in outputs.items()}

    def predict_json(self, body, version=None, label=None, verb="predict"):
        """Posts a raw TF Serving request document; returns the response document."""
        return self._request("POST", self._path(f":{verb}", version, label), body)

    def close(self):
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class GrpcClient(_Client):
    """gRPC client (thread-safe) with raised message size limits."""

    def __init__(self, host, port, model, timeout=30.0, signature=PREDICT_RAW):
        import grpc  # pylint: disable=g-import-not-at-top
        from tensorflow_serving.apis import model_service_pb2_grpc  # pylint: disable=g-import-not-at-top
        from tensorflow_serving.apis import prediction_service_pb2_grpc  # pylint: disable=g-import-not-at-top

        super().__init__(model, signature)
        self.timeout = timeout
        self.channel = grpc.insecure_channel(f"{host}:{port}", options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ])
        self.prediction = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)
        self.models = model_service_pb2_grpc.ModelServiceStub(self.channel)

    def _spec(self, spec, version=None, label=None, signature=None):
        spec.name = self.model
        if version is not None:
            spec.version.value = int(version)
        elif label is not None:
            spec.version_label = label
        if signature is not None:
            spec.signature_name = signature

    def _call(self, method, request):
        import grpc  # pylint: disable=g-import-not-at-top

        try:
            return method(request, timeout=self.timeout)
        except grpc.RpcError as error:
            raise ServingClientError(error.code().name, error.details()) from None

    def status(self, version=None, label=None):
        from google.protobuf import json_format  # pylint: disable=g-import-not-at-top
        from tensorflow_serving.apis import get_model_status_pb2  # pylint: disable=g-import-not-at-top

        request = get_model_status_pb2.GetModelStatusRequest()
        self._spec(request.model_spec, version, label)
        response = self._call(self.models.GetModelStatus, request)
        return json_format.MessageToDict(response, preserving_proto_field_name=True,
                                         including_default_value_fields=True)

    def metadata(self, version=None, label=None):
        from google.protobuf import json_format  # pylint: disable=g-import-not-at-top
        from tensorflow_serving.apis import get_model_metadata_pb2  # pylint: disable=g-import-not-at-top

        request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        self._spec(request.model_spec, version, label)
        response = self._call(self.prediction.GetModelMetadata, request)
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        response.metadata["signature_def"].Unpack(signature_map)
        return {
            "model_spec": {"name": response.model_spec.name, "signature_name": "",
                           "version": str(response.model_spec.version.value)},
            "metadata": {"signature_def": json_format.MessageToDict(
                signature_map, preserving_proto_field_name=True,
                including_default_value_fields=True)},
        }

    def predict_response(self, rows, version=None, label=None):
        """The raw `PredictResponse` for raw feature rows (its model_spec names the version)."""
        import numpy as np  # pylint: disable=g-import-not-at-top
        from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2  # pylint: disable=g-import-not-at-top
        from tensorflow_serving.apis import predict_pb2  # pylint: disable=g-import-not-at-top

        columns, dtypes = self._columns(rows)
        request = predict_pb2.PredictRequest()
        self._spec(request.model_spec, version, label, self.signature)
        for name, values in columns.items():
            dtype = types_pb2.DataType.Value(dtypes[name])
            tensor = tensor_pb2.TensorProto(
                dtype=dtype, tensor_shape=tensor_shape_pb2.TensorShapeProto(
                    dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=len(values))]))
            if dtype == types_pb2.DT_STRING:
                tensor.string_val.extend(v if isinstance(v, bytes) else v.encode("utf-8")
                                         for v in values)
            elif dtype == types_pb2.DT_FLOAT:
                tensor.tensor_content = np.asarray(values, np.float32).tobytes()
            elif dtype == types_pb2.DT_INT64:
                tensor.tensor_content = np.asarray(values, np.int64).tobytes()
            else:
                raise ValueError(f"input {name!r} has unsupported dtype {dtypes[name]}")
            request.inputs[name].CopyFrom(tensor)
        return self._call(self.prediction.Predict, request)

    def predict(self, rows, version=None, label=None):
        """Raw feature rows -> `{output: [value per row]}`."""
        response = self.predict_response(rows, version, label)
        return {k: _tensor_values(v) for k, v in response.outputs.items()}

    def close(self):
        self.channel.close()


def _tensor_values(tensor):
    import numpy as np  # pylint: disable=g-import-not-at-top

    if tensor.tensor_content:
        dtype = {1: np.float32, 2: np.float64, 9: np.int64, 3: np.int32}[tensor.dtype]
        return np.frombuffer(tensor.tensor_content, dtype=dtype).tolist()
    size = int(np.prod([d.size for d in tensor.tensor_shape.dim]))
    for field in ("float_val", "double_val", "int64_val", "int_val"):
        values = list(getattr(tensor, field))
        if values:
            return values * size if len(values) == 1 and size > 1 else values
    return [v.decode("utf-8", "replace") for v in tensor.string_val]

"""Property-based fuzzing of `drgrad serve`'s REST and gRPC surfaces (issue 17), with
hypothesis, derandomized so CI runs the same cases every time.

Properties: a REST reply is 200, or a 4xx whose body is exactly `{"error": <str>}` (never a
5xx, never plain text); a gRPC reply is OK or one of INVALID_ARGUMENT, NOT_FOUND,
RESOURCE_EXHAUSTED, DEADLINE_EXCEEDED, FAILED_PRECONDITION (never INTERNAL / UNKNOWN); and the
server is still up afterwards. Every case the hostile-user run of the issue found is an
explicit `@example`.

Cases run: 4,500 generated (REST documents 1,500, REST paths/methods 500, REST raw bodies 400,
gRPC tensors 1,500, gRPC raw bytes 600) plus 15 explicit examples, about a minute on 2 cores;
`test_cases_run` checks the count and prints it.
"""
import gzip
import http.client
import json
import string

import grpc
from hypothesis import example, given, settings
from hypothesis import strategies as st
import pytest
from tensorflow.core.framework import tensor_pb2
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc

import serving_fixtures as fx
from drgrad.serving.export import write_model_version
from drgrad.serving.model_config import ServerLimits

ALLOWED_GRPC = {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND,
                grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.DEADLINE_EXCEEDED,
                grpc.StatusCode.FAILED_PRECONDITION}
COUNTS = {"rest_documents": 1500, "rest_paths": 500, "rest_bodies": 400, "grpc_tensors": 1500,
          "grpc_bytes": 600}
RUN = dict.fromkeys(COUNTS, 0)
MODELS = ("half_plus_two", "tiny", "missing", "")
SIGNATURES = ("", "serving_default", "predict_raw", "regress_x", "classify_x", "multi",
              "transform_features", "nope")
# HandleReloadConfigRequest is left out: bytes that happen to parse as an empty model list
# are a valid admin request that unloads every model.
METHODS = ["/tensorflow.serving.PredictionService/" + m for m in (
    "Predict", "Classify", "Regress", "MultiInference", "GetModelMetadata")] + [
    "/tensorflow.serving.ModelService/GetModelStatus"]


def nested(value, depth):
    for _ in range(depth):
        value = [value]
    return value


def fuzz_settings(key):
    return settings(max_examples=COUNTS[key], deadline=None, derandomize=True, database=None)


@pytest.fixture(scope="module")
def server():
    base = fx.new_base_dir()
    write_model_version(base, "half_plus_two", fx.half_plus_two_export(), version=3)
    write_model_version(base, "tiny", fx.tiny_export()[0], version=1)
    limits = ServerLimits(max_body_bytes=1 << 20, max_decompressed_bytes=1 << 20,
                          max_batch_rows=512, max_tensor_elements=100_000)
    with fx.running_server(base, limits=limits) as running:
        yield running


@pytest.fixture(scope="module")
def channel(server):
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as opened:
        yield opened


def rest_call(port, method, path, body=b"", headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.getheader("Content-Type", ""), response.read()
    finally:
        conn.close()


def assert_rest_reply(reply):
    status, content_type, data = reply
    assert content_type.startswith("application/json"), (status, data[:200])
    document = json.loads(data)
    if status != 200:
        assert 400 <= status < 500, (status, document)
        assert list(document) == ["error"] and isinstance(document["error"], str), document


# ----------------------------------------------------------------------------- REST
scalars = (st.none() | st.booleans() | st.integers(-(2 ** 70), 2 ** 70) | st.floats()
           | st.text(max_size=8) | st.sampled_from(["\ud800", "\udfff", "u1", ""])
           | st.builds(lambda s: {"b64": s}, st.text(max_size=8)))
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
    st.sampled_from(["x", "a", "b", "user", "item", "age", "text_bytes", "b64", "inputs"]),
    inner, max_size=4), max_leaves=24)
documents = st.one_of(
    st.fixed_dictionaries({"instances": json_values},
                          optional={"signature_name": st.sampled_from(SIGNATURES) | scalars}),
    st.fixed_dictionaries({"inputs": json_values},
                          optional={"signature_name": st.sampled_from(SIGNATURES) | scalars}),
    st.fixed_dictionaries({"examples": json_values},
                          optional={"context": json_values,
                                    "signature_name": st.sampled_from(SIGNATURES)}),
    json_values)


@fuzz_settings("rest_documents")
@given(model=st.sampled_from(MODELS), verb=st.sampled_from(["predict", "regress", "classify"]),
       document=documents)
@example(model="half_plus_two", verb="predict",
         document={"instances": nested(1.0, 32)})
@example(model="tiny", verb="predict", document={
    "signature_name": "predict_raw", "instances": [{"user": "\ud800", "item": 1, "age": 1.0}]})
@example(model="tiny", verb="predict", document={
    "signature_name": "predict_raw", "instances": [{"user": "u1", "item": 2 ** 63, "age": 1.0}]})
@example(model="half_plus_two", verb="regress",
         document={"signature_name": "regress_x", "examples": [{"x": 2 ** 64}]})
def test_rest_documents(server, model, verb, document):
    RUN["rest_documents"] += 1
    body = json.dumps(document, allow_nan=True)
    assert_rest_reply(rest_call(server.rest_port, "POST", f"/v1/models/{model}:{verb}", body))


path_text = st.text(alphabet=string.ascii_letters + string.digits + "/:%._-~", max_size=40)


@fuzz_settings("rest_paths")
@given(method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "FOO", "HEAD"]),
       path=st.one_of(
           st.builds(lambda m, v, t: f"/v1/models/{m}/versions/{v}{t}",
                     st.sampled_from(MODELS), st.integers(-5, 10 ** 30).map(str),
                     st.sampled_from(["", "/metadata", ":predict", ":regress", ":bogus"])),
           st.builds(lambda m, t: f"/v1/models/{m}{t}", st.sampled_from(MODELS) | path_text,
                     st.sampled_from(["", "/labels/stable", "/metadata", ":predict"])),
           st.builds(lambda t: "/" + t, path_text)))
@example(method="GET", path="/v1/models/half_plus_two/versions/" + "9" * 5000)
@example(method="FOO", path="/v1/models/half_plus_two")
def test_rest_paths_and_methods(server, method, path):
    RUN["rest_paths"] += 1
    reply = rest_call(server.rest_port, method, path, b"{}")
    if method == "HEAD":
        assert reply[0] == 200 or 400 <= reply[0] < 500
    else:
        assert_rest_reply(reply)


@fuzz_settings("rest_bodies")
@given(body=st.binary(max_size=256), encoding=st.sampled_from([None, "gzip", "deflate", "br"]),
       compress=st.booleans())
@example(body=b"x", encoding="gzip", compress=False)
@example(body=b"[" * 5000, encoding=None, compress=False)
@example(body=b" " * 300_000, encoding="gzip", compress=True)
def test_rest_raw_bodies(server, body, encoding, compress):
    RUN["rest_bodies"] += 1
    if compress:
        body = gzip.compress(body)
    headers = {"Content-Encoding": encoding} if encoding else {}
    assert_rest_reply(rest_call(server.rest_port, "POST", "/v1/models/half_plus_two:predict",
                                body, headers))


# ----------------------------------------------------------------------------- gRPC
def _tensor(dtype, dims, floats, ints, strings, content):
    tensor = tensor_pb2.TensorProto(dtype=dtype, float_val=floats, int64_val=ints,
                                    string_val=strings, tensor_content=content)
    for size in dims:
        tensor.tensor_shape.dim.add(size=size)
    return tensor


tensors = st.builds(
    _tensor,
    dtype=st.sampled_from(list(types_pb2.DataType.values())) | st.integers(0, 400),
    dims=st.lists(st.sampled_from([0, 1, 2, 3, -1, 2 ** 40, 20_000_000]) | st.integers(0, 8),
                  max_size=4),
    floats=st.lists(st.floats(width=32), max_size=4),
    ints=st.lists(st.integers(-(2 ** 63), 2 ** 63 - 1), max_size=4),
    strings=st.lists(st.binary(max_size=8), max_size=4),
    content=st.binary(max_size=24))


@fuzz_settings("grpc_tensors")
@given(model=st.sampled_from(MODELS), signature=st.sampled_from(SIGNATURES),
       inputs=st.dictionaries(st.sampled_from(["x", "user", "item", "age", "a", "b",
                                               "text_bytes", "bogus"]), tensors, max_size=4),
       output_filter=st.lists(st.sampled_from(["y", "ctr", "nope"]), max_size=2))
@example(model="half_plus_two", signature="", inputs={"x": _tensor(
    types_pb2.DT_RESOURCE, [1], [], [], [], b"")}, output_filter=[])
@example(model="half_plus_two", signature="", inputs={"x": _tensor(
    types_pb2.DT_VARIANT, [1], [], [], [], b"")}, output_filter=[])
@example(model="half_plus_two", signature="", inputs={"x": _tensor(
    types_pb2.DT_FLOAT, [2 ** 40], [], [], [], b"")}, output_filter=[])
@example(model="half_plus_two", signature="", inputs={"x": _tensor(
    types_pb2.DT_FLOAT, [20_000_000], [1.0], [], [], b"")}, output_filter=[])
@example(model="half_plus_two", signature="", inputs={"x": _tensor(
    types_pb2.DT_FLOAT, [2], [1.0, 2.0], [], [], b"")}, output_filter=[])
def test_grpc_predict_tensors(channel, model, signature, inputs, output_filter):
    RUN["grpc_tensors"] += 1
    request = predict_pb2.PredictRequest(output_filter=output_filter)
    request.model_spec.name = model
    request.model_spec.signature_name = signature
    for key, tensor in inputs.items():
        request.inputs[key].CopyFrom(tensor)
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    try:
        stub.Predict(request, timeout=60)
    except grpc.RpcError as error:
        assert error.code() in ALLOWED_GRPC, (error.code(), error.details())


@fuzz_settings("grpc_bytes")
@given(method=st.sampled_from(METHODS), payload=st.binary(max_size=128))
@example(method="/tensorflow.serving.PredictionService/Predict",
         payload=b"\xff\xff\xff\xff\x0f garbage")
def test_grpc_raw_bytes(server, channel, method, payload):
    RUN["grpc_bytes"] += 1
    call = channel.unary_unary(method)
    try:
        call(payload, timeout=60)
    except grpc.RpcError as error:
        assert error.code() in ALLOWED_GRPC, (error.code(), error.details())


def test_cases_run(server):
    """Runs last in this file: the server is still up, and every property ran its budget."""
    status, _, data = rest_call(server.rest_port, "GET", "/v1/models/half_plus_two")
    assert status == 200 and b"AVAILABLE" in data
    assert all(RUN[key] >= COUNTS[key] for key in COUNTS), RUN
    print(f"fuzz cases run: {sum(RUN.values())} {RUN}")

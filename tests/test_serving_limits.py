"""Hardening of `drgrad serve` (issue 17): every case the hostile-user run found, as a named
regression test, and each limit of `ServerLimits` enforced before the work it guards.

Each REST refusal must be a 4xx with TF Serving's `{"error": "..."}` JSON body; each gRPC one
INVALID_ARGUMENT / NOT_FOUND / RESOURCE_EXHAUSTED / DEADLINE_EXCEEDED / FAILED_PRECONDITION.
"""
import gzip
import http.client
import json
import socket
import threading
import time

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc

import serving_fixtures as fx
from drgrad.serving.export import write_model_version
from drgrad.serving.model_config import ServerLimits
from drgrad.serving.server import servable as servable_lib

LIMITS = ServerLimits(max_body_bytes=1 << 20, max_decompressed_bytes=1 << 20, max_batch_rows=64,
                      max_json_depth=32, max_tensor_elements=10000, idle_timeout_seconds=1.0,
                      body_timeout_seconds=1.0)
PREDICT = "/v1/models/half_plus_two:predict"
PREDICT_RAW = "/v1/models/tiny:predict"


def serve_fixture_models(**kwargs):
    """A loopback server with `half_plus_two` (version 3) and `tiny` (version 1)."""
    base = fx.new_base_dir()
    write_model_version(base, "half_plus_two", fx.half_plus_two_export(), version=3)
    write_model_version(base, "tiny", fx.tiny_export()[0], version=1)
    return fx.running_server(base, **kwargs)


@pytest.fixture(scope="module")
def server():
    with serve_fixture_models(limits=LIMITS) as running:
        yield running


@pytest.fixture(scope="module")
def prediction(server):
    channel = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}")
    yield prediction_service_pb2_grpc.PredictionServiceStub(channel), channel
    channel.close()


def post(port, path, body, headers=None, method="POST"):
    """(status, parsed JSON body, headers); fails if the body is not JSON."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        data = response.read()
        assert response.getheader("Content-Type", "").startswith("application/json"), data[:200]
        return response.status, json.loads(data), dict(response.getheaders())
    finally:
        conn.close()


def raw_http(port, data, timeout=10):
    """Sends raw bytes; returns (status, parsed JSON body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        reply = b""
        while b"\r\n\r\n" not in reply or len(reply.split(b"\r\n\r\n", 1)[1]) < _length(reply):
            chunk = sock.recv(65536)
            if not chunk:
                break
            reply += chunk
    head, body = reply.split(b"\r\n\r\n", 1)
    assert b"content-type: application/json" in head.lower(), head
    return int(head.split()[1]), json.loads(body)


def _length(reply):
    head = reply.split(b"\r\n\r\n", 1)[0].lower()
    for line in head.split(b"\r\n"):
        if line.startswith(b"content-length:"):
            return int(line.split(b":")[1])
    return 0


def assert_refused(result, status):
    """The error message of a `post` result that must be `status` with `{"error": str}`."""
    code, body, _ = result
    assert code == status, body
    assert isinstance(body, dict) and list(body) == ["error"] and isinstance(body["error"], str)
    return body["error"]


# --------------------------------------------------------------------------- REST: issue cases
@pytest.mark.parametrize("depth", [32, 33, 5000])
def test_deep_json_nesting_is_400(server, depth):
    body = '{"instances": ' + "[" * depth + "1.0" + "]" * depth + "}"
    message = assert_refused(post(server.rest_port, PREDICT, body), 400)
    assert "nesting" in message or "shape" in message or "dimension" in message


def test_lone_surrogate_in_string_feature_is_400(server):
    body = '{"signature_name": "predict_raw", "instances": [{"user": "\\ud800", "item": 1, ' \
           '"age": 30.0}]}'
    assert "UTF-8" in assert_refused(post(server.rest_port, PREDICT_RAW, body), 400)


def test_int64_out_of_range_on_predict_raw_and_regress_is_400(server):
    row = {"user": "u1", "item": 2 ** 63, "age": 30.0}
    message = assert_refused(post(server.rest_port, PREDICT_RAW, json.dumps(
        {"signature_name": "predict_raw", "instances": [row]})), 400)
    assert str(2 ** 63) in message
    message = assert_refused(post(server.rest_port, "/v1/models/half_plus_two:regress",
                                  json.dumps({"signature_name": "regress_x",
                                              "examples": [{"x": 2 ** 64}]})), 400)
    assert "int64" in message


def test_huge_version_in_url_is_400(server):
    path = "/v1/models/half_plus_two/versions/" + "9" * 5000 + ":predict"
    assert "version" in assert_refused(post(server.rest_port, path, "{}"), 400)


def test_body_that_is_not_gzip_with_gzip_encoding_is_400(server):
    assert_refused(post(server.rest_port, PREDICT, b"x", {"Content-Encoding": "gzip"}), 400)
    assert_refused(post(server.rest_port, PREDICT, b"x", {"Content-Encoding": "br"}), 415)


def test_gzip_body_is_accepted(server):
    body = gzip.compress(json.dumps({"instances": [1.0, 2.0]}).encode())
    assert post(server.rest_port, PREDICT, body, {"Content-Encoding": "gzip"})[:2] == (
        200, {"predictions": [2.5, 3.0]})


def test_protocol_errors_are_json(server):
    status, body = raw_http(server.rest_port,
                            b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert 400 <= status < 500 and list(body) == ["error"]
    status, body = raw_http(server.rest_port,
                            b"FOO /v1/models/half_plus_two HTTP/1.1\r\nHost: x\r\n"
                            b"Content-Length: 0\r\n\r\n")
    assert 400 <= status < 500 and list(body) == ["error"]
    status, body = raw_http(server.rest_port, b"\x16\x03\x01garbage\r\n\r\n")
    assert 400 <= status < 500 and list(body) == ["error"]


# --------------------------------------------------------------------------- REST: limits
def test_body_over_the_limit_is_413_before_it_is_read(server):
    body = json.dumps({"instances": [1.0] * 300000})
    assert len(body) > LIMITS.max_body_bytes
    assert "exceeds" in assert_refused(post(server.rest_port, PREDICT, body), 413)


def test_gzip_bomb_is_refused_while_inflating(server):
    bomb = gzip.compress(b" " * (200 << 20), compresslevel=9)
    assert len(bomb) < 300 << 10            # ~200 KB on the wire, 200 MB inflated
    message = assert_refused(post(server.rest_port, PREDICT, bomb,
                                  {"Content-Encoding": "gzip"}), 413)
    assert "Decompressed" in message


def test_rows_and_elements_over_the_limits_are_400(server):
    message = assert_refused(post(server.rest_port, PREDICT,
                                  json.dumps({"instances": [1.0] * 65})), 400)
    assert "65 rows" in message
    body = {"signature_name": "multi", "inputs": {"a": [1.0], "b": [[1] * 10001],
                                                   "text_bytes": ["x"]}}
    assert "10000" in assert_refused(post(server.rest_port, PREDICT, json.dumps(body)), 400)
    examples = json.dumps({"signature_name": "regress_x", "examples": [{"x": 1.0}] * 65})
    assert "65 rows" in assert_refused(
        post(server.rest_port, "/v1/models/half_plus_two:regress", examples), 400)


def test_half_sent_header_is_closed_after_the_idle_timeout(server):
    with socket.create_connection(("127.0.0.1", server.rest_port), timeout=10) as sock:
        sock.sendall(b"POST /v1/models/half_plus_two:predict HTTP/1.1\r\nHost: x\r\n")
        started = time.monotonic()
        assert sock.recv(1024) == b""               # closed by the server, not by our timeout
        assert time.monotonic() - started < 5 * LIMITS.idle_timeout_seconds


def test_body_that_never_arrives_is_408(server):
    with socket.create_connection(("127.0.0.1", server.rest_port), timeout=10) as sock:
        sock.sendall(b"POST /v1/models/half_plus_two:predict HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Length: 100\r\n\r\n{\"instances\"")
        reply = b""
        while b"}" not in reply:
            chunk = sock.recv(4096)
            if not chunk:
                break
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 408") and b'{"error":' in reply


def test_large_body_is_parsed_off_the_event_loop():
    """A ~50 MB body being parsed must not hold up a small request on another connection."""
    limits = ServerLimits(max_body_bytes=64 << 20, max_batch_rows=64)
    big = ('{"instances": [' + ",".join(["0.1234567890123"] * 3_300_000) + "]}").encode()
    assert len(big) > 50 << 20
    with serve_fixture_models(limits=limits, batching=None) as running:
        result = {}

        def send_big():
            result["big"] = post(running.rest_port, PREDICT, big)

        thread = threading.Thread(target=send_big)
        thread.start()
        latencies = []
        for _ in range(2000):                      # bounded; ends when the big one is answered
            if not thread.is_alive():
                break
            started = time.monotonic()
            assert post(running.rest_port, PREDICT, '{"instances": [1.0]}')[:2] == (
                200, {"predictions": [2.5]})
            latencies.append(time.monotonic() - started)
        thread.join(timeout=120)
        assert "rows" in assert_refused(result["big"], 400)
        assert len(latencies) >= 3
        assert max(latencies) < 1.0, latencies


@pytest.fixture
def stall(monkeypatch):
    """`stall()` makes every later signature call wait until the returned event is set (the
    compute pool blocks, not the event loop); call it once the server has warmed up."""
    release = threading.Event()
    run = servable_lib.Servable.run

    def stuck(self, *args, **kwargs):
        release.wait(60)
        return run(self, *args, **kwargs)

    def engage():
        monkeypatch.setattr(servable_lib.Servable, "run", stuck)
        return release

    try:
        yield engage
    finally:
        release.set()


def _assert_grpc_refused(port):
    """A gRPC Predict is refused with RESOURCE_EXHAUSTED and a 1 s retry-after trailer; returns
    the refusal's details."""
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        with pytest.raises(grpc.RpcError) as error:
            stub.Predict(_half_plus_two_request(np.array([1.0], np.float32)), timeout=10)
        assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert ("retry-after", "1") in error.value.trailing_metadata()
        return error.value.details()
    finally:
        channel.close()


def _raw_grpc_predict_code(port, payload):
    """The status code of a Predict call carrying `payload` as its raw request bytes."""
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = channel.unary_unary("/tensorflow.serving.PredictionService/Predict")
        try:
            call(payload, timeout=10)
        except grpc.RpcError as error:
            return error.code()
        return grpc.StatusCode.OK


def test_overload_is_refused_fast_with_retry_after(stall):
    """Past `max_inflight_requests` the excess gets 429 + Retry-After at once; the admitted
    requests all succeed."""
    limits = ServerLimits(max_inflight_requests=2, inference_timeout_seconds=60)
    with serve_fixture_models(limits=limits, batching=None) as running:
        release = stall()
        results, refused_times = [], []

        def admitted():
            results.append(post(running.rest_port, PREDICT, '{"instances": [1.0]}'))

        threads = [threading.Thread(target=admitted) for _ in range(2)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 30
        while running.core.inflight < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        try:
            for _ in range(5):
                started = time.monotonic()
                status, body, headers = post(running.rest_port, PREDICT, '{"instances": [1.0]}')
                refused_times.append(time.monotonic() - started)
                assert status == 429 and "retry after" in body["error"]
                assert headers["Retry-After"] == str(limits.retry_after_seconds)
            _assert_grpc_refused(running.grpc_port)
        finally:
            release.set()
            for thread in threads:
                thread.join(timeout=60)
        assert [r[:2] for r in results] == [(200, {"predictions": [2.5]})] * 2
        assert max(refused_times) < 0.5


def test_predicted_wait_past_the_bound_is_refused_at_arrival(stall):
    """Under `max_inflight_requests`, a request is still refused at once, with Retry-After,
    when its predicted wait (in flight / measured rate) passes `max_queue_wait_seconds`:
    2 in flight at 10 / s is 200 ms > 50 ms (the cold-start floor `min_inflight` lowered to
    1). Nothing is queued for it."""
    limits = ServerLimits(max_inflight_requests=100, inference_timeout_seconds=60,
                          max_queue_wait_seconds=0.05)
    with serve_fixture_models(limits=limits, batching=None) as running:
        release = stall()
        results = []
        threads = [threading.Thread(target=lambda: results.append(
            post(running.rest_port, PREDICT, '{"instances": [1.0]}'))) for _ in range(2)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 30
        while running.core.inflight < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        running.core.admission.rate = 10.0      # as if measured
        running.core.admission.min_inflight = 1
        try:
            started = time.monotonic()
            status, body, headers = post(running.rest_port, PREDICT, '{"instances": [1.0]}')
            refused_in = time.monotonic() - started
            assert status == 429 and "more than 50 ms" in body["error"], body
            assert headers["Retry-After"] == str(limits.retry_after_seconds)
            assert "more than 50 ms" in _assert_grpc_refused(running.grpc_port)
            # Refused before parsing: bytes that are no PredictRequest get RESOURCE_EXHAUSTED,
            # not the INVALID_ARGUMENT a parse would give.
            assert _raw_grpc_predict_code(running.grpc_port, b"\xff\xff\xff\xff\x0f garbage") \
                == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert running.core.inflight == 2
        finally:
            release.set()
            for thread in threads:
                thread.join(timeout=60)
        assert [r[:2] for r in results] == [(200, {"predictions": [2.5]})] * 2
        assert refused_in < 0.5


def test_inference_deadline_is_504_and_deadline_exceeded(stall):
    limits = ServerLimits(inference_timeout_seconds=0.2)
    with serve_fixture_models(limits=limits, batching=None) as running:
        release = stall()
        message = assert_refused(post(running.rest_port, PREDICT, '{"instances": [1.0]}'), 504)
        assert "deadline" in message
        channel = grpc.insecure_channel(f"127.0.0.1:{running.grpc_port}")
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        with pytest.raises(grpc.RpcError) as error:
            stub.Predict(_half_plus_two_request(np.array([1.0], np.float32)), timeout=10)
        assert error.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        channel.close()
        release.set()


# --------------------------------------------------------------------------- gRPC
def _half_plus_two_request(array=None, tensor=None):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "half_plus_two"
    request.inputs["x"].CopyFrom(tensor if tensor is not None else tf.make_tensor_proto(array))
    return request


def _raw_predict_request(key, tensor):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "tiny"
    request.model_spec.signature_name = "predict_raw"
    request.inputs["user"].CopyFrom(tf.make_tensor_proto(np.array([b"u1"], dtype=object)))
    request.inputs["age"].CopyFrom(tf.make_tensor_proto(np.array([30.0], np.float32)))
    request.inputs["item"].CopyFrom(tf.make_tensor_proto(np.array([1], np.int64)))
    request.inputs[key].CopyFrom(tensor)
    return request


def _code(stub, request):
    try:
        stub.Predict(request, timeout=30)
    except grpc.RpcError as error:
        return error.code(), error.details()
    return grpc.StatusCode.OK, ""


@pytest.mark.parametrize("dtype", [types_pb2.DT_RESOURCE, types_pb2.DT_VARIANT])
def test_grpc_resource_and_variant_dtypes_are_invalid_argument(prediction, dtype):
    stub, _ = prediction
    tensor = tensor_pb2.TensorProto(dtype=dtype)
    tensor.tensor_shape.dim.add(size=1)
    code, details = _code(stub, _half_plus_two_request(tensor=tensor))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "to be float" in details


def test_grpc_huge_declared_shape_is_refused_before_allocation(prediction):
    stub, _ = prediction
    for size in (2 ** 40, 20_000_000):
        tensor = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, float_val=[1.0])
        tensor.tensor_shape.dim.add(size=size)
        assert len(tensor.SerializeToString()) < 40
        code, details = _code(stub, _half_plus_two_request(tensor=tensor))
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "elements" in details


def test_grpc_negative_dim_and_broken_content_are_invalid_argument(prediction):
    stub, _ = prediction
    tensor = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, float_val=[1.0])
    tensor.tensor_shape.dim.add(size=-3)
    assert _code(stub, _half_plus_two_request(tensor=tensor))[0] == (
        grpc.StatusCode.INVALID_ARGUMENT)
    tensor = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, tensor_content=b"abc")
    tensor.tensor_shape.dim.add(size=2)
    assert _code(stub, _half_plus_two_request(tensor=tensor))[0] == (
        grpc.StatusCode.INVALID_ARGUMENT)


@pytest.mark.parametrize("array", [
    np.array([1], np.int32), np.array([1], np.int8), np.array([1], np.uint64),
    np.array([True]), np.array([1 + 1j], np.complex64),
    tf.constant([1.0], tf.bfloat16).numpy(),
], ids=["int32", "int8", "uint64", "bool", "complex64", "bfloat16"])
def test_grpc_int64_input_refuses_other_dtypes(prediction, array):
    stub, _ = prediction
    code, details = _code(stub, _raw_predict_request("item", tf.make_tensor_proto(array)))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "Expects arg[item] to be int64" in details


def test_grpc_int64_input_accepts_int64(prediction):
    stub, _ = prediction
    assert _code(stub, _raw_predict_request(
        "item", tf.make_tensor_proto(np.array([2 ** 62], np.int64))))[0] == grpc.StatusCode.OK


def test_grpc_garbage_bytes_are_invalid_argument(prediction):
    _, channel = prediction
    for method in ("/tensorflow.serving.PredictionService/Predict",
                   "/tensorflow.serving.PredictionService/Regress",
                   "/tensorflow.serving.ModelService/GetModelStatus"):
        call = channel.unary_unary(method)
        with pytest.raises(grpc.RpcError) as error:
            call(b"\xff\xff\xff\xff\x0f garbage", timeout=30)
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_grpc_rows_over_the_limit_are_invalid_argument(prediction):
    stub, _ = prediction
    code, details = _code(stub, _half_plus_two_request(np.ones(65, np.float32)))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "65 rows" in details
    assert _code(stub, _half_plus_two_request(np.ones(64, np.float32)))[0] == (
        grpc.StatusCode.OK)


def test_limits_reject_bad_values():
    for bad in ({"max_body_bytes": 0}, {"max_json_depth": 1.5}, {"idle_timeout_seconds": -1},
                {"parse_threads": True}):
        with pytest.raises(ValueError):
            ServerLimits(**bad)


@pytest.mark.parametrize("value, dtype", [([300], tf.uint8), ([[1], [-129]], tf.int8),
                                          ([2 ** 31], tf.int32), ([-1], tf.uint16)])
def test_json_integers_outside_a_small_dtype_are_refused_not_wrapped(value, dtype):
    """NumPy 1.x would wrap 300 to 44 as uint8; TF Serving refuses the value."""
    from drgrad.serving.server import json_codec
    from drgrad.serving.server.errors import ServingError
    with pytest.raises(ServingError, match="out of range") as caught:
        json_codec.to_array(value, dtype)
    assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT
    np.testing.assert_array_equal(json_codec.to_array([255, 0], tf.uint8), [255, 0])

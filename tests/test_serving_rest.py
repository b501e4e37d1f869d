"""REST contract: TF Serving's documented request/response pairs against the local server.

Golden pairs follow TF Serving's http_rest_api_handler_test.cc and api_rest.md, using its
`half_plus_two` model (y = 0.5 x + 2).
"""
import http.client
import json

import numpy as np
import pytest

import serving_fixtures as fx
from drgrad.serving import client as client_lib
from drgrad.serving.export import write_model_version

STATUS_OK = {"error_code": "OK", "error_message": ""}


@pytest.fixture(scope="module")
def server():
    base = fx.new_base_dir()
    write_model_version(base, "half_plus_two", fx.half_plus_two_export(), version=3,
                        labels={"stable": 3})
    write_model_version(base, "tiny", fx.tiny_export()[0], version=1)
    with fx.running_server(base) as running:
        yield running


def call(server, method, path, body=None):
    conn = http.client.HTTPConnection("127.0.0.1", server.rest_port, timeout=30)
    try:
        payload = body if isinstance(body, (str, bytes)) or body is None else json.dumps(body)
        conn.request(method, path, body=payload)
        response = conn.getresponse()
        data = response.read()
        assert response.getheader("Content-Type").startswith("application/json")
        return response.status, json.loads(data)
    finally:
        conn.close()


def test_status_json_has_string_versions(server):
    expected = {"model_version_status": [
        {"version": "3", "state": "AVAILABLE", "status": STATUS_OK}]}
    for path in ("/v1/models/half_plus_two", "/v1/models/half_plus_two/versions/3",
                 "/v1/models/half_plus_two/labels/stable", "/V1/MODELS/half_plus_two"):
        assert call(server, "GET", path) == (200, expected)


@pytest.mark.parametrize("body, expected", [
    ({"instances": [1.0, 2.0]}, {"predictions": [2.5, 3.0]}),
    ({"instances": [{"x": 1.0}, {"x": 5.0}]}, {"predictions": [2.5, 4.5]}),
    ({"signature_name": "serving_default", "inputs": [1.0, 2.0, 5.0]},
     {"outputs": [2.5, 3.0, 4.5]}),
    ({"inputs": {"x": [4.0]}}, {"outputs": [4.0]}),
    ({"instances": [1]}, {"predictions": [2.5]}),   # JSON ints are fine for float inputs
])
def test_predict_row_and_columnar_formats(server, body, expected):
    assert call(server, "POST", "/v1/models/half_plus_two:predict", body) == (200, expected)
    assert call(server, "POST", "/v1/models/half_plus_two/versions/3:predict", body)[1] == expected
    assert call(server, "POST", "/v1/models/half_plus_two/labels/stable:predict",
                body)[1] == expected


def test_predict_multi_input_multi_output_and_b64(server):
    row = {"a": 1.0, "b": [1, 2], "text_bytes": {"b64": "aGk="}}      # "hi"
    status, body = call(server, "POST", "/v1/models/half_plus_two:predict",
                        {"signature_name": "multi", "instances": [row, dict(row, a=2.0)]})
    assert status == 200
    assert body == {"predictions": [
        {"sum": 4.0, "echo_bytes": {"b64": "aGk="}, "length": 2},
        {"sum": 5.0, "echo_bytes": {"b64": "aGk="}, "length": 2}]}
    status, body = call(server, "POST", "/v1/models/half_plus_two:predict", {
        "signature_name": "multi",
        "inputs": {"a": [1.0], "b": [[3, 4]], "text_bytes": ["abc"]}})
    assert (status, body) == (200, {"outputs": {"sum": [8.0], "echo_bytes": [{"b64": "YWJj"}],
                                                "length": [3]}})


def test_nan_passes_through_like_tf_serving(server):
    conn = http.client.HTTPConnection("127.0.0.1", server.rest_port, timeout=30)
    conn.request("POST", "/v1/models/half_plus_two:predict", body='{"instances": [NaN, 2]}')
    response = conn.getresponse()
    assert response.status == 200
    assert response.read() == b'{"predictions":[NaN,3.0]}'
    conn.close()


def test_regress_and_classify_use_the_results_key(server):
    assert call(server, "POST", "/v1/models/half_plus_two:regress", {
        "signature_name": "regress_x", "examples": [{"x": 1.0}, {"x": 80.0}]}) == (
        200, {"results": [2.5, 42.0]})
    # The context is merged into every example.
    assert call(server, "POST", "/v1/models/half_plus_two:regress", {
        "signature_name": "regress_x", "context": {"x": 4.0}, "examples": [{}, {}]}) == (
        200, {"results": [4.0, 4.0]})
    assert call(server, "POST", "/v1/models/half_plus_two:classify", {
        "signature_name": "classify_x", "examples": [{"x": 1.0}]}) == (
        200, {"results": [[["low", 0.75], ["high", 0.25]]]})


def test_metadata_shape(server):
    status, body = call(server, "GET", "/v1/models/half_plus_two/metadata")
    assert status == 200
    assert body["model_spec"] == {"name": "half_plus_two", "signature_name": "", "version": "3"}
    signature = body["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert signature["method_name"] == "tensorflow/serving/predict"
    assert signature["inputs"]["x"]["dtype"] == "DT_FLOAT"
    assert signature["inputs"]["x"]["tensor_shape"] == {"dim": [{"size": "-1", "name": ""}],
                                                        "unknown_rank": False}
    assert set(signature["outputs"]) == {"y"}


@pytest.mark.parametrize("method, path, body, code, message", [
    ("GET", "/v1/models/nope", None, 404, "Could not find any versions of model nope"),
    ("GET", "/v1/models/half_plus_two/versions/9", None, 404,
     "Could not find version 9 of model half_plus_two"),
    ("GET", "/v1/models/half_plus_two/labels/canary", None, 404,
     "Unrecognized servable version label: canary"),
    ("POST", "/v1/models/nope:predict", {"instances": [1.0]}, 404,
     "Servable not found for request: Latest(nope)"),
    ("POST", "/v1/models/half_plus_two/versions/9:predict", {"instances": [1.0]}, 404,
     "Servable not found for request: Specific(half_plus_two, 9)"),
    ("POST", "/v1/models/half_plus_two/labels/canary:predict", {"instances": [1.0]}, 404,
     "Unrecognized servable version label: canary"),
    ("POST", "/v1/models/half_plus_two:predict", "{instances: [1.0", 400, "JSON Parse error"),
    ("POST", "/v1/models/half_plus_two:predict", "[1.0]", 400, "JSON Parse error"),
    ("POST", "/v1/models/half_plus_two:predict", {"instances": [1.0], "inputs": [1.0]}, 400,
     "Not formatted correctly expecting only one of 'inputs' or 'instances' keys to exist"),
    ("POST", "/v1/models/half_plus_two:predict", {"signature_name": "serving_default"}, 400,
     "Missing 'inputs' or 'instances' key"),
    ("POST", "/v1/models/half_plus_two:predict", {"instances": 1.0}, 400,
     "Expecting 'instances' to be an list/array"),
    ("POST", "/v1/models/half_plus_two:predict", {"instances": []}, 400,
     "No values in 'instances' array"),
    ("POST", "/v1/models/half_plus_two:predict", {"instances": ["abc"]}, 400,
     "is not of expected type: float"),
    ("POST", "/v1/models/half_plus_two:predict", {"instances": [[1.0], 2.0]}, 400,
     "Expecting tensors in list to be of same shape"),
    ("POST", "/v1/models/half_plus_two:predict", {"instances": [True]}, 400,
     "is not of expected type: float"),
    ("POST", "/v1/models/half_plus_two:predict", {"signature_name": 5, "instances": [1.0]}, 400,
     "'signature_name' key must be a string value."),
    ("POST", "/v1/models/half_plus_two:predict", {"signature_name": "nope", "instances": [1.0]},
     400, 'Serving signature name: "nope" not found in signature def'),
    ("POST", "/v1/models/half_plus_two:predict",
     {"signature_name": "multi", "instances": [{"a": 1.0}]}, 400, "does not have named input"),
    ("POST", "/v1/models/half_plus_two:predict",
     {"signature_name": "multi", "inputs": {"a": [1.0], "b": [[1, 2]], "text_bytes": [
         {"b64": "!!"}]}}, 400, "Unable to base64 decode"),
    ("POST", "/v1/models/half_plus_two:regress", {"examples": [{"x": 1.0}]}, 400,
     "need one string input"),   # serving_default takes x, not serialized examples
    ("POST", "/v1/models/half_plus_two:regress", {"signature_name": "regress_x"}, 400,
     "Missing 'examples' key"),
    ("POST", "/v1/models/half_plus_two:regress",
     {"signature_name": "regress_x", "context": {"x": 1.0}, "examples": [{"x": 2.0}]}, 400,
     "present in both context and examples"),
    ("POST", "/v1/models/half_plus_two:classify",
     {"signature_name": "regress_x", "examples": [{"x": 1.0}]}, 400,
     "classes or scores"),
    ("GET", "/v1/models/half_plus_two:predict", None, 400, "Malformed request: GET"),
    ("POST", "/v1/models/half_plus_two/metadata", {}, 400, "Malformed request: POST"),
    ("GET", "/v1/models/half_plus_two/version/3", None, 400, "Malformed request"),
    ("GET", "/v1/models/half_plus_two/versions/HELLO", None, 400, "Malformed request"),
    ("GET", "/v1/models/half_plus_two/versions/3/labels/stable", None, 400, "Malformed request"),
    ("GET", "/v1/models/half_plus_two/versions/99999999999999999999", None, 400,
     "Failed to convert version"),
    ("GET", "/v1/models", None, 400, "Missing model name in request."),
])
def test_error_bodies_and_codes(server, method, path, body, code, message):
    status, document = call(server, method, path, body)
    assert status == code
    assert set(document) == {"error"}
    assert message in document["error"]


def test_rest_client_predict_equals_in_process(server):
    _, model, transform = fx.tiny_export()
    rows = fx.sample_rows(9, seed=11)
    expected = fx.in_process(model, transform, rows)
    client = client_lib.connect(f"rest://127.0.0.1:{server.rest_port}", "tiny")
    # Ints for a float feature are coerced from the signature's metadata.
    rows[0]["age"] = int(rows[0]["age"])
    expected = fx.in_process(model, transform, rows)
    got = client.predict(rows)
    assert set(got) == set(fx.TASKS)
    for task in fx.TASKS:
        np.testing.assert_allclose(got[task], expected[task], atol=1e-5)
    with pytest.raises(ValueError, match="missing feature"):
        client.predict([{"user": "u1", "item": 1}])
    with pytest.raises(ValueError, match="must be a number"):
        client.predict([{"user": "u1", "item": 1, "age": "old"}])
    status = client.status()
    assert status["model_version_status"][0]["version"] == "1"
    client.close()


def test_serving_default_with_b64_examples(server):
    _, model, transform = fx.tiny_export()
    import base64
    rows = fx.sample_rows(3, seed=2)
    examples = [{"b64": base64.b64encode(e).decode()} for e in fx.rows_to_examples(rows)]
    status, body = call(server, "POST", "/v1/models/tiny:predict", {"instances": examples})
    assert status == 200
    expected = fx.in_process(model, transform, rows)
    for index, prediction in enumerate(body["predictions"]):
        assert set(prediction) == set(fx.TASKS)
        for task in fx.TASKS:
            assert abs(prediction[task] - expected[task][index]) < 1e-5
    status, body = call(server, "POST", "/v1/models/tiny:predict", {"instances": ["not b64"]})
    assert status == 400
    assert "Could not parse example input" in body["error"]

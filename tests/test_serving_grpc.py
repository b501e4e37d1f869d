"""gRPC: PredictionService and ModelService through the generated stubs, against in-process
outputs; plus request batching through the live server."""
import concurrent.futures

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import classification_pb2
from tensorflow_serving.apis import get_model_metadata_pb2
from tensorflow_serving.apis import get_model_status_pb2
from tensorflow_serving.apis import inference_pb2
from tensorflow_serving.apis import input_pb2
from tensorflow_serving.apis import model_service_pb2_grpc
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc
from tensorflow_serving.apis import regression_pb2

import serving_fixtures as fx
from drgrad.serving import client as client_lib
from drgrad.serving.export import write_model_version


@pytest.fixture(scope="module")
def server():
    base = fx.new_base_dir()
    write_model_version(base, "tiny", fx.tiny_export()[0], version=2)
    write_model_version(base, "half_plus_two", fx.half_plus_two_export(), version=1)
    with fx.running_server(base) as running:
        yield running


@pytest.fixture(scope="module")
def stubs(server):
    channel = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}")
    yield (prediction_service_pb2_grpc.PredictionServiceStub(channel),
           model_service_pb2_grpc.ModelServiceStub(channel))
    channel.close()


def _examples_input(rows):
    proto = input_pb2.Input()
    for serialized in fx.rows_to_examples(rows):
        proto.example_list.examples.add().ParseFromString(serialized)
    return proto


def test_predict_stub_equals_in_process(stubs):
    prediction, _ = stubs
    _, model, transform = fx.tiny_export()
    rows = fx.sample_rows(6, seed=21)
    expected = fx.in_process(model, transform, rows)

    request = predict_pb2.PredictRequest()
    request.model_spec.name = "tiny"
    request.model_spec.signature_name = "predict_raw"
    for name, tensor in fx.rows_to_tensors(rows).items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(tensor.numpy()))
    response = prediction.Predict(request, timeout=30)
    assert (response.model_spec.name, response.model_spec.version.value,
            response.model_spec.signature_name) == ("tiny", 2, "predict_raw")
    for task in fx.TASKS:
        np.testing.assert_allclose(tf.make_ndarray(response.outputs[task]), expected[task],
                                   atol=1e-5)

    request = predict_pb2.PredictRequest(output_filter=["cvr"])
    request.model_spec.name = "tiny"
    request.inputs["examples"].CopyFrom(tf.make_tensor_proto(fx.rows_to_examples(rows)))
    response = prediction.Predict(request, timeout=30)
    assert list(response.outputs) == ["cvr"]
    assert response.model_spec.signature_name == "serving_default"
    np.testing.assert_allclose(tf.make_ndarray(response.outputs["cvr"]), expected["cvr"],
                               atol=1e-5)


def test_grpc_client_equals_in_process(server):
    _, model, transform = fx.tiny_export()
    rows = fx.sample_rows(4, seed=8)
    client = client_lib.connect(f"grpc://127.0.0.1:{server.grpc_port}", "tiny")
    got = client.predict(rows)
    expected = fx.in_process(model, transform, rows)
    for task in fx.TASKS:
        np.testing.assert_allclose(got[task], expected[task], atol=1e-5)
    assert client.status()["model_version_status"][0] == {
        "version": "2", "state": "AVAILABLE",
        "status": {"error_code": "OK", "error_message": ""}}
    client.close()


def test_regress_classify_and_multi_inference(stubs):
    prediction, _ = stubs
    _, model, transform = fx.tiny_export()
    rows = fx.sample_rows(3, seed=4)
    expected = fx.in_process(model, transform, rows)

    request = regression_pb2.RegressionRequest(input=_examples_input(rows))
    request.model_spec.name = "tiny"
    request.model_spec.signature_name = "regress_cvr"
    response = prediction.Regress(request, timeout=30)
    np.testing.assert_allclose([r.value for r in response.result.regressions], expected["cvr"],
                               atol=1e-5)

    request = inference_pb2.MultiInferenceRequest(input=_examples_input(rows))
    for task in fx.TASKS:
        entry = request.tasks.add(method_name="tensorflow/serving/regress")
        entry.model_spec.name = "tiny"
        entry.model_spec.signature_name = f"regress_{task}"
    response = prediction.MultiInference(request, timeout=30)
    assert [r.model_spec.signature_name for r in response.results] == ["regress_ctr",
                                                                      "regress_cvr"]
    for task, result in zip(fx.TASKS, response.results):
        np.testing.assert_allclose([r.value for r in result.regression_result.regressions],
                                   expected[task], atol=1e-5)

    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = "half_plus_two"
    request.model_spec.signature_name = "classify_x"
    request.input.example_list_with_context.context.features.feature[
        "x"].float_list.value.append(4.0)
    request.input.example_list_with_context.examples.add()
    response = prediction.Classify(request, timeout=30)
    (classification,) = response.result.classifications
    assert [(c.label, round(c.score, 6)) for c in classification.classes] == [
        ("low", 0.6), ("high", 0.4)]


def _code(call, request):
    with pytest.raises(grpc.RpcError) as error:
        call(request, timeout=30)
    return error.value.code(), error.value.details()


def test_error_codes(stubs):
    prediction, models = stubs
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "nope"
    request.inputs["x"].CopyFrom(tf.make_tensor_proto([1.0]))
    assert _code(prediction.Predict, request) == (
        grpc.StatusCode.NOT_FOUND, "Servable not found for request: Latest(nope)")

    request.model_spec.name = "half_plus_two"
    request.model_spec.version.value = 7
    assert _code(prediction.Predict, request)[0] == grpc.StatusCode.NOT_FOUND

    request = predict_pb2.PredictRequest()
    request.model_spec.name = "half_plus_two"
    request.inputs["x"].CopyFrom(tf.make_tensor_proto(["a"]))
    assert _code(prediction.Predict, request)[0] == grpc.StatusCode.INVALID_ARGUMENT
    request.inputs["x"].CopyFrom(tf.make_tensor_proto([1.0]))
    request.inputs["extra"].CopyFrom(tf.make_tensor_proto([1.0]))
    code, details = _code(prediction.Predict, request)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "Sent extra: ['extra']" in details

    metadata = get_model_metadata_pb2.GetModelMetadataRequest()
    metadata.model_spec.name = "half_plus_two"
    assert _code(prediction.GetModelMetadata, metadata)[0] == grpc.StatusCode.INVALID_ARGUMENT
    metadata.metadata_field.append("signature_def")
    response = prediction.GetModelMetadata(metadata, timeout=30)
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    response.metadata["signature_def"].Unpack(signature_map)
    assert {"serving_default", "regress_x", "classify_x"} <= set(signature_map.signature_def)
    assert response.model_spec.version.value == 1
    metadata.metadata_field.append("graph")
    assert _code(prediction.GetModelMetadata, metadata) == (
        grpc.StatusCode.INVALID_ARGUMENT, "Metadata field graph is not supported")

    status = get_model_status_pb2.GetModelStatusRequest()
    status.model_spec.name = "nope"
    assert _code(models.GetModelStatus, status)[0] == grpc.StatusCode.NOT_FOUND

    request = inference_pb2.MultiInferenceRequest(input=_examples_input(fx.sample_rows(1)))
    for _ in range(2):
        entry = request.tasks.add(method_name="tensorflow/serving/regress")
        entry.model_spec.name = "tiny"
        entry.model_spec.signature_name = "regress_ctr"
    assert _code(prediction.MultiInference, request) == (
        grpc.StatusCode.INVALID_ARGUMENT, "Duplicate evaluation of signature: regress_ctr")
    request.tasks[1].method_name = "tensorflow/serving/predict"
    request.tasks[1].model_spec.signature_name = "regress_cvr"
    assert _code(prediction.MultiInference, request)[0] == grpc.StatusCode.INVALID_ARGUMENT


def test_concurrent_requests_are_batched_and_equal_unbatched(server):
    _, model, transform = fx.tiny_export()
    batches = [fx.sample_rows(1 + i % 3, seed=100 + i) for i in range(48)]
    client = client_lib.connect(f"grpc://127.0.0.1:{server.grpc_port}", "tiny")
    client.predict(batches[0])  # metadata fetched once
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        results = list(pool.map(client.predict, batches))
    for rows, got in zip(batches, results):
        expected = fx.in_process(model, transform, rows)
        for task in fx.TASKS:
            np.testing.assert_allclose(got[task], expected[task], atol=1e-5)
    assert server.batcher is not None   # batching is on by default
    client.close()

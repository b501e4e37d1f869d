"""TF Serving's gRPC services (PredictionService, ModelService) on `grpc.aio`.

The servicers subclass the generated classes from tensorflow-serving-api, so method names,
request and response types are exactly TF Serving's. Failures abort the RPC with the status
code TF Serving would return (NOT_FOUND for an unknown servable, INVALID_ARGUMENT for bad
input, ...).
"""
import logging

import grpc
import tensorflow as tf
from tensorflow_serving.apis import classification_pb2
from tensorflow_serving.apis import get_model_metadata_pb2
from tensorflow_serving.apis import inference_pb2
from tensorflow_serving.apis import model_management_pb2
from tensorflow_serving.apis import model_service_pb2_grpc
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc
from tensorflow_serving.apis import regression_pb2

from drgrad.serving.server import servable as servable_lib
from drgrad.serving.server.errors import ServingError, invalid_argument

_log = logging.getLogger(__name__)
# Server-side message limits: TF Serving's are effectively unlimited; 1 GiB here.
MAX_MESSAGE_BYTES = 1 << 30


def _spec_args(model_spec):
    choice = model_spec.WhichOneof("version_choice")
    version = model_spec.version.value if choice == "version" else None
    label = model_spec.version_label if choice == "version_label" else None
    return model_spec.name, version, label


def _fill_spec(spec, name, version, signature_name):
    spec.name = name
    spec.version.value = version
    spec.signature_name = signature_name


def _guard(method):
    """Turns ServingError into the matching gRPC status; anything else into INTERNAL."""
    async def wrapper(self, request, context):
        try:
            return await method(self, request, context)
        except ServingError as error:
            await context.abort(error.code, error.message)
        except Exception as error:  # pylint: disable=broad-except
            if isinstance(error, grpc.aio.AbortError):
                raise
            _log.exception("internal error in %s", method.__name__)
            await context.abort(grpc.StatusCode.INTERNAL, f"Internal error: {error}")
    wrapper.__name__ = method.__name__
    wrapper.__doc__ = method.__doc__
    return wrapper


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    """Predict, Classify, Regress, MultiInference and GetModelMetadata over a ServingCore."""

    def __init__(self, core):
        self.core = core

    @_guard
    async def Predict(self, request, context):  # pylint: disable=invalid-name
        inputs = {}
        for key, tensor in request.inputs.items():
            try:
                inputs[key] = tf.make_ndarray(tensor)
            except (TypeError, ValueError) as error:
                raise invalid_argument(f"input {key}: malformed TensorProto: {error}") from None
        name, version, label = _spec_args(request.model_spec)
        number, key, outputs = await self.core.predict(
            name, version, label, request.model_spec.signature_name, inputs,
            output_filter=tuple(request.output_filter))
        response = predict_pb2.PredictResponse()
        _fill_spec(response.model_spec, name, number, key)
        for output_key, value in outputs.items():
            response.outputs[output_key].CopyFrom(tf.make_tensor_proto(value))
        return response

    @_guard
    async def Classify(self, request, context):  # pylint: disable=invalid-name
        examples = servable_lib.serialize_input(request.input)
        name, version, label = _spec_args(request.model_spec)
        number, key, results = await self.core.classify(
            name, version, label, request.model_spec.signature_name, examples)
        response = classification_pb2.ClassificationResponse()
        _fill_spec(response.model_spec, name, number, key)
        _fill_classifications(response.result, results)
        return response

    @_guard
    async def Regress(self, request, context):  # pylint: disable=invalid-name
        examples = servable_lib.serialize_input(request.input)
        name, version, label = _spec_args(request.model_spec)
        number, key, values = await self.core.regress(
            name, version, label, request.model_spec.signature_name, examples)
        response = regression_pb2.RegressionResponse()
        _fill_spec(response.model_spec, name, number, key)
        response.result.regressions.extend(
            regression_pb2.Regression(value=float(v)) for v in values)
        return response

    @_guard
    async def MultiInference(self, request, context):  # pylint: disable=invalid-name
        examples = servable_lib.serialize_input(request.input)
        tasks = [_spec_args(t.model_spec) + (t.model_spec.signature_name, t.method_name)
                 for t in request.tasks]
        results = await self.core.multi_inference(tasks, examples)
        response = inference_pb2.MultiInferenceResponse()
        name = tasks[0][0]
        for number, key, method, result in results:
            entry = response.results.add()
            _fill_spec(entry.model_spec, name, number, key)
            if method.endswith("classify"):
                _fill_classifications(entry.classification_result, result)
            else:
                entry.regression_result.regressions.extend(
                    regression_pb2.Regression(value=float(v)) for v in result)
        return response

    @_guard
    async def GetModelMetadata(self, request, context):  # pylint: disable=invalid-name
        if not request.metadata_field:
            raise invalid_argument("GetModelMetadataRequest must specify at least one "
                                   "metadata_field")
        for field in request.metadata_field:
            if field != "signature_def":
                raise invalid_argument(f"Metadata field {field} is not supported")
        name, version, label = _spec_args(request.model_spec)
        number, signature_map = self.core.metadata(name, version, label)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        _fill_spec(response.model_spec, name, number, "")
        response.metadata["signature_def"].Pack(signature_map)
        return response


def _fill_classifications(result, rows):
    for row in rows:
        classification = result.classifications.add()
        for label, score in row:
            classification.classes.add(label=label, score=score)


class ModelService(model_service_pb2_grpc.ModelServiceServicer):
    """GetModelStatus and HandleReloadConfigRequest over a ServingCore."""

    def __init__(self, core, executor):
        self.core = core
        self.executor = executor

    @_guard
    async def GetModelStatus(self, request, context):  # pylint: disable=invalid-name
        name, version, label = _spec_args(request.model_spec)
        return self.core.status(name, version, label)

    @_guard
    async def HandleReloadConfigRequest(self, request, context):  # pylint: disable=invalid-name
        import asyncio  # pylint: disable=g-import-not-at-top

        from drgrad.serving.model_config import validate_server_config  # pylint: disable=g-import-not-at-top

        try:
            validate_server_config(request.config)
        except ValueError as error:
            raise invalid_argument(str(error)) from None
        await asyncio.get_running_loop().run_in_executor(
            self.executor, self.core.manager.reload_config, request.config)
        response = model_management_pb2.ReloadConfigResponse()
        response.status.error_code = 0
        return response


def add_services(server, core, executor):
    """Registers both services on a `grpc.aio.Server`."""
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        PredictionService(core), server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelService(core, executor),
                                                              server)

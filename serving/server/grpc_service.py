"""TF Serving's gRPC services (PredictionService, ModelService) on `grpc.aio`.

The servicers subclass the generated classes from tensorflow-serving-api, so method names,
request and response types are exactly TF Serving's. Failures abort the RPC with the status
code TF Serving would return (NOT_FOUND for an unknown servable, INVALID_ARGUMENT for bad
input, ...).

Hardening: a request is parsed only once admitted, and one that does not parse as its proto
is INVALID_ARGUMENT (not UNKNOWN); a
Predict tensor whose dtype differs from the signature's is refused, never cast; its element
count is computed from the declared shape and checked against `max_tensor_elements` (and dim 0
against `max_batch_rows`) before it is decoded (`tensor_codec`); conversion runs on the
parse pool (on the event loop for at most `service.SMALL_WORK` declared elements);
PredictionService calls pass admission control (RESOURCE_EXHAUSTED with a `retry-after`
trailer past the in-flight bound or the longest predicted wait).
"""
import logging
import math

from google.protobuf import message as message_lib
from google.protobuf import symbol_database
import grpc
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import classification_pb2
from tensorflow_serving.apis import get_model_metadata_pb2
from tensorflow_serving.apis import inference_pb2
from tensorflow_serving.apis import model_management_pb2
from tensorflow_serving.apis import model_service_pb2
from tensorflow_serving.apis import model_service_pb2_grpc
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_service_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc
from tensorflow_serving.apis import regression_pb2

from drgrad.serving.server import servable as servable_lib
from drgrad.serving.server import service
from drgrad.serving.server import tensor_codec
from drgrad.serving.server.errors import ServingError, invalid_argument

_log = logging.getLogger(__name__)


def _parse(request_class, data):
    """The request proto from the call's raw bytes; INVALID_ARGUMENT (not UNKNOWN) for bytes
    that are not one."""
    try:
        return request_class.FromString(data)
    except (message_lib.DecodeError, ValueError, RuntimeError) as error:
        raise invalid_argument(f"Cannot parse the request: {error}") from None


def _dtype_label(enum):
    """`int32` for DT_INT32 (TF Serving's wording); the number for an enum value unknown."""
    try:
        return types_pb2.DataType.Name(enum).lower().replace("dt_", "", 1)
    except ValueError:
        return f"dtype {enum}"


def _tensor_to_array(key, tensor, dtype, limits):
    """A Predict input TensorProto as an ndarray of exactly the signature's dtype.

    The declared shape is checked first (known rank, no negative dims, element count and
    rows within the limits): decoding would otherwise expand a 30-byte proto of shape
    [20000000] with one value into 160 MB.
    """
    if tensor.dtype != dtype.as_datatype_enum:
        raise invalid_argument(f"Expects arg[{key}] to be {dtype.name} but "
                               f"{_dtype_label(tensor.dtype)} is provided")
    if tensor.tensor_shape.unknown_rank:
        raise invalid_argument(f"input {key}: the TensorProto shape must have a known rank")
    dims = [d.size for d in tensor.tensor_shape.dim]
    if any(d < 0 for d in dims):
        raise invalid_argument(f"input {key}: negative dimension in shape {dims}")
    elements = math.prod(dims)
    if elements > limits.max_tensor_elements:
        raise invalid_argument(f"input {key}: shape {dims} has {elements} elements, more than "
                               f"the limit of {limits.max_tensor_elements}")
    if dims and dims[0] > limits.max_batch_rows:
        raise invalid_argument(f"input {key} has {dims[0]} rows, more than the limit of "
                               f"{limits.max_batch_rows}")
    try:
        return tensor_codec.to_ndarray(tensor)
    except (TypeError, ValueError) as error:
        raise invalid_argument(f"input {key}: malformed TensorProto: {error}") from None


def _spec_args(model_spec):
    choice = model_spec.WhichOneof("version_choice")
    version = model_spec.version.value if choice == "version" else None
    label = model_spec.version_label if choice == "version_label" else None
    return model_spec.name, version, label


def _fill_spec(spec, name, version, signature_name):
    spec.name = name
    spec.version.value = version
    spec.signature_name = signature_name


def _guard(method, admit=False):
    """Turns ServingError into the matching gRPC status; anything else into INTERNAL.

    The call arrives as raw bytes (see `_method_handlers`) and is parsed here: with `admit`,
    after the core's admission control, so a refused call under overload costs no parsing
    (RESOURCE_EXHAUSTED at arrival, with a `retry-after` trailer). Bytes that are not the
    request proto are INVALID_ARGUMENT.
    """
    async def wrapper(self, data, context):
        try:
            request_class = _REQUEST_CLASSES[method.__name__]
            if not admit:
                return await method(self, _parse(request_class, data), context)
            with self.core.admit():
                return await method(self, _parse(request_class, data), context)
        except ServingError as error:
            if error.code == grpc.StatusCode.RESOURCE_EXHAUSTED:
                context.set_trailing_metadata(
                    (("retry-after", str(self.core.limits.retry_after_seconds)),))
            await context.abort(error.code, error.message)
        except Exception as error:  # pylint: disable=broad-except
            if isinstance(error, grpc.aio.AbortError):
                raise
            _log.exception("internal error in %s", method.__name__)
            await context.abort(grpc.StatusCode.INTERNAL, f"Internal error: {error}")
    wrapper.__name__ = method.__name__
    wrapper.__doc__ = method.__doc__
    return wrapper


def _admitted(method):
    return _guard(method, admit=True)


def _check_examples(examples, limits):
    if len(examples) > limits.max_batch_rows:
        raise invalid_argument(f"Input has {len(examples)} examples, more than the limit of "
                               f"{limits.max_batch_rows}")
    return examples


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    """Predict, Classify, Regress, MultiInference and GetModelMetadata over a ServingCore."""

    def __init__(self, core):
        self.core = core

    @_admitted
    async def Predict(self, request, context):  # pylint: disable=invalid-name
        limits = self.core.limits

        def convert(signature):
            servable_lib.check_input_keys(signature, request.inputs)
            return {key: _tensor_to_array(key, tensor, signature.inputs[key][0], limits)
                    for key, tensor in request.inputs.items()}

        declared = sum(math.prod(d.size for d in t.tensor_shape.dim)
                       for t in request.inputs.values())
        name, version, label = _spec_args(request.model_spec)
        number, key, outputs = await self.core.predict(
            name, version, label, request.model_spec.signature_name, None,
            output_filter=tuple(request.output_filter), convert=convert,
            inline=service.is_small(declared))
        response = predict_pb2.PredictResponse()
        _fill_spec(response.model_spec, name, number, key)
        for output_key, value in outputs.items():
            response.outputs[output_key].CopyFrom(tensor_codec.to_tensor_proto(value))
        return response

    @_admitted
    async def Classify(self, request, context):  # pylint: disable=invalid-name
        examples = _check_examples(
            await self.core.offload(servable_lib.serialize_input, request.input),
            self.core.limits)
        name, version, label = _spec_args(request.model_spec)
        number, key, results = await self.core.classify(
            name, version, label, request.model_spec.signature_name, examples)
        response = classification_pb2.ClassificationResponse()
        _fill_spec(response.model_spec, name, number, key)
        _fill_classifications(response.result, results)
        return response

    @_admitted
    async def Regress(self, request, context):  # pylint: disable=invalid-name
        examples = _check_examples(
            await self.core.offload(servable_lib.serialize_input, request.input),
            self.core.limits)
        name, version, label = _spec_args(request.model_spec)
        number, key, values = await self.core.regress(
            name, version, label, request.model_spec.signature_name, examples)
        response = regression_pb2.RegressionResponse()
        _fill_spec(response.model_spec, name, number, key)
        response.result.regressions.extend(
            regression_pb2.Regression(value=float(v)) for v in values)
        return response

    @_admitted
    async def MultiInference(self, request, context):  # pylint: disable=invalid-name
        examples = _check_examples(
            await self.core.offload(servable_lib.serialize_input, request.input),
            self.core.limits)
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
        self.core.manager.check_base_paths(request.config)
        await asyncio.get_running_loop().run_in_executor(
            self.executor, self.core.manager.reload_config, request.config)
        response = model_management_pb2.ReloadConfigResponse()
        response.status.error_code = 0
        return response


def _request_classes(*services):
    """{method name: request message class} of the served services' methods."""
    return {method.name: symbol_database.Default().GetSymbol(method.input_type.full_name)
            for file_descriptor, service_name in services
            for method in file_descriptor.services_by_name[service_name].methods}


_REQUEST_CLASSES = _request_classes((prediction_service_pb2.DESCRIPTOR, "PredictionService"),
                                    (model_service_pb2.DESCRIPTOR, "ModelService"))


def _method_handlers(service_name, file_descriptor, servicer):
    """Unary handlers for every method of a service. No request deserializer: the handler
    gets the raw bytes and parses them itself once admitted (`_guard`)."""
    handlers = {}
    for method in file_descriptor.services_by_name[service_name].methods:
        response_class = symbol_database.Default().GetSymbol(method.output_type.full_name)
        handlers[method.name] = grpc.unary_unary_rpc_method_handler(
            getattr(servicer, method.name),
            response_serializer=response_class.SerializeToString)
    return grpc.method_handlers_generic_handler(
        f"{file_descriptor.package}.{service_name}", handlers)


def add_services(server, core, executor):
    """Registers both services on a `grpc.aio.Server`."""
    server.add_generic_rpc_handlers((
        _method_handlers("PredictionService", prediction_service_pb2.DESCRIPTOR,
                         PredictionService(core)),
        _method_handlers("ModelService", model_service_pb2.DESCRIPTOR,
                         ModelService(core, executor)),
    ))

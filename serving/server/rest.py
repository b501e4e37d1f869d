"""TF Serving's REST API on aiohttp.

Routes (case-insensitive, as TF Serving's dispatcher matches them):

    GET  /v1/models/{name}[/versions/{v}|/labels/{l}]            model status
    GET  /v1/models/{name}[/versions/{v}|/labels/{l}]/metadata   signature metadata
    POST /v1/models/{name}[/versions/{v}|/labels/{l}]:predict|:classify|:regress

Every response is `application/json`; failures are `{"error": "<message>"}` with the HTTP status
TF Serving maps the status code to. Why aiohttp: a mature asyncio HTTP/1.1 server that is
already in this stack's dependencies, and it shares one event loop with `grpc.aio`, so both
front ends feed the same batcher without cross-thread hand-offs.
"""
import logging
import re
import urllib.parse

from aiohttp import web
from google.protobuf import json_format

from drgrad.serving.server import json_codec
from drgrad.serving.server.errors import ServingError, invalid_argument

_log = logging.getLogger(__name__)

_SPEC = r"/v1/models/([^/:]+)(?:/versions/(\d+)|/labels/([^/:]+))?"
_POST = re.compile(_SPEC + r":(predict|classify|regress)$", re.IGNORECASE)
_GET = re.compile(_SPEC + r"(/metadata)?$", re.IGNORECASE)
_MAX_BODY = 1 << 30
_INT64_MAX = (1 << 63) - 1


def _json_response(document, status=200):
    return web.Response(text=json_codec.dumps(document), status=status,
                        content_type="application/json")


def _error_response(error):
    return _json_response({"error": error.message}, status=error.http_status)


def _model_spec(match, method, path):
    name = urllib.parse.unquote(match.group(1))
    version = match.group(2)
    label = urllib.parse.unquote(match.group(3)) if match.group(3) else None
    if version is not None:
        if int(version) > _INT64_MAX:
            raise invalid_argument(f"Failed to convert version: {version}")
        version = int(version)
    return name, version, label


class RestApi:
    """aiohttp handlers over a `ServingCore`."""

    def __init__(self, core):
        self.core = core

    def make_app(self):
        app = web.Application(client_max_size=_MAX_BODY)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app

    async def handle(self, request):
        path = request.raw_path.split("?", 1)[0]
        try:
            if not path.lower().startswith("/v1/"):
                return _json_response({"error": f"Malformed request: {request.method} {path}"},
                                      status=404)
            if request.method == "POST":
                match = _POST.match(path)
                if match:
                    name, version, label = _model_spec(match, request.method, path)
                    body = await request.read()
                    verb = match.group(4).lower()
                    handler = {"predict": self._predict, "classify": self._classify,
                               "regress": self._regress}[verb]
                    return _json_response(await handler(name, version, label, body))
            elif request.method == "GET":
                if re.fullmatch(r"/v1/models/?", path, re.IGNORECASE):
                    raise invalid_argument("Missing model name in request.")
                match = _GET.match(path)
                if match:
                    name, version, label = _model_spec(match, request.method, path)
                    if match.group(4):
                        return _json_response(self._metadata(name, version, label))
                    status = self.core.status(name, version, label)
                    return _json_response(json_format.MessageToDict(
                        status, preserving_proto_field_name=True,
                        including_default_value_fields=True))
            raise invalid_argument(f"Malformed request: {request.method} {path}")
        except ServingError as error:
            return _error_response(error)
        except Exception as error:  # pylint: disable=broad-except
            _log.exception("internal error on %s %s", request.method, path)
            return _json_response({"error": f"Internal error: {error}"}, status=500)

    async def _predict(self, name, version, label, body):
        document = json_codec.parse_json_body(body)
        signature_name = json_codec.signature_name_of(document)
        row_format = []

        def convert(signature):
            inputs, is_row = json_codec.predict_inputs(document, signature)
            row_format.append(is_row)
            return inputs

        _, _, outputs = await self.core.predict(name, version, label, signature_name, None,
                                                convert=convert)
        return json_codec.predict_response(outputs, row_format[0])

    async def _regress(self, name, version, label, body):
        document = json_codec.parse_json_body(body)
        signature_name = json_codec.signature_name_of(document)
        examples = json_codec.examples_from_document(document)
        _, _, values = await self.core.regress(name, version, label, signature_name, examples)
        return {"results": [float(v) for v in values]}

    async def _classify(self, name, version, label, body):
        document = json_codec.parse_json_body(body)
        signature_name = json_codec.signature_name_of(document)
        examples = json_codec.examples_from_document(document)
        _, _, results = await self.core.classify(name, version, label, signature_name,
                                                 examples)
        return {"results": [[[lab, score] for lab, score in row] for row in results]}

    def _metadata(self, name, version, label):
        number, signature_map = self.core.metadata(name, version, label)
        return {
            "model_spec": {"name": name, "signature_name": "", "version": str(number)},
            "metadata": {"signature_def": json_format.MessageToDict(
                signature_map, preserving_proto_field_name=True,
                including_default_value_fields=True)},
        }

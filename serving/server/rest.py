"""TF Serving's REST API on aiohttp.

Routes (case-insensitive, as TF Serving's dispatcher matches them):

    GET  /v1/models/{name}[/versions/{v}|/labels/{l}]            model status
    GET  /v1/models/{name}[/versions/{v}|/labels/{l}]/metadata   signature metadata
    POST /v1/models/{name}[/versions/{v}|/labels/{l}]:predict|:classify|:regress

Every response is `application/json`; failures are `{"error": "<message>"}` with the HTTP status
TF Serving maps the status code to. Why aiohttp: a mature asyncio HTTP/1.1 server that is
already in this stack's dependencies, and it shares one event loop with `grpc.aio`, so both
front ends feed the same batcher without cross-thread hand-offs.

Hardening (`serving.model_config.ServerLimits`): POSTs pass admission control before their
body is read (429 + `Retry-After` past the in-flight bound or the longest predicted wait); the
body is read under a size cap and a timeout, inflated (gzip/deflate) in chunks under a second
cap, depth-scanned, parsed and converted on the parse pool; only bodies of at most
`service.SMALL_WORK` bytes (tens of microseconds of work, less than the hand-off to a thread)
are handled on the event loop. aiohttp's own protocol errors (request line too long, malformed
header, ...) are answered as `{"error": ...}` JSON too.
"""
import asyncio
import http
import logging
import re
import urllib.parse
import zlib

from aiohttp import web
from aiohttp import web_protocol
from google.protobuf import json_format
import grpc

from drgrad.serving.server import json_codec
from drgrad.serving.server import service
from drgrad.serving.server.errors import ServingError, invalid_argument

_log = logging.getLogger(__name__)

_SPEC = r"/v1/models/([^/:]+)(?:/versions/(\d+)|/labels/([^/:]+))?"
_POST = re.compile(_SPEC + r":(predict|classify|regress)$", re.IGNORECASE)
_GET = re.compile(_SPEC + r"(/metadata)?$", re.IGNORECASE)
_INT64_MAX = (1 << 63) - 1
_INFLATE_CHUNK = 1 << 16
# zlib window bits per Content-Encoding: gzip header, zlib header (deflate as sent in practice).
_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


class HttpRefusal(Exception):
    """A refusal with an HTTP status that has no TF Serving status code (408, 413, 415)."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status
        self.message = message


def _json_response(document, status=200, headers=None):
    return web.Response(text=json_codec.dumps(document), status=status, headers=headers,
                        content_type="application/json")


def inflate(body, encoding, max_bytes):
    """`body` decoded per Content-Encoding, refused (413) as soon as it passes max_bytes."""
    encoding = (encoding or "identity").strip().lower()
    if encoding == "identity":
        return body
    if encoding not in _WBITS:
        raise HttpRefusal(415, f"Unsupported Content-Encoding: {encoding[:40]}")
    inflater = zlib.decompressobj(_WBITS[encoding])
    parts, size, pending = [], 0, body
    try:
        while pending:
            chunk = inflater.decompress(pending, _INFLATE_CHUNK)
            pending = inflater.unconsumed_tail
            size += len(chunk)
            if size > max_bytes:
                raise HttpRefusal(413, f"Decompressed request body exceeds {max_bytes} bytes")
            parts.append(chunk)
        if not inflater.eof:
            raise HttpRefusal(400, f"Truncated {encoding} request body")
    except zlib.error as error:
        raise HttpRefusal(400, f"Cannot decode {encoding} request body: {error}") from None
    return b"".join(parts)


class _JsonErrorHandler(web_protocol.RequestHandler):
    """aiohttp's protocol handler, but its own errors (bad request line, header too long,
    unknown method, ...) are TF Serving's `{"error": ...}` JSON instead of plain text."""

    def handle_error(self, request, status=500, exc=None, message=None):
        if status >= 500:
            self.log_exception("Error handling request", exc_info=exc)
        text = message or getattr(exc, "message", None) or http.HTTPStatus(status).phrase
        response = _json_response({"error": str(text)}, status=status)
        response.force_close()
        return response


class _JsonErrorServer(web.Server):
    def __call__(self):
        return _JsonErrorHandler(self, loop=self._loop, **self._kwargs)


def _model_spec(match):
    name = urllib.parse.unquote(match.group(1))
    version = match.group(2)
    label = urllib.parse.unquote(match.group(3)) if match.group(3) else None
    if version is not None:
        if len(version) > 19 or int(version) > _INT64_MAX:
            raise invalid_argument(f"Failed to convert version: {version[:40]}")
        version = int(version)
    return name, version, label


class RestApi:
    """aiohttp handlers over a `ServingCore` (its `limits` bound every request)."""

    def __init__(self, core):
        self.core = core
        self.limits = core.limits

    def make_server(self):
        """The low-level aiohttp server: JSON protocol errors, idle timeout, no auto-inflate
        (bodies are inflated under a cap by `inflate`)."""
        return _JsonErrorServer(self.handle, keepalive_timeout=self.limits.idle_timeout_seconds,
                                auto_decompress=False, access_log=None)

    async def handle(self, request):
        path = request.raw_path.split("?", 1)[0]
        try:
            if not path.lower().startswith("/v1/"):
                return _json_response({"error": f"Malformed request: {request.method} "
                                                 f"{path[:200]}"}, status=404)
            if request.method == "POST":
                match = _POST.match(path)
                if match:
                    name, version, label = _model_spec(match)
                    with self.core.admit():
                        body = await self._read_body(request)
                        verb = match.group(4).lower()
                        handler = {"predict": self._predict, "classify": self._classify,
                                   "regress": self._regress}[verb]
                        return _json_response(await handler(name, version, label, body))
            elif request.method == "GET":
                if re.fullmatch(r"/v1/models/?", path, re.IGNORECASE):
                    raise invalid_argument("Missing model name in request.")
                match = _GET.match(path)
                if match:
                    name, version, label = _model_spec(match)
                    if match.group(4):
                        return _json_response(self._metadata(name, version, label))
                    status = self.core.status(name, version, label)
                    return _json_response(json_format.MessageToDict(
                        status, preserving_proto_field_name=True,
                        including_default_value_fields=True))
            raise invalid_argument(f"Malformed request: {request.method} {path[:200]}")
        except ServingError as error:
            headers = None
            if error.code == grpc.StatusCode.RESOURCE_EXHAUSTED:
                headers = {"Retry-After": str(self.limits.retry_after_seconds)}
            return _json_response({"error": error.message}, status=error.http_status,
                                  headers=headers)
        except HttpRefusal as error:
            return _json_response({"error": error.message}, status=error.status)
        except Exception as error:  # pylint: disable=broad-except
            _log.exception("internal error on %s %s", request.method, path[:200])
            return _json_response({"error": f"Internal error: {error}"}, status=500)

    async def _read_body(self, request):
        """The raw body, read under `max_body_bytes` and `body_timeout_seconds`, then inflated
        and checked on the parse pool."""
        limit = self.limits.max_body_bytes
        if request.content_length is not None and request.content_length > limit:
            raise HttpRefusal(413, f"Request body of {request.content_length} bytes exceeds "
                                   f"{limit} bytes")
        parts, size = [], 0

        async def read():
            nonlocal size
            async for chunk in request.content.iter_any():
                size += len(chunk)
                if size > limit:
                    raise HttpRefusal(413, f"Request body exceeds {limit} bytes")
                parts.append(chunk)

        try:
            if request.content.is_eof():   # all of it came with the header: nothing to time
                await read()
            else:
                await asyncio.wait_for(read(), self.limits.body_timeout_seconds)
        except asyncio.TimeoutError:
            raise HttpRefusal(408, f"Request body not received within "
                                   f"{self.limits.body_timeout_seconds:g} s") from None
        encoding = request.headers.get("Content-Encoding")
        # An identity body is taken as is; an encoded one may inflate to any size: the pool.
        return await self.core.offload(inflate, b"".join(parts), encoding,
                                       self.limits.max_decompressed_bytes,
                                       inline=encoding is None)

    async def _parse(self, body):
        return await self.core.offload(json_codec.parse_json_body, body,
                                       self.limits.max_json_depth,
                                       inline=service.is_small(len(body)))

    async def _predict(self, name, version, label, body):
        document = await self._parse(body)
        signature_name = json_codec.signature_name_of(document)
        row_format = []

        def convert(signature):
            inputs, is_row = json_codec.predict_inputs(document, signature,
                                                       self.limits.max_batch_rows,
                                                       self.limits.max_tensor_elements)
            row_format.append(is_row)
            return inputs

        _, _, outputs = await self.core.predict(name, version, label, signature_name, None,
                                                convert=convert,
                                                inline=service.is_small(len(body)))
        elements = sum(int(getattr(v, "size", 1)) for v in outputs.values())
        return await self.core.offload(json_codec.predict_response, outputs, row_format[0],
                                       inline=service.is_small(elements))

    async def _examples(self, body):
        document = await self._parse(body)
        signature_name = json_codec.signature_name_of(document)
        examples = await self.core.offload(json_codec.examples_from_document, document,
                                           self.limits.max_batch_rows)
        return signature_name, examples

    async def _regress(self, name, version, label, body):
        signature_name, examples = await self._examples(body)
        _, _, values = await self.core.regress(name, version, label, signature_name, examples)
        return {"results": [float(v) for v in values]}

    async def _classify(self, name, version, label, body):
        signature_name, examples = await self._examples(body)
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

"""Status codes and errors of the TF Serving-compatible server.

TF Serving reports every failure as a `tensorflow::Status`; gRPC carries the code as is and REST
maps it to an HTTP status (`ToHTTPStatusCode` in TF Serving's http_rest_api_handler) with the
body `{"error": "<message>"}`. We use `grpc.StatusCode` as the code type so the gRPC path needs
no translation.
"""
import grpc

# HTTP status per code, as TF Serving's REST front end maps them.
_HTTP_STATUS = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
    grpc.StatusCode.UNAUTHENTICATED: 401,
}


def http_status(code):
    """HTTP status for a `grpc.StatusCode`, as TF Serving's REST API returns it."""
    return _HTTP_STATUS.get(code, 500)


class ServingError(Exception):
    """A request failure with a TF Serving status code and message.

    Args:
      code: a `grpc.StatusCode`.
      message: the message returned to the client (REST `{"error": message}`, gRPC details).
    """

    def __init__(self, code, message):
        if not isinstance(code, grpc.StatusCode):
            raise TypeError(f"code must be a grpc.StatusCode, got {code!r}")
        super().__init__(message)
        self.code = code
        self.message = str(message)

    @property
    def http_status(self):
        return http_status(self.code)

    def __repr__(self):
        return f"ServingError({self.code.name}, {self.message!r})"


def invalid_argument(message):
    return ServingError(grpc.StatusCode.INVALID_ARGUMENT, message)


def not_found(message):
    return ServingError(grpc.StatusCode.NOT_FOUND, message)


def failed_precondition(message):
    return ServingError(grpc.StatusCode.FAILED_PRECONDITION, message)


def resource_exhausted(message):
    return ServingError(grpc.StatusCode.RESOURCE_EXHAUSTED, message)


def deadline_exceeded(message):
    return ServingError(grpc.StatusCode.DEADLINE_EXCEEDED, message)

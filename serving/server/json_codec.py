"""TF Serving's REST JSON formats <-> NumPy tensors and tf.Examples.

Request formats (TF Serving `api_rest.md`, `util/json_tensor.cc`):

* Predict, row format: `{"instances": [row, ...]}`. A row is an object with every named input,
  or a bare value when the signature has a single input. The response is
  `{"predictions": [...]}`: per-row values for a single output, per-row objects for several.
* Predict, columnar format: `{"inputs": value | {name: value}}`, answered with
  `{"outputs": value | {name: value}}`.
* Binary strings travel as `{"b64": "<base64>"}`; outputs whose name ends in `_bytes` are sent
  that way too.
* Classify/Regress: `{"context"?: {feature: value}, "examples": [{feature: value}, ...]}`,
  answered with `{"results": ...}`. JSON integers become int64 features, other numbers float
  features, strings and b64 objects bytes features.
"""
import base64
import binascii
import json
import math
import re

import numpy as np
import orjson

from drgrad.serving.server.errors import invalid_argument

_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1
_JSON_TYPE = {dict: "Object", list: "Array", str: "String", bool: "Boolean", int: "Number",
              float: "Number", type(None): "Null"}


# A JSON string (escapes included), removed before counting brackets.
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")


def json_depth_exceeds(body, max_depth):
    """Whether `body` nests deeper than `max_depth`; a body with no more opening brackets
    than that (a usual request) cannot, and is not scanned."""
    data = bytes(body)
    if data.count(b"[") + data.count(b"{") <= max_depth:
        return False
    return json_depth(data) > max_depth


def json_depth(body):
    """Deepest array/object nesting of a JSON text (bytes), found without parsing it.

    Strings are cut out by one regex pass and every byte but brackets deleted, so the scan
    runs at C speed; the depth is the running maximum of opens minus closes.
    """
    brackets = _JSON_STRING.sub(b"", bytes(body)).translate(None, _NOT_BRACKET)
    if not brackets:
        return 0
    codes = np.frombuffer(brackets, dtype=np.uint8)
    steps = np.where((codes == ord("[")) | (codes == ord("{")), 1, -1)
    return int(np.cumsum(steps).max())


def _parse_int(text):
    return int(text)


def _parse_float(text):
    return float(text)


# Numbers go through Python-level hooks on purpose: `json`'s C scanner never releases the GIL
# by itself, so a large body parsed on a worker thread would still stall the event loop; a
# Python call per number lets the interpreter switch threads every `sys.getswitchinterval()`.
_DECODER = json.JSONDecoder(parse_int=_parse_int, parse_float=_parse_float)
# Bodies up to this size are parsed by orjson (~10x faster; holding the GIL for well under a
# millisecond is no stall). orjson refuses what TF Serving accepts (NaN, Infinity, numbers
# that overflow a double) and turns integers outside int64/uint64 into floats, so bodies with
# a 19-digit number, and any it refuses, go to `_DECODER`: same values and errors as before.
FAST_PARSE_BYTES = 64 << 10
_LONG_INTEGER = re.compile(rb"\d{19}")


def parse_json_body(body, max_depth=None):
    """Parses a request body; TF Serving accepts NaN/Infinity, and so does `json`.

    With `max_depth`, a body nested deeper is refused before it is parsed.
    """
    if isinstance(body, str):
        body = body.encode("utf-8", "surrogatepass")
    if max_depth is not None and json_depth_exceeds(body, max_depth):
        raise invalid_argument(f"JSON Parse error: nesting deeper than {max_depth} levels")
    document = None
    if len(body) <= FAST_PARSE_BYTES and not _LONG_INTEGER.search(body):
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError:
            pass   # `_DECODER` decides: accepted as TF Serving does, or its error message
    try:
        if document is None:
            document = _DECODER.decode(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:   # also a 5,000-digit integer
        raise invalid_argument(f"JSON Parse error: {str(error)[:200]}") from None
    except RecursionError:
        raise invalid_argument("JSON Parse error: nesting too deep") from None
    if not isinstance(document, dict):
        raise invalid_argument("JSON Parse error: the request body must be a JSON object")
    return document


def signature_name_of(document):
    name = document.get("signature_name", "")
    if not isinstance(name, str):
        raise invalid_argument("'signature_name' key must be a string value.")
    return name


def _is_b64(value):
    return isinstance(value, dict) and len(value) == 1 and "b64" in value


def _type_error(value, dtype):
    shown = json.dumps(value) if not isinstance(value, float) or math.isfinite(value) else value
    return invalid_argument(f"JSON Value: {shown} Type: {_JSON_TYPE.get(type(value), '?')} "
                            f"is not of expected type: {_dtype_name(dtype)}")


def _dtype_name(dtype):
    return {"string": "string"}.get(dtype.name, dtype.name)


def _scalar(value, dtype):
    """One JSON scalar as a Python value of the tensor's dtype."""
    if dtype.name == "string":
        if isinstance(value, str):
            return _utf8(value)
        if _is_b64(value):
            if not isinstance(value["b64"], str):
                raise _type_error(value, dtype)
            try:
                return base64.b64decode(value["b64"], validate=True)
            except (binascii.Error, ValueError):
                raise invalid_argument(
                    f"Unable to base64 decode: {value['b64'][:40]!r}") from None
        raise _type_error(value, dtype)
    if dtype.is_bool:
        if isinstance(value, bool):
            return value
        raise _type_error(value, dtype)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _type_error(value, dtype)
    if dtype.is_integer and not isinstance(value, int):
        raise _type_error(value, dtype)
    return value


def _utf8(text):
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as error:   # a lone surrogate, e.g. JSON "\ud800"
        raise invalid_argument(f"JSON string is not valid UTF-8: {error.reason} at "
                               f"{error.start}") from None


def _flatten(value, dtype, flat, max_elements):
    """Appends the scalars of a nested list; returns its shape (checked rectangular)."""
    if isinstance(value, list):
        shapes = [_flatten(v, dtype, flat, max_elements) for v in value]
        if any(s != shapes[0] for s in shapes[1:]):
            raise invalid_argument("Expecting tensors in list to be of same shape, found "
                                   f"{[list(s) for s in shapes[:2]]}")
        return (len(value),) + (shapes[0] if shapes else ())
    if len(flat) >= max_elements:
        raise invalid_argument(f"Input tensor has more than {max_elements} elements")
    flat.append(_scalar(value, dtype))
    return ()


def to_array(value, dtype, max_elements=None):
    """A JSON value (scalar or nested lists) as an ndarray of the signature dtype.

    Refused with INVALID_ARGUMENT (never cast or wrapped): integers outside the dtype's range,
    more than `max_elements` values.
    """
    fast = _flat_numbers(value, dtype, max_elements or float("inf"))
    if fast is not None:
        return fast
    flat = []
    shape = _flatten(value, dtype, flat, max_elements or float("inf"))
    if dtype.name == "string":
        array = np.empty(len(flat), dtype=object)
        array[:] = flat
    else:
        _check_int_range(flat, dtype)
        try:
            array = np.array(flat, dtype=dtype.as_numpy_dtype)
        except OverflowError:
            raise invalid_argument(f"JSON Value out of range for type {_dtype_name(dtype)}: "
                                   f"{_out_of_range(flat, dtype)}") from None
    try:
        return array.reshape(shape)
    except ValueError as error:   # more dimensions than NumPy supports
        raise invalid_argument(f"Input tensor of shape {list(shape)}: {error}") from None


def _flat_numbers(value, dtype, max_elements):
    """A flat list of plain numbers, converted by NumPy in one call (the common case: a
    feature column); None when the checks of the general path are needed instead."""
    if (not isinstance(value, list) or not value or len(value) > max_elements
            or dtype.name == "string" or dtype.is_bool):
        return None
    allowed = {int} if dtype.is_integer else {int, float}
    if not set(map(type, value)) <= allowed:      # bool, nested lists, strings, ...
        return None
    _check_int_range(value, dtype)
    try:
        return np.array(value, dtype=dtype.as_numpy_dtype)
    except OverflowError:
        return None     # the general path names the value


def _check_int_range(values, dtype):
    """Refuses an integer outside ``dtype``'s range before NumPy sees it: NumPy 1.x wraps such a
    value silently (300 as uint8 is 44, -1 as uint64 is 2**64 - 1) where TF Serving refuses it.
    For int64 NumPy raises OverflowError itself, so that common input pays no extra pass."""
    if dtype.is_integer and dtype.as_numpy_dtype is not np.int64 and values:
        info = np.iinfo(dtype.as_numpy_dtype)
        if min(values) < info.min or max(values) > info.max:
            raise invalid_argument(f"JSON Value out of range for type {_dtype_name(dtype)}: "
                                   f"{_out_of_range(values, dtype)}")


def _out_of_range(flat, dtype):
    if not dtype.is_integer:
        return "a number too large for a float"
    info = np.iinfo(dtype.as_numpy_dtype)
    return next(v for v in flat if not info.min <= v <= info.max)


def _check_rows(rows, max_rows, what):
    if max_rows is not None and rows > max_rows:
        raise invalid_argument(f"{what} has {rows} rows, more than the limit of {max_rows}")


def instances_to_inputs(instances, signature, max_rows=None, max_elements=None):
    """Row format `instances` -> `{input: ndarray}` stacked along a new dim 0."""
    if not isinstance(instances, list):
        raise invalid_argument("Expecting 'instances' to be an list/array")
    if not instances:
        raise invalid_argument("No values in 'instances' array")
    _check_rows(len(instances), max_rows, "'instances'")
    names = list(signature.inputs)
    columns = {name: [] for name in names}
    for index, instance in enumerate(instances):
        if isinstance(instance, dict) and not _is_b64(instance):
            missing = [n for n in names if n not in instance]
            extra = [k for k in instance if k not in columns]
            if missing or extra:
                problem = (f"does not have named input: {missing[0]}" if missing
                           else f"has unexpected input: {extra[0]}")
                raise invalid_argument(
                    f"Failed to process element: {index} of 'instances' list. JSON object: "
                    f"{problem} (signature {signature.key} inputs: {names})")
            for name in names:
                columns[name].append(instance[name])
        elif len(names) == 1:
            columns[names[0]].append(instance)
        else:
            raise invalid_argument(
                f"Failed to process element: {index} of 'instances' list. Expecting an object "
                f"with named inputs {names}, since the signature has {len(names)} inputs")
    return {name: to_array(columns[name], signature.inputs[name][0], max_elements)
            for name in names}


def columns_to_inputs(inputs, signature, max_rows=None, max_elements=None):
    """Columnar `inputs` -> `{input: ndarray}`."""
    names = list(signature.inputs)
    if not isinstance(inputs, dict) or _is_b64(inputs):
        if len(names) != 1:
            raise invalid_argument(
                f"'inputs' must be an object keyed by input name, since the signature has "
                f"{len(names)} inputs: {names}")
        inputs = {names[0]: inputs}
    missing = [n for n in names if n not in inputs]
    extra = [k for k in inputs if k not in signature.inputs]
    if missing or extra:
        raise invalid_argument(
            f"'inputs' do not match signature {signature.key}: missing {missing}, "
            f"unexpected {extra}")
    arrays = {name: to_array(inputs[name], signature.inputs[name][0], max_elements)
              for name in names}
    for name, array in arrays.items():
        if array.ndim:
            _check_rows(array.shape[0], max_rows, f"'inputs' {name}")
    return arrays


def predict_inputs(document, signature, max_rows=None, max_elements=None):
    """Returns `(inputs, row_format)` from a predict request document."""
    has_instances, has_inputs = "instances" in document, "inputs" in document
    if has_instances and has_inputs:
        raise invalid_argument(
            "Not formatted correctly expecting only one of 'inputs' or 'instances' keys to exist")
    if not has_instances and not has_inputs:
        raise invalid_argument("Missing 'inputs' or 'instances' key")
    if has_instances:
        return instances_to_inputs(document["instances"], signature, max_rows,
                                   max_elements), True
    return columns_to_inputs(document["inputs"], signature, max_rows, max_elements), False


def _json_value(array, as_b64):
    if array.dtype.kind in ("O", "S", "U"):
        def convert(x):
            if isinstance(x, list):
                return [convert(v) for v in x]
            data = x if isinstance(x, bytes) else str(x).encode("utf-8")
            if as_b64:
                return {"b64": base64.b64encode(data).decode("ascii")}
            return data.decode("utf-8", "replace")
        return convert(array.tolist())
    return array.tolist()


def predict_response(outputs, row_format):
    """`{"predictions": ...}` (row) or `{"outputs": ...}` (columnar), as TF Serving writes them."""
    names = sorted(outputs)
    values = {n: np.asarray(outputs[n]) for n in names}
    if not row_format:
        if len(names) == 1:
            return {"outputs": _json_value(values[names[0]], names[0].endswith("_bytes"))}
        return {"outputs": {n: _json_value(values[n], n.endswith("_bytes")) for n in names}}
    sizes = {n: (v.shape[0] if v.ndim else None) for n, v in values.items()}
    if len(set(sizes.values())) != 1 or None in sizes.values():
        raise invalid_argument(
            f"Output tensors have inconsistent batch sizes {sizes}; use the columnar "
            f"'inputs' format for this signature")
    converted = {n: _json_value(values[n], n.endswith("_bytes")) for n in names}
    if len(names) == 1:
        return {"predictions": converted[names[0]]}
    rows = next(iter(sizes.values()))
    return {"predictions": [{n: converted[n][i] for n in names} for i in range(rows)]}


def _feature(name, value, example):
    _utf8(name)
    feature = example.features.feature[name]
    items = value if isinstance(value, list) else [value]
    if not items:
        raise invalid_argument(f"Feature {name!r} has an empty list of values")
    if all(isinstance(v, str) or _is_b64(v) for v in items):
        from tensorflow.python.framework import dtypes  # pylint: disable=g-import-not-at-top
        feature.bytes_list.value.extend(_scalar(v, dtypes.string) for v in items)
    elif all(isinstance(v, int) and not isinstance(v, bool) for v in items):
        if any(not _INT64_MIN <= v <= _INT64_MAX for v in items):
            raise invalid_argument(f"Feature {name!r}: integer out of int64 range")
        feature.int64_list.value.extend(items)
    elif all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in items):
        try:
            feature.float_list.value.extend(float(v) for v in items)
        except OverflowError:
            raise invalid_argument(f"Feature {name!r}: number too large for a float") from None
    else:
        raise invalid_argument(
            f"Feature {name!r}: values must be all numbers or all strings/b64, got "
            f"{json.dumps(value)[:80]}")


def examples_from_document(document, max_rows=None):
    """Classify/Regress request -> serialized tf.Examples (context merged into each)."""
    from tensorflow.core.example import example_pb2  # pylint: disable=g-import-not-at-top

    examples = document.get("examples")
    if examples is None:
        raise invalid_argument("Missing 'examples' key")
    if not isinstance(examples, list):
        raise invalid_argument("Expecting 'examples' to be an array")
    if not examples:
        raise invalid_argument("'examples' array is empty")
    _check_rows(len(examples), max_rows, "'examples'")
    context = document.get("context", {})
    if not isinstance(context, dict):
        raise invalid_argument("Expecting 'context' to be an object")
    serialized = np.empty(len(examples), dtype=object)
    for index, features in enumerate(examples):
        if not isinstance(features, dict):
            raise invalid_argument(f"Expecting 'examples' element {index} to be an object")
        example = example_pb2.Example()
        for name, value in context.items():
            if name in features:
                raise invalid_argument(
                    f"Feature '{name}' present in both context and examples[{index}]")
            _feature(name, value, example)
        for name, value in features.items():
            _feature(name, value, example)
        serialized[index] = example.SerializeToString()
    return serialized


def dumps(document):
    """Compact JSON; NaN and Infinity are written as TF Serving writes them."""
    return json.dumps(document, separators=(",", ":"), allow_nan=True)

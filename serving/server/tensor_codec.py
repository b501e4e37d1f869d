"""TensorProto <-> ndarray without `tf.make_ndarray` / `tf.make_tensor_proto` on the hot path.

`tf.make_ndarray` and `tf.make_tensor_proto` are general: they dispatch over every field and
dtype in Python, tens of microseconds per tensor, paid for every input and output of every
gRPC Predict. The shapes a client sends almost always are the two that
`tf.make_tensor_proto` itself writes: a numeric array as raw little-endian `tensor_content`,
strings as one `string_val` entry per element. Those are decoded here with one NumPy call;
every other encoding (typed value fields such as `float_val`, a short list broadcast to the
shape, half/bfloat16 through `half_val`, ...) goes to `tf.make_ndarray`, so the result is
always what `tf.make_ndarray` returns.

The declared shape must already be checked (element count within the limits) by the caller.
"""
import math

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2
from tensorflow.core.framework import tensor_shape_pb2
from tensorflow.core.framework import types_pb2

# dtypes whose `tensor_content` is exactly the ndarray's bytes (what make_tensor_proto writes
# and make_ndarray reads back with np.frombuffer).
_CONTENT_DTYPES = {
    enum: np.dtype(tf.dtypes.as_dtype(enum).as_numpy_dtype)
    for enum in (types_pb2.DT_FLOAT, types_pb2.DT_DOUBLE, types_pb2.DT_INT32,
                 types_pb2.DT_INT64, types_pb2.DT_INT16, types_pb2.DT_INT8,
                 types_pb2.DT_UINT8, types_pb2.DT_UINT16, types_pb2.DT_UINT32,
                 types_pb2.DT_UINT64, types_pb2.DT_BOOL, types_pb2.DT_HALF,
                 types_pb2.DT_BFLOAT16, types_pb2.DT_COMPLEX64, types_pb2.DT_COMPLEX128)
}
# The typed value field of each dtype (make_ndarray reads it with np.fromiter).
_VALUE_FIELD = {
    types_pb2.DT_FLOAT: "float_val", types_pb2.DT_DOUBLE: "double_val",
    types_pb2.DT_INT32: "int_val", types_pb2.DT_INT16: "int_val", types_pb2.DT_INT8: "int_val",
    types_pb2.DT_UINT8: "int_val", types_pb2.DT_UINT16: "int_val",
    types_pb2.DT_INT64: "int64_val", types_pb2.DT_UINT32: "uint32_val",
    types_pb2.DT_UINT64: "uint64_val", types_pb2.DT_BOOL: "bool_val",
}
# Outputs: the NumPy dtypes `tf.make_tensor_proto` itself writes as `tensor_content` (it
# writes bool, complex and uint16 into typed fields; those, and bfloat16, stay with it, so every proto
# built here is the one it would build).
_ENUM_OF_NUMPY = {
    _CONTENT_DTYPES[enum]: enum
    for enum in (types_pb2.DT_FLOAT, types_pb2.DT_DOUBLE, types_pb2.DT_INT32,
                 types_pb2.DT_INT64, types_pb2.DT_INT16, types_pb2.DT_INT8,
                 types_pb2.DT_UINT8, types_pb2.DT_UINT32, types_pb2.DT_UINT64,
                 types_pb2.DT_HALF)
}


def to_ndarray(tensor):
    """The ndarray `tf.make_ndarray(tensor)` returns, decoded in one NumPy call when the proto
    carries `tensor_content`, or one typed value (`float_val`, `string_val`, ...) per element
    (raises what make_ndarray raises, TypeError/ValueError, on a malformed proto)."""
    shape = [d.size for d in tensor.tensor_shape.dim]
    count = math.prod(shape)
    numeric = _CONTENT_DTYPES.get(tensor.dtype)
    if numeric is not None and tensor.tensor_content:
        content = tensor.tensor_content
        if len(content) != count * numeric.itemsize:
            # make_ndarray's reshape refuses it too; same exception type, clearer message.
            raise ValueError(f"tensor_content holds {len(content)} bytes, the shape {shape} "
                             f"of {numeric.name} needs {count * numeric.itemsize}")
        # Copied: frombuffer over the proto's bytes would be read-only and keep them alive.
        return np.frombuffer(content, dtype=numeric).reshape(shape).copy()
    if not count:
        return tf.make_ndarray(tensor)
    if tensor.dtype == types_pb2.DT_STRING:
        if len(tensor.string_val) == count:
            return np.array(tensor.string_val, dtype=object).reshape(shape)
        return tf.make_ndarray(tensor)
    field = _VALUE_FIELD.get(tensor.dtype)
    if field is not None and not tensor.tensor_content:
        values = getattr(tensor, field)
        # One value per element (what make_tensor_proto writes for a one-element array);
        # fewer are broadcast by make_ndarray's padding rules.
        if len(values) == count:
            return np.fromiter(values, dtype=numeric, count=count).reshape(shape)
    return tf.make_ndarray(tensor)


# Where `tf.make_tensor_proto` puts the one value of a one-element array (it writes
# `tensor_content` only for more than one element).
_SINGLE_VALUE_FIELD = {np.dtype(np.float32): "float_val", np.dtype(np.float64): "double_val",
                       np.dtype(np.int32): "int_val", np.dtype(np.int64): "int64_val"}


def to_tensor_proto(array):
    """The TensorProto `tf.make_tensor_proto(array)` builds, built directly for numeric arrays
    (dtype, shape, raw `tensor_content`; one value in its typed field, as there); anything
    else (strings, objects, an empty array) through `tf.make_tensor_proto`."""
    array = np.asarray(array)
    enum = _ENUM_OF_NUMPY.get(array.dtype)
    single_field = _SINGLE_VALUE_FIELD.get(array.dtype) if array.size == 1 else None
    if enum is None or array.size == 0 or (array.size == 1 and single_field is None):
        return tf.make_tensor_proto(array)
    proto = tensor_pb2.TensorProto(dtype=enum, tensor_shape=tensor_shape_pb2.TensorShapeProto(
        dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in array.shape]))
    if single_field is not None:
        getattr(proto, single_field).append(array.item())
    else:
        proto.tensor_content = np.ascontiguousarray(array).tobytes()
    return proto

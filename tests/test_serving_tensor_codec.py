"""`serving.server.tensor_codec`: the same arrays and protos as tf.make_ndarray /
tf.make_tensor_proto, on every dtype and encoding a client can send."""
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorflow.core.framework import tensor_pb2  # noqa: E402
from tensorflow.core.framework import types_pb2  # noqa: E402

from drgrad.serving.server import tensor_codec  # noqa: E402

NUMERIC = [np.float32, np.float64, np.float16, np.int8, np.int16, np.int32, np.int64,
           np.uint8, np.uint16, np.uint32, np.uint64, np.bool_, np.complex64, np.complex128,
           tf.bfloat16.as_numpy_dtype]
SHAPES = [(), (1,), (3,), (2, 3), (4, 1, 2)]


def _array(dtype, shape, seed=0):
    values = np.random.default_rng(seed).normal(0, 100, size=shape)
    if np.dtype(dtype) == np.bool_:
        return values > 0
    if np.issubdtype(np.dtype(dtype), np.complexfloating):
        return (values + 1j * values[::-1] if values.ndim else values + 1j).astype(dtype)
    return np.asarray(values).astype(dtype)


def _assert_same(actual, expected):
    assert actual.dtype == expected.dtype
    assert actual.shape == expected.shape
    np.testing.assert_array_equal(actual, expected)


@pytest.mark.parametrize("dtype", NUMERIC, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_numeric_proto_decodes_as_make_ndarray(dtype, shape):
    proto = tf.make_tensor_proto(_array(dtype, shape))
    _assert_same(tensor_codec.to_ndarray(proto), tf.make_ndarray(proto))


@pytest.mark.parametrize("dtype", NUMERIC, ids=lambda d: np.dtype(d).name)
def test_tensor_content_of_every_dtype_decodes_as_make_ndarray(dtype):
    # Raw tensor_content for dtypes make_tensor_proto writes into typed fields (bool, complex,
    # bfloat16): a client may still send them so.
    array = _array(dtype, (2, 3), seed=1)
    proto = tf.make_tensor_proto(array)
    proto.ClearField("bool_val")
    proto.ClearField("scomplex_val")
    proto.ClearField("dcomplex_val")
    proto.ClearField("half_val")
    proto.tensor_content = np.ascontiguousarray(array).tobytes()
    decoded = tensor_codec.to_ndarray(proto)
    _assert_same(decoded, tf.make_ndarray(proto))
    _assert_same(decoded, array)


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_strings_decode_as_make_ndarray(shape):
    array = np.array([f"v{i}".encode() for i in range(int(np.prod(shape)))],
                     dtype=object).reshape(shape)
    proto = tf.make_tensor_proto(array)
    _assert_same(tensor_codec.to_ndarray(proto), tf.make_ndarray(proto))


@pytest.mark.parametrize("dtype, field, values", [
    (types_pb2.DT_FLOAT, "float_val", [1.5, -2.0, 3.25]),
    (types_pb2.DT_DOUBLE, "double_val", [1e300, -2.0, 0.1]),
    (types_pb2.DT_INT32, "int_val", [1, -2, 2 ** 31 - 1]),
    (types_pb2.DT_INT16, "int_val", [1, -2, 300]),
    (types_pb2.DT_INT8, "int_val", [1, -2, 100]),
    (types_pb2.DT_UINT8, "int_val", [1, 2, 255]),
    (types_pb2.DT_UINT16, "int_val", [1, 2, 65535]),
    (types_pb2.DT_INT64, "int64_val", [1, -2, 2 ** 62]),
    (types_pb2.DT_UINT32, "uint32_val", [1, 2, 2 ** 32 - 1]),
    (types_pb2.DT_UINT64, "uint64_val", [1, 2, 2 ** 64 - 1]),
    (types_pb2.DT_BOOL, "bool_val", [True, False, True]),
], ids=lambda v: v if isinstance(v, str) else None)
def test_one_typed_value_per_element_decodes_as_make_ndarray(dtype, field, values):
    proto = tensor_pb2.TensorProto(dtype=dtype, tensor_shape={"dim": [{"size": 3}]},
                                   **{field: values})
    _assert_same(tensor_codec.to_ndarray(proto), tf.make_ndarray(proto))


@pytest.mark.parametrize("proto", [
    tf.make_tensor_proto(7.5, shape=[2, 3]),                        # one value, broadcast
    tf.make_tensor_proto(np.array([], np.float32)),                 # empty
    tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, float_val=[1.0, 2.0, 3.0],
                           tensor_shape={"dim": [{"size": 3}]}),    # typed field, not content
    tensor_pb2.TensorProto(dtype=types_pb2.DT_INT64, int64_val=[4],
                           tensor_shape={"dim": [{"size": 2}]}),    # short list, padded
    tensor_pb2.TensorProto(dtype=types_pb2.DT_STRING, string_val=[b"a"],
                           tensor_shape={"dim": [{"size": 3}]}),    # one string, broadcast
], ids=["broadcast", "empty", "float_val", "int64_pad", "string_broadcast"])
def test_other_encodings_decode_as_make_ndarray(proto):
    _assert_same(tensor_codec.to_ndarray(proto), tf.make_ndarray(proto))


def test_content_of_the_wrong_length_is_refused_like_make_ndarray():
    proto = tf.make_tensor_proto(np.arange(6, dtype=np.float32))
    proto.tensor_content = proto.tensor_content[:-4]
    with pytest.raises(ValueError):
        tf.make_ndarray(proto)
    with pytest.raises(ValueError, match="tensor_content holds 20 bytes"):
        tensor_codec.to_ndarray(proto)


def test_decoded_array_is_writable_and_owns_its_memory():
    proto = tf.make_tensor_proto(np.arange(4, dtype=np.int64))
    decoded = tensor_codec.to_ndarray(proto)
    # np.frombuffer alone would be read-only and keep the proto's bytes alive.
    assert decoded.flags.writeable and decoded.flags.owndata


@pytest.mark.parametrize("dtype", NUMERIC, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_proto_of_an_array_equals_make_tensor_proto(dtype, shape):
    array = _array(dtype, shape, seed=2)
    assert tensor_codec.to_tensor_proto(array) == tf.make_tensor_proto(array)


def test_proto_of_strings_and_non_contiguous_arrays_equals_make_tensor_proto():
    strings = np.array([[b"a", b"bc"], [b"", b"d"]], dtype=object)
    assert tensor_codec.to_tensor_proto(strings) == tf.make_tensor_proto(strings)
    transposed = np.arange(6, dtype=np.float32).reshape(2, 3).T
    assert tensor_codec.to_tensor_proto(transposed) == tf.make_tensor_proto(transposed)

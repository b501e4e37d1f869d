"""Parquet rows become tf.Examples with their zeros: TFX 1.16's own converter drops every 0,
0.0 and "" (`if not pyval`), which `drgrad.pipeline.parquet_example_gen` does not."""
import numpy as np
from tfx.components.example_gen import utils

from drgrad.pipeline.parquet_example_gen import row_to_example

ROW = {"like": 0, "duration": 0.0, "city": "", "uid": b"u7", "item_id": np.int64(3),
       "score": None, "nan": float("nan"), "tags": np.array([1, 0])}


def test_zeros_are_values_and_only_nulls_are_missing():
    feature = row_to_example(ROW).features.feature
    assert list(feature["like"].int64_list.value) == [0]
    assert list(feature["duration"].float_list.value) == [0.0]
    assert list(feature["city"].bytes_list.value) == [b""]
    assert list(feature["uid"].bytes_list.value) == [b"u7"]
    assert list(feature["item_id"].int64_list.value) == [3]
    assert list(feature["tags"].int64_list.value) == [1, 0]
    assert feature["score"].WhichOneof("kind") is None
    assert feature["nan"].WhichOneof("kind") is None


def test_tfx_converter_loses_the_zeros_this_one_keeps():
    tfx_feature = utils.dict_to_example(dict(ROW, score=1)).features.feature
    assert tfx_feature["like"].WhichOneof("kind") is None      # the 0 label is gone
    assert tfx_feature["duration"].WhichOneof("kind") is None

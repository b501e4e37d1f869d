"""Parquet -> `tf.Example` for `FileBasedExampleGen`: TFX's Parquet executor, zeros kept.

TFX 1.16's Parquet executor (`tfx.components.example_gen.custom_executors.parquet_executor`)
converts each row with `example_gen.utils.dict_to_example`, which tests ``if not pyval`` and so
writes an EMPTY feature for 0, 0.0 and "": every 0 label, every id 0 and every zero duration
would reach the pipeline as a missing value (seen here: a 0/1 label column inferred as
optional, a model trained on positives only). This executor reads the files the same way
(`beam.io.ReadFromParquet` over the split pattern) and converts with TFX's own
`pyval_to_feature`, treating only a null as missing.
"""
from typing import Any, Dict

import apache_beam as beam
import numpy as np
from tfx.components.example_gen import utils
from tfx.components.example_gen.base_example_gen_executor import BaseExampleGenExecutor
from tfx.types import standard_component_specs

from tensorflow.core.example import example_pb2, feature_pb2


def row_to_example(row: Dict[str, Any]) -> example_pb2.Example:
    """One Parquet row (column -> scalar, list or None) as a `tf.Example`; None is missing."""
    feature = {}
    for key, value in row.items():
        if isinstance(value, np.ndarray):
            value = value.tolist()
        elif isinstance(value, np.generic):
            value = value.item()
        if isinstance(value, bytes):
            value = value.decode("utf-8")
        if value is None or (isinstance(value, float) and np.isnan(value)):
            feature[key] = feature_pb2.Feature()
        elif isinstance(value, list):
            feature[key] = utils.pyval_to_feature(value)
        else:
            feature[key] = utils.pyval_to_feature([value])
    return example_pb2.Example(features=feature_pb2.Features(feature=feature))


@beam.ptransform_fn
@beam.typehints.with_input_types(beam.Pipeline)
@beam.typehints.with_output_types(example_pb2.Example)
def _ParquetToExample(  # pylint: disable=invalid-name
        pipeline: beam.Pipeline, exec_properties: Dict[str, Any],
        split_pattern: str) -> beam.pvalue.PCollection:
    import os  # pylint: disable=g-import-not-at-top
    pattern = os.path.join(exec_properties[standard_component_specs.INPUT_BASE_KEY],
                           split_pattern)
    return (pipeline
            | "ReadFromParquet" >> beam.io.ReadFromParquet(pattern)
            | "ToTFExample" >> beam.Map(row_to_example))


class Executor(BaseExampleGenExecutor):
    """`FileBasedExampleGen` executor for Parquet files (module docstring)."""

    def GetInputSourceToExamplePTransform(self) -> beam.PTransform:  # pylint: disable=invalid-name
        return _ParquetToExample

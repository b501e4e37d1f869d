"""CSV -> `tf.Example` for `FileBasedExampleGen`: TFX's `CsvExampleGen` output, in C++.

TFX 1.16's `CsvExampleGen` (`components/example_gen/csv_example_gen/executor.py`) reads each
line in Python, parses its cells with `csv`, infers every column's type over ALL parsed lines of
a split (a `CombineGlobally` side input, so the DirectRunner holds every parsed line), builds each
`tf.Example` cell by cell, and the base executor then sends every example through `Partition`,
`Reshuffle` and `WriteToTFRecord` one Beam element at a time: 6.4k rows/s at 1M rows
(docs/SCALING.md). This executor is told the column types instead (`custom_config`,
`{column: "int" | "float" | "string"}`; `dataset_column_types` gives a dataset's) and, when the
files have those types, its `Do` runs one Beam element per CSV file: Arrow's C++ reader reads it
in large blocks, tfx_bsl's C++ `RecordBatchToExamplesEncoder` encodes whole record batches, and
TensorFlow's C++ `TFRecordWriter` writes them, gzipped, to `data_tfrecord-<file>-of-<files>.gz`
in each output split.

The examples and splits are CsvExampleGen's, as long as the declared types are the ones it
infers from the split (`DatasetSpec.raw_dtypes` documents them as such):

* a cell is a one-value `int64_list` / `float_list` (parsed as a double, stored as float32, as
  `float_list` stores Python's `float(cell)`) / `bytes_list`; an empty cell, quoted or not, an
  empty list of its column's kind; a column empty in every row of a split a `Feature` with no
  kind (CsvExampleGen's UNKNOWN type); blank lines are skipped; quoted cells may hold commas,
  quotes and newlines;
* a hash split calls the base executor's `_PartitionFn` on the proto CsvExampleGen would hand
  it (the example, or, with `partition_feature_name`, an example of that feature alone), so
  every row gets the same key bytes, the same bucket and the same split;
* the records are written in file order, which is also the order TFX's `Reshuffle` leaves them
  in on the in-memory DirectRunner.

Otherwise `Do` is TFX's CsvExampleGen executor's (this class extends it), with a warning saying
why. That is decided in `Do`, at run time, since the span to read is only known then, for all
input splits together: `check_split` reads every file once, typed (Arrow: ~0.3 s per 800,000
simulated rows here), before the Beam pipeline, and TFX's executor runs when:

* a column of a split's header has no declared type, or the files' headers differ;
* a file does not parse with the declared types (`TypedCsvError` names the file, column and
  value: "abc" in an "int" column, a row with too many cells, ...). Such a day then reaches
  StatisticsGen and ExampleValidator exactly as before, and the validation gate names the
  column (tests/test_pipeline_bad_days.py);
* the output is not tf.Examples in gzipped TFRecords, or the partition feature is no column.

Not caught by that check: data the declared type accepts but CsvExampleGen would type narrower,
e.g. a "float" column whose cells are all integers in this split (CsvExampleGen: `int64_list`,
which the curated schema then flags) or a "string" column of integers. Such columns keep their
declared type here.
"""
import contextlib
import itertools
import os
import re
from typing import Any, Dict, FrozenSet, Iterator, List, Mapping, Optional, Sequence

import apache_beam as beam
import numpy as np
import pyarrow as pa
import tensorflow as tf
from absl import logging
from pyarrow import csv as pa_csv
from pyarrow import fs as pa_fs
from tfx import types as types_lib
from tfx.components.example_gen import base_example_gen_executor, utils, write_split
from tfx.components.example_gen.csv_example_gen import executor as tfx_csv_executor
from tfx.components.util import examples_utils
from tfx.dsl.io import fileio
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import io_utils, proto_utils
from tfx_bsl.coders import example_coder

from google.protobuf import struct_pb2
from tensorflow.core.example import example_pb2

from drgrad.data.dataset_spec import DatasetSpec

ARROW_TYPES = {"int": pa.int64(), "float": pa.float64(), "string": pa.string()}
# Bytes of CSV per Arrow block: large enough that per-batch Python work does not matter.
BLOCK_BYTES = 16 << 20
_ARROW_COLUMN = re.compile(r"In CSV column #(\d+): (.*)", re.DOTALL)
# Gzip level 1: a third of the default level's time per record here, files ~35 % larger.
_GZIP_FASTEST = tf.io.TFRecordOptions(compression_type="GZIP", compression_level=1)


class TypedCsvError(ValueError):
    """Why CSV files cannot be read as typed: a cell or row that does not parse with the
    declared types, an untyped column, ... (`Executor.Do` then runs TFX's CsvExampleGen)."""


def dataset_column_types(spec: DatasetSpec, timestamp: Optional[str] = None) -> Dict[str, str]:
    """The type of every column a dataset's CSV files hold: `spec.raw_dtypes` for the
    features, "int" for the 0/1 task labels and the dataset file's `timestamp` column (unix
    seconds), if any (`drgrad.data.check` holds the data to these types)."""
    types = dict(spec.raw_dtypes)
    types.update(dict.fromkeys(spec.tasks, "int"))
    if timestamp is not None:
        types[timestamp] = "int"
    return types


def custom_config(column_types: Mapping[str, str]) -> example_gen_pb2.CustomConfig:
    """The component's `custom_config`: `{column: "int" | "float" | "string"}` as a `Struct`."""
    bad = {column: kind for column, kind in column_types.items() if kind not in ARROW_TYPES}
    if bad:
        raise ValueError(f"column types must be one of {sorted(ARROW_TYPES)}, got {bad}")
    types = struct_pb2.Struct()
    types.update(dict(column_types))
    config = example_gen_pb2.CustomConfig()
    config.custom_config.Pack(types)
    return config


def column_types(exec_properties: Mapping[str, Any]) -> Dict[str, str]:
    """`{column: type}` from the executor's `custom_config` (JSON of `custom_config(...)`);
    none without one."""
    config_json = exec_properties.get(standard_component_specs.CUSTOM_CONFIG_KEY)
    if not config_json:
        return {}
    config = example_gen_pb2.CustomConfig()
    proto_utils.json_to_proto(config_json, config)
    types = struct_pb2.Struct()
    if not config.custom_config.Unpack(types):
        raise ValueError(f"custom_config must hold a google.protobuf.Struct of column types, "
                         f"got {config.custom_config.type_url!r}")
    return dict(types)


def read_typed_csv(path: str, header: Sequence[str],
                   types: Mapping[str, str]) -> Iterator[pa.RecordBatch]:
    """The rows of one CSV file (`header` its first line), in record batches of `BLOCK_BYTES`,
    columns typed as declared and an empty cell (quoted or not) null.

    Raises:
      TypedCsvError: naming the file (and the column, when Arrow names one) if a cell does not
        parse as its column's type or a row does not have one cell per column.
    """
    options = dict(
        read_options=pa_csv.ReadOptions(column_names=list(header), skip_rows=1,
                                        block_size=BLOCK_BYTES),
        parse_options=pa_csv.ParseOptions(newlines_in_values=True),
        convert_options=pa_csv.ConvertOptions(
            column_types={column: ARROW_TYPES[types[column]] for column in header},
            null_values=[""], strings_can_be_null=True, quoted_strings_can_be_null=True))
    # Arrow's own filesystems (local, gs://, s3://, hdfs://): tf.io.gfile's file objects are
    # not Arrow-readable. A URI Arrow cannot read fails here, and TFX reads the split instead.
    filesystem_path = path if "://" in path else os.path.abspath(path)
    try:
        filesystem, inner_path = pa_fs.FileSystem.from_uri(filesystem_path)
        with filesystem.open_input_stream(inner_path) as stream:
            yield from pa_csv.open_csv(stream, **options)
    except pa.ArrowInvalid as error:
        raise TypedCsvError(_typed_csv_message(path, header, types, str(error))) from None


def _typed_csv_message(path, header, types, arrow_message) -> str:
    match = _ARROW_COLUMN.match(arrow_message)
    if match is None:
        return f"{path}: {arrow_message}"
    column = header[int(match.group(1))]
    return (f"{path}: column {column!r} (declared {types[column]!r}) does not parse: "
            f"{match.group(2)}")


def empty_columns(paths: Sequence[str], header: Sequence[str],
                  types: Mapping[str, str]) -> FrozenSet[str]:
    """Columns without a value in any row of `paths` (one split); reading every file once also
    checks that it parses with the declared types (`TypedCsvError` otherwise)."""
    values = dict.fromkeys(header, 0)
    for path in paths:
        for batch in read_typed_csv(path, header, types):
            for column, array in zip(batch.schema.names, batch.columns):
                values[column] += len(array) - array.null_count
    return frozenset(column for column, count in values.items() if count == 0)


def _feature_lists(batch: pa.RecordBatch, empty: FrozenSet[str]) -> pa.RecordBatch:
    """`batch` as the encoder's input: one list per cell (a null cell an empty list, a column in
    `empty` all nulls: no kind), floats as float32, strings as bytes."""
    rows = batch.num_rows
    arrays = []
    for name in batch.schema.names:
        column = batch.column(name)
        if column.type == pa.float64():
            column = column.cast(pa.float32())
        elif column.type == pa.string():
            column = column.cast(pa.binary())
        if name in empty:
            arrays.append(pa.nulls(rows, pa.large_list(column.type)))
            continue
        if column.null_count:
            offsets = np.zeros(rows + 1, np.int64)
            np.cumsum(column.is_valid().to_numpy(zero_copy_only=False), out=offsets[1:])
            column = column.drop_null()
        else:
            offsets = np.arange(rows + 1, dtype=np.int64)
        arrays.append(pa.LargeListArray.from_arrays(pa.array(offsets), column))
    return pa.RecordBatch.from_arrays(arrays, batch.schema.names)


def check_split(paths: Sequence[str], types: Mapping[str, str]):
    """`(header, empty columns)` of one split's CSV files, if they can be read as typed.

    Raises:
      TypedCsvError: no file, headers that differ, a column without one declared type, or a file
        that does not parse with the declared types; the message says which.
    """
    if not paths:
        raise TypedCsvError("no file matches")
    header = io_utils.load_csv_column_names(paths[0])
    if any(io_utils.load_csv_column_names(path) != header for path in paths[1:]):
        raise TypedCsvError(f"the headers of {paths} differ")
    untyped = sorted(column for column in header if column not in types)
    if untyped:
        raise TypedCsvError(f"{paths[0]}: columns without a declared type: {untyped}")
    twice = sorted({column for column in header if header.count(column) > 1})
    if twice:
        raise TypedCsvError(f"{paths[0]}: columns named twice: {twice}")
    return header, empty_columns(paths, header, types)


def _checked_splits(exec_properties: Mapping[str, Any], input_config: example_gen_pb2.Input,
                    output_config: example_gen_pb2.Output, types: Mapping[str, str]):
    """`{input split: (paths, header, empty columns)}` if `Executor.Do` can write every split
    itself (`TypedCsvError` saying why not otherwise)."""
    payload_format = exec_properties.get(standard_component_specs.OUTPUT_DATA_FORMAT_KEY,
                                         example_gen_pb2.FORMAT_TF_EXAMPLE)
    file_format = exec_properties.get(standard_component_specs.OUTPUT_FILE_FORMAT_KEY,
                                      example_gen_pb2.FILE_FORMAT_UNSPECIFIED)
    if payload_format != example_gen_pb2.FORMAT_TF_EXAMPLE or file_format not in (
            example_gen_pb2.FILE_FORMAT_UNSPECIFIED, example_gen_pb2.FORMAT_TFRECORDS_GZIP):
        raise TypedCsvError("only tf.Examples in gzipped TFRecord files are written as typed")
    if output_config.split_config.splits and len(input_config.splits) != 1:
        raise TypedCsvError("output splits need exactly one input split")
    feature = output_config.split_config.partition_feature_name
    splits = {}
    for split in input_config.splits:
        paths = fileio.glob(os.path.join(
            exec_properties[standard_component_specs.INPUT_BASE_KEY], split.pattern))
        header, empty = check_split(paths, types)
        if feature and feature not in header:
            raise TypedCsvError(f"the partition feature {feature!r} is not a column")
        splits[split.name] = (paths, header, empty)
    return splits


class _WriteTypedCsvFile(beam.DoFn):
    """One CSV file `(index, path)` of a checked input split -> its examples, written to
    `<output split>/data_tfrecord-<index>-of-<count>.gz`, one file per output split: all to the
    one output split, or each row to the split `_PartitionFn` gives its example (or its
    partition feature) when `split_config` hash-splits."""

    def __init__(self, header: List[str], types: Dict[str, str], empty: FrozenSet[str],
                 split_uris: List[str], file_count: int,
                 split_config: Optional[example_gen_pb2.SplitConfig]):
        self._header, self._types, self._empty = header, types, empty
        self._split_uris, self._file_count, self._split_config = (split_uris, file_count,
                                                                  split_config)
        if split_config is not None:  # as the base executor's `GenerateExamplesByBeam`
            self._buckets = list(itertools.accumulate(
                split.hash_buckets for split in split_config.splits))
        self._encoder = None
        self._examples = beam.metrics.Metrics.counter(write_split.METRICS_NAMESPACE,
                                                      "num_instances")

    def setup(self):
        self._encoder = example_coder.RecordBatchToExamplesEncoder()

    def process(self, element):
        """Writes the examples of one `(index, path)`; yields the TFRecord files written."""
        index, path = element
        name = (f"{write_split.DEFAULT_TF_RECORD_FILE_NAME}-{index:05d}-of-"
                f"{self._file_count:05d}.gz")
        outputs = [os.path.join(uri, name) for uri in self._split_uris]
        with contextlib.ExitStack() as stack:
            writers = [stack.enter_context(tf.io.TFRecordWriter(output, _GZIP_FASTEST))
                       for output in outputs]
            for batch in read_typed_csv(path, self._header, self._types):
                features = _feature_lists(batch, self._empty)
                records = self._encoder.encode(features)
                self._examples.inc(len(records))
                if self._split_config is None:
                    for record in records:
                        writers[0].write(record)
                else:
                    self._write_hash_split(writers, features, records)
        yield from outputs

    def _write_hash_split(self, writers, features, records):
        # `_PartitionFn` itself, on the proto CsvExampleGen hands it: the example, or (with a
        # partition feature) an example of that feature alone, parsed once per distinct key.
        feature_name = self._split_config.partition_feature_name
        keys = records
        if feature_name:
            keys = self._encoder.encode(pa.RecordBatch.from_arrays(
                [features.column(feature_name)], [feature_name]))
        distinct = pa.array(keys, pa.binary()).dictionary_encode()
        split_of_key = np.array([
            base_example_gen_executor._PartitionFn(  # pylint: disable=protected-access
                example_pb2.Example.FromString(key), len(self._buckets), self._buckets,
                self._split_config)
            for key in distinct.dictionary.to_pylist()], np.int64)
        for record, split in zip(records, split_of_key[distinct.indices.to_numpy()].tolist()):
            writers[split].write(record)


class Executor(tfx_csv_executor.Executor):
    """TFX's CsvExampleGen executor, whose `Do` reads the CSV files as typed and writes the
    examples itself when every input split passes `check_split` (module docstring)."""

    def Do(self, input_dict: Dict[str, List[types_lib.Artifact]],
           output_dict: Dict[str, List[types_lib.Artifact]],
           exec_properties: Dict[str, Any]) -> None:
        input_config = example_gen_pb2.Input()
        proto_utils.json_to_proto(exec_properties[standard_component_specs.INPUT_CONFIG_KEY],
                                  input_config)
        output_config = example_gen_pb2.Output()
        proto_utils.json_to_proto(exec_properties[standard_component_specs.OUTPUT_CONFIG_KEY],
                                  output_config)
        types = column_types(exec_properties)
        try:
            splits = _checked_splits(exec_properties, input_config, output_config, types)
        except TypedCsvError as error:
            logging.warning("CSV files read by TFX's CsvExampleGen: %s", error)
            super().Do(input_dict, output_dict, exec_properties)
            return
        self._log_startup(input_dict, output_dict, exec_properties)
        examples = output_dict[standard_component_specs.EXAMPLES_KEY]
        split_names = utils.generate_output_split_names(input_config, output_config)
        artifact_utils.get_single_instance(examples).split_names = (
            artifact_utils.encode_split_names(split_names))
        split_uris = {name: artifact_utils.get_split_uri(examples, name) for name in split_names}
        for uri in split_uris.values():
            fileio.makedirs(uri)
        hash_split = output_config.split_config if output_config.split_config.splits else None
        with self._make_beam_pipeline() as pipeline:
            for name, (paths, header, empty) in splits.items():
                targets = split_names if hash_split else [name]
                _ = (pipeline
                     | f"CsvFiles[{name}]" >> beam.Create(list(enumerate(paths)))
                     | f"WriteExamples[{name}]" >> beam.ParDo(_WriteTypedCsvFile(
                         header, {column: types[column] for column in header}, empty,
                         [split_uris[target] for target in targets], len(paths), hash_split)))
        # The artifact properties the base executor's `Do` sets.
        payload_format = exec_properties.get(standard_component_specs.OUTPUT_DATA_FORMAT_KEY)
        file_format = exec_properties.get(standard_component_specs.OUTPUT_FILE_FORMAT_KEY)
        for artifact in examples:
            if payload_format:
                examples_utils.set_payload_format(artifact, payload_format)
            if file_format:
                examples_utils.set_file_format(artifact,
                                               write_split.to_file_format_str(file_format))

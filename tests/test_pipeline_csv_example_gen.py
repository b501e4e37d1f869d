"""`pipeline.csv_example_gen` against TFX's CsvExampleGen executor: both run through their `Do`
on the same files with Beam's in-memory runner (as TFX's csv_example_gen `executor_test` runs
`Do`), and every output split must hold the same examples, compared as multisets of their
deterministic serializations (so float32 values compare bit for bit), hash-split on the whole
example and on a partition feature.

Data: a census slice (`drgrad data build census`), a small simulated day (`drgrad.data.
simulator_output.simulate`) and hand-written CSV files with empty cells, quoted commas, quotes
and newlines, negative ints, integers in a float column, a column empty in every row and a
column empty in only one of the split's two files.
"""
import collections
import glob
import os

import pytest

# (train, eval, test) hash buckets of the single input split.
BUCKETS = (("train", 3), ("eval", 1), ("test", 1))

# Two files of one split. `id` has an empty cell, negatives and the int64 maximum; `price` is
# float with integers, exponents, -0.0, an overflow to float32 inf and a nan in it; `name` has
# a quoted comma, doubled quotes, an embedded newline, an empty quoted cell; `blank` is empty in
# every row (CsvExampleGen: a Feature with no kind); `late` is empty in the first file only.
# A blank line is skipped.
HAND_HEADER = "id,price,name,blank,late,label\n"
HAND_FILES = {
    "part-0.csv": (HAND_HEADER
                   + "1,2.5,plain,,,0\n"
                   + "-7,3,\"a, b\",,,1\n"
                   + "\n"
                   + ",0.1,\"say \"\"hi\"\"\",,,0\n"
                   + "12,,\"two\nlines\",,,1\n"
                   + "5,16777217,\"\",,,0\n"),
    "part-1.csv": (HAND_HEADER
                   + "9223372036854775807,-1e-50,x,,7,1\n"
                   + "-3,1e3,,,-2,0\n"
                   + "4,-0.0,\"\"\"\",,,1\n"
                   + "6,1e39,y,,,0\n"
                   + "8,nan,z,,,1\n"),
}
HAND_TYPES = {"id": "int", "price": "float", "name": "string", "blank": "float", "late": "int",
              "label": "int"}


def _run(executor_class, input_base, patterns, types, out_dir, partition_feature=""):
    """`executor_class().Do` on `patterns` (`{input split: pattern}`; a single one is hash-split
    into `BUCKETS`, on `partition_feature` if given); `{split: Counter of examples}`."""
    import tensorflow as tf
    from tfx.proto import example_gen_pb2
    from tfx.types import artifact_utils, standard_artifacts, standard_component_specs
    from tfx.utils import proto_utils

    from drgrad.pipeline import csv_example_gen

    examples = standard_artifacts.Examples()
    examples.uri = str(out_dir)
    output_config = example_gen_pb2.Output()
    if len(patterns) == 1:
        output_config.split_config.splits.extend(
            example_gen_pb2.SplitConfig.Split(name=name, hash_buckets=buckets)
            for name, buckets in BUCKETS)
    if partition_feature:  # a oneof: even "" would count as set (and fail in TFX)
        output_config.split_config.partition_feature_name = partition_feature
    exec_properties = {
        standard_component_specs.INPUT_BASE_KEY: str(input_base),
        standard_component_specs.INPUT_CONFIG_KEY: proto_utils.proto_to_json(
            example_gen_pb2.Input(splits=[example_gen_pb2.Input.Split(name=name, pattern=pattern)
                                          for name, pattern in patterns.items()])),
        standard_component_specs.OUTPUT_CONFIG_KEY: proto_utils.proto_to_json(output_config),
        standard_component_specs.CUSTOM_CONFIG_KEY: proto_utils.proto_to_json(
            csv_example_gen.custom_config(types)),
    }
    executor_class().Do({}, {standard_component_specs.EXAMPLES_KEY: [examples]},
                        exec_properties)
    splits = {}
    for name in artifact_utils.decode_split_names(examples.split_names):
        files = sorted(glob.glob(os.path.join(str(out_dir), f"Split-{name}", "*.gz")))
        records = tf.data.TFRecordDataset(files, compression_type="GZIP")
        splits[name] = collections.Counter(
            tf.train.Example.FromString(record.numpy()).SerializeToString(deterministic=True)
            for record in records)
    return splits


def _both(tmp_path, input_base, patterns, types, partition_feature=""):
    """`_run` of TFX's CsvExampleGen executor and of ours on the same files."""
    from tfx.components.example_gen.csv_example_gen import executor as tfx_csv_executor

    from drgrad.pipeline import csv_example_gen

    return tuple(_run(executor, input_base, patterns, types, tmp_path / name, partition_feature)
                 for name, executor in (("tfx", tfx_csv_executor.Executor),
                                        ("ours", csv_example_gen.Executor)))


def _assert_same_splits(tfx_splits, ours, rows):
    assert set(ours) == set(tfx_splits)
    assert all(ours.values())  # every split holds examples
    assert sum(sum(split.values()) for split in ours.values()) == rows
    assert ours == tfx_splits


def _assert_fast_path(input_base, pattern, types):
    """The split is read as typed (no fallback to TFX's transform)."""
    from drgrad.pipeline import csv_example_gen

    csv_example_gen.check_split(sorted(glob.glob(os.path.join(str(input_base), pattern))),
                                types)


def _write_hand_files(folder):
    folder.mkdir(parents=True)
    for name, text in HAND_FILES.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def census(tmp_path_factory):
    from drgrad.data.datasets import build
    from drgrad.data.specs import get_spec

    from drgrad.pipeline import csv_example_gen

    root = build("census", str(tmp_path_factory.mktemp("census")), rows=400)["path"]
    return root, csv_example_gen.dataset_column_types(get_spec("census"))


@pytest.fixture(scope="module")
def simulated_day(tmp_path_factory):
    from drgrad.data import dataset_file, simulator_config, simulator_output

    from drgrad.pipeline import csv_example_gen

    config = simulator_config.configure("default", {"users": 600, "items": 300, "authors": 40,
                                                    "seed": 3, "days": 1,
                                                    "rows_per_day": 2500})
    result = simulator_output.simulate(config, tmp_path_factory.mktemp("sim"), "sim",
                                       workers=1)
    dataset = dataset_file.load(result["description"])
    types = csv_example_gen.dataset_column_types(dataset.spec(), dataset.timestamp)
    return result["path"], types, result["manifest"]["spans"]["1"]["rows"]


@pytest.mark.parametrize("partition_feature", ["", "education"])
def test_census_slice_same_examples_same_splits(census, tmp_path, partition_feature):
    root, types = census
    _assert_fast_path(root, "span-1/train/*", types)
    tfx_splits, ours = _both(tmp_path, root, {"all": "span-1/train/*"}, types, partition_feature)
    _assert_same_splits(tfx_splits, ours, 400)


@pytest.mark.parametrize("partition_feature", ["", "user_id"])
def test_simulated_day_same_examples_same_splits(simulated_day, tmp_path, partition_feature):
    root, types, _ = simulated_day
    assert "ts" in types and types["duration"] == "float"
    _assert_fast_path(root, "span-1/*/*", types)
    tfx_splits, ours = _both(tmp_path, root, {"all": "span-1/*/*"}, types, partition_feature)
    _assert_same_splits(tfx_splits, ours, 2500)


def test_simulated_day_input_splits_same_examples(simulated_day, tmp_path):
    """The pipeline's default: span-N/train and span-N/eval read as they are, no hash split."""
    root, types, rows = simulated_day
    patterns = {"train": "span-1/train/*", "eval": "span-1/eval/*"}
    tfx_splits, ours = _both(tmp_path, root, patterns, types)
    assert set(ours) == {"train", "eval"}
    _assert_same_splits(tfx_splits, ours, rows["train"] + rows["eval"])


@pytest.mark.parametrize("partition_feature", ["", "id"])
def test_hand_written_edge_cases_same_examples_same_splits(tmp_path, partition_feature):
    data = _write_hand_files(tmp_path / "data")
    _assert_fast_path(data, "*.csv", HAND_TYPES)
    tfx_splits, ours = _both(tmp_path, data, {"all": "*.csv"}, HAND_TYPES, partition_feature)
    assert set(ours) == {name for name, _ in BUCKETS}
    assert sum(sum(split.values()) for split in ours.values()) == 10
    assert ours == tfx_splits


def test_hand_written_cells_become_these_features(tmp_path):
    """The edge cases by value, not only as 'what TFX does'."""
    import math

    import numpy as np
    import tensorflow as tf

    from drgrad.pipeline import csv_example_gen

    data = _write_hand_files(tmp_path / "data")
    splits = _run(csv_example_gen.Executor, data, {"all": "*.csv"}, HAND_TYPES, tmp_path / "out")
    rows = {}  # by the `id` values
    for record in (r for split in splits.values() for r in split.elements()):
        feature = tf.train.Example.FromString(record).features.feature
        rows[tuple(feature["id"].int64_list.value)] = feature
    assert len(rows) == 10  # the blank line is skipped

    def values(row_id, column):
        feature = rows[row_id][column]
        return list(getattr(feature, feature.WhichOneof("kind")).value)

    assert all(row["blank"].WhichOneof("kind") is None for row in rows.values())
    assert rows[()]["id"].WhichOneof("kind") == "int64_list"  # an empty cell: an empty list
    assert values((), "name") == [b'say "hi"']
    assert values((-7,), "name") == [b"a, b"] and values((-7,), "price") == [3.0]
    assert values((12,), "name") == [b"two\nlines"] and values((12,), "price") == []
    assert values((5,), "name") == []  # a quoted empty cell
    assert values((4,), "name") == [b'"']
    assert values((1,), "price") == [2.5] and values((-3,), "price") == [1000.0]
    assert values((), "price") == [float(np.float32(0.1))]
    assert values((5,), "price") == [16777216.0]  # float32 has no 16777217
    assert values((6,), "price") == [math.inf] and math.isnan(values((8,), "price")[0])
    for row_id in ((4,), (9223372036854775807,)):  # -0.0, and -1e-50 underflowing to -0.0
        assert values(row_id, "price") == [0.0]
        assert math.copysign(1.0, values(row_id, "price")[0]) == -1.0
    assert values((1,), "late") == [] and values((-3,), "late") == [-2]
    assert values((-3,), "name") == []


def test_declared_type_the_data_breaks_names_column_and_file(tmp_path):
    from drgrad.pipeline import csv_example_gen

    path = tmp_path / "day.csv"
    path.write_text("age,label\n41,0\nabc,1\n", encoding="utf-8")
    with pytest.raises(csv_example_gen.TypedCsvError, match=r"day\.csv: column 'age'.*abc"):
        list(csv_example_gen.read_typed_csv(str(path), ["age", "label"],
                                            {"age": "int", "label": "int"}))


def test_a_split_the_types_do_not_fit_goes_through_tfx_unchanged(tmp_path):
    """"abc" in an int column, or a column without a type: TFX's transform reads the split, so
    the examples (a bytes `age`) reach validation exactly as CsvExampleGen writes them."""
    from drgrad.pipeline import csv_example_gen

    data = tmp_path / "data"
    data.mkdir()
    (data / "day.csv").write_text("age,tip,label\n41,1,0\nabc,2,1\n7,,0\n", encoding="utf-8")
    with pytest.raises(csv_example_gen.TypedCsvError, match="'age'"):
        csv_example_gen.check_split([str(data / "day.csv")],
                                    {"age": "int", "tip": "int", "label": "int"})
    with pytest.raises(csv_example_gen.TypedCsvError, match=r"\['tip'\]"):
        csv_example_gen.check_split([str(data / "day.csv")], {"age": "int", "label": "int"})
    tfx_splits, ours = _both(tmp_path, data, {"all": "*.csv"}, {"age": "int", "tip": "int",
                                                                 "label": "int"})
    assert ours == tfx_splits
    assert sum(sum(split.values()) for split in ours.values()) == 3


def test_a_header_only_day_gives_empty_splits_that_hold_a_file(tmp_path):
    """An empty day (census day 3 of tests/test_pipeline_bad_days.py): no example in any split,
    as from TFX, and a file in every split for the components reading it."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "day.csv").write_text("id,label\n", encoding="utf-8")
    types = {"id": "int", "label": "int"}
    _assert_fast_path(data, "*.csv", types)
    tfx_splits, ours = _both(tmp_path, data, {"all": "*.csv"}, types)
    assert ours == tfx_splits == {name: collections.Counter() for name, _ in BUCKETS}
    for name, _ in BUCKETS:
        assert os.listdir(tmp_path / "ours" / f"Split-{name}")
        assert os.listdir(tmp_path / "tfx" / f"Split-{name}")


def test_without_column_types_tfx_reads_the_files(tmp_path):
    from tfx.types import standard_component_specs

    from drgrad.pipeline import csv_example_gen

    assert csv_example_gen.column_types({}) == {}
    assert csv_example_gen.column_types({standard_component_specs.CUSTOM_CONFIG_KEY: None}) == {}
    with pytest.raises(csv_example_gen.TypedCsvError, match="without a declared type"):
        csv_example_gen.check_split([str(_write_hand_files(tmp_path / "data") / "part-0.csv")],
                                    {})


def test_custom_config_round_trips_and_rejects_unknown_types():
    from tfx.types import standard_component_specs
    from tfx.utils import proto_utils

    from drgrad.pipeline import csv_example_gen

    config = csv_example_gen.custom_config(HAND_TYPES)
    properties = {standard_component_specs.CUSTOM_CONFIG_KEY: proto_utils.proto_to_json(config)}
    assert csv_example_gen.column_types(properties) == HAND_TYPES
    with pytest.raises(ValueError, match="double"):
        csv_example_gen.custom_config({"x": "double"})


def test_the_pipeline_passes_every_csv_column_type():
    from drgrad.pipeline import csv_example_gen, pipeline
    from drgrad.pipeline.pipeline_config import PipelineConfig

    config = PipelineConfig.from_options(
        pipeline_name="drgrad-census", pipeline_root="/runs/pipeline", data_root="/data/census",
        serving_model_dir="/runs/serving/census-income", dataset="census")
    example_gen = pipeline.create_pipeline(config).components[0]
    assert example_gen.id == pipeline.EXAMPLE_GEN
    assert example_gen.executor_spec.executor_class is csv_example_gen.Executor
    types = csv_example_gen.column_types(example_gen.exec_properties)  # JSON, as executors get
    assert types["income"] == types["marital"] == "int"
    assert types["age"] == "int" and types["education"] == "string"
    assert set(types) == set(config.spec.columns)

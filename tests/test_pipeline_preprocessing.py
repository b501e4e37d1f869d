"""`pipeline.preprocessing.preprocessing_fn` on in-memory data, with hand-computed outputs.

Runs tensorflow-transform's `AnalyzeAndTransformDataset` (Beam DirectRunner, in memory) on six
rows and checks every output against values worked out by hand in the comments.
"""
import math

import numpy as np
import pytest

from drgrad.data.specs import DatasetSpec
from drgrad.pipeline import preprocessing

SPEC = DatasetSpec(
    name="toy",
    tasks=("click", "like"),
    categorical=("color", "code"),
    numeric=("age", "money"),
    log_numeric=("money",),
    raw_dtypes={"color": "string", "code": "int", "age": "float", "money": "float"},
)
E = math.e
RAW = [
    {"color": b"red", "code": 7, "age": 1.0, "money": 0.0, "click": 1, "like": 0},
    {"color": b"red", "code": 7, "age": 2.0, "money": E - 1, "click": 0, "like": 0},
    {"color": b"red", "code": 7, "age": 3.0, "money": E * E - 1, "click": 1, "like": 1},
    {"color": b"blue", "code": 7, "age": 4.0, "money": 0.0, "click": 0, "like": 1},
    {"color": b"blue", "code": 3, "age": 5.0, "money": E - 1, "click": 0, "like": 0},
    {"color": b"green", "code": 3, "age": 6.0, "money": E * E - 1, "click": 1, "like": 0},
]


def _feature_spec():
    import tensorflow as tf

    return {"color": tf.io.FixedLenFeature([], tf.string),
            "code": tf.io.FixedLenFeature([], tf.int64),
            "age": tf.io.FixedLenFeature([], tf.float32),
            "money": tf.io.FixedLenFeature([], tf.float32),
            "click": tf.io.FixedLenFeature([], tf.int64),
            "like": tf.io.FixedLenFeature([], tf.int64)}


@pytest.fixture(scope="module")
def transformed(tmp_path_factory):
    import tensorflow_transform as tft
    import tensorflow_transform.beam as tft_beam
    from tensorflow_transform.tf_metadata import dataset_metadata, schema_utils

    config = preprocessing.transform_config(SPEC)
    metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(
        _feature_spec()))
    tmp = tmp_path_factory.mktemp("tft")
    with tft_beam.Context(temp_dir=str(tmp / "tmp")):
        (rows, _), transform_fn = ((RAW, metadata) | tft_beam.AnalyzeAndTransformDataset(
            lambda inputs: preprocessing.preprocessing_fn(inputs, config)))
        _ = transform_fn | tft_beam.WriteTransformFn(str(tmp / "transform"))
    return rows, tft.TFTransformOutput(str(tmp / "transform")), config


def test_vocabulary_ids_by_descending_frequency_with_int_codes_as_strings(transformed):
    rows, output, _ = transformed
    # color: red x3 -> 0, blue x2 -> 1, green x1 -> 2. code: "7" x4 -> 0, "3" x2 -> 1.
    assert [int(r["color"]) for r in rows] == [0, 0, 0, 1, 1, 2]
    assert [int(r["code"]) for r in rows] == [0, 0, 0, 0, 1, 1]
    assert output.vocabulary_by_name("vocab_code") == [b"7", b"3"]


def test_unseen_value_gets_the_oov_bucket(transformed):
    import tensorflow as tf

    _, output, _ = transformed
    layer = output.transform_features_layer()
    out = layer({"color": tf.constant([b"purple", b"blue"]), "code": tf.constant([99, 3], tf.int64),
                 "age": tf.constant([3.5, 3.5]), "money": tf.constant([0.0, 0.0])})
    # 3 colours in the vocabulary -> the one OOV bucket is id 3; 2 codes -> OOV id 2.
    np.testing.assert_array_equal(out["color"].numpy(), [3, 1])
    np.testing.assert_array_equal(out["code"].numpy(), [2, 1])
    # Labels are absent from the request, so the layer returns no label outputs.
    assert "click" not in out and "like" not in out


def test_z_score_and_log1p_z_score(transformed):
    rows, _, _ = transformed
    # age 1..6: mean 3.5, population variance 17.5 / 6.
    expected_age = [(a - 3.5) / math.sqrt(17.5 / 6) for a in range(1, 7)]
    np.testing.assert_allclose([float(r["age"]) for r in rows], expected_age, rtol=1e-5)
    # log1p(money) = 0, 1, 2, 0, 1, 2: mean 1, population variance 2 / 3.
    expected_money = [(v - 1) / math.sqrt(2 / 3) for v in (0, 1, 2, 0, 1, 2)]
    np.testing.assert_allclose([float(r["money"]) for r in rows], expected_money, rtol=1e-5,
                               atol=1e-6)


def test_labels_pass_through_as_float(transformed):
    rows, output, _ = transformed
    assert [float(r["click"]) for r in rows] == [1.0, 0.0, 1.0, 0.0, 0.0, 1.0]
    assert [float(r["like"]) for r in rows] == [0.0, 0.0, 1.0, 1.0, 0.0, 0.0]
    spec = output.transformed_feature_spec()
    import tensorflow as tf
    assert spec["click"].dtype == tf.float32 and spec["color"].dtype == tf.int64
    assert spec["age"].shape == [] and spec["color"].shape == []


def test_feature_config_counts_oov_buckets(transformed):
    _, output, config = transformed
    features = preprocessing.feature_config(output, config)
    assert features.categorical == {"color": 4, "code": 3}  # vocabulary + 1 OOV bucket
    assert features.numeric == ("age", "money")


def test_bucketize_makes_a_numeric_column_categorical():
    config = preprocessing.transform_config(SPEC, bucketize={"age": 3})
    assert config["bucketize"] == {"age": 3}
    with pytest.raises(ValueError, match="non-numeric"):
        preprocessing.transform_config(SPEC, bucketize={"color": 3})
    with pytest.raises(ValueError, match=">= 2"):
        preprocessing.transform_config(SPEC, bucketize={"age": 1})


@pytest.mark.parametrize("kwargs, message", [
    ({"num_oov_buckets": 0}, "num_oov_buckets"),
    ({"vocab_top_k": 0}, "vocab_top_k"),
    ({"vocab_frequency_threshold": -1}, "vocab_frequency_threshold"),
])
def test_transform_config_rejects_bad_options(kwargs, message):
    with pytest.raises(ValueError, match=message):
        preprocessing.transform_config(SPEC, **kwargs)


def test_preprocessing_fn_rejects_missing_config_and_columns():
    import tensorflow as tf

    with pytest.raises(ValueError, match="custom_config"):
        preprocessing.preprocessing_fn({}, None)
    config = preprocessing.transform_config(SPEC)
    with pytest.raises(ValueError, match="lack columns"):
        preprocessing.preprocessing_fn({"color": tf.constant([b"a"])}, config)


# --- nulls: optional (VarLen) features arrive as SparseTensors; an empty row is a null -------
# color: red 2, blue 2 (tie: "red" > "blue" by bytes), green 1 -> ids 0, 1, 2; null -> 3 (OOV).
# code: "7" 2, "3" 2 -> ids 0, 1; null -> 2. age: present 1, 2, 4, 6 -> mean 3.25 fills the two
# nulls. money: present raw 0, e - 1, e^2 - 1, 0 -> mean (e + e^2 - 2) / 4 fills, then log1p.
NULL_RAW = [
    {"color": [b"red"], "code": [7], "age": [1.0], "money": [0.0], "click": 1, "like": 0},
    {"color": [b"red"], "code": [], "age": [2.0], "money": [E - 1], "click": 0, "like": 1},
    {"color": [], "code": [7], "age": [], "money": [], "click": 1, "like": 1},
    {"color": [b"blue"], "code": [3], "age": [4.0], "money": [E * E - 1], "click": 0, "like": 0},
    {"color": [b"blue"], "code": [], "age": [], "money": [0.0], "click": 0, "like": 0},
    {"color": [b"green"], "code": [3], "age": [6.0], "money": [], "click": 1, "like": 0},
]


def _null_frame():
    import pandas as pd

    return pd.DataFrame({
        "color": [r["color"][0].decode() if r["color"] else None for r in NULL_RAW],
        "code": pd.array([r["code"][0] if r["code"] else None for r in NULL_RAW], "Int64"),
        "age": [r["age"][0] if r["age"] else np.nan for r in NULL_RAW],
        "money": [r["money"][0] if r["money"] else np.nan for r in NULL_RAW],
        "click": [r["click"] for r in NULL_RAW], "like": [r["like"] for r in NULL_RAW]})


def _analyze_and_transform(rows, label_spec, tmp):
    import tensorflow as tf
    import tensorflow_transform.beam as tft_beam
    from tensorflow_transform.tf_metadata import dataset_metadata, schema_utils

    feature_spec = {"color": tf.io.VarLenFeature(tf.string), "code": tf.io.VarLenFeature(tf.int64),
                    "age": tf.io.VarLenFeature(tf.float32),
                    "money": tf.io.VarLenFeature(tf.float32),
                    "click": label_spec, "like": label_spec}
    metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(
        feature_spec))
    config = preprocessing.transform_config(SPEC)
    # Analysis with deep copy on, as TFX's Transform executor runs it: a second analysis phase
    # fails there under Beam 2.67 (`preprocessing._numeric_feature`), and here too.
    with tft_beam.Context(temp_dir=str(tmp), use_deep_copy_optimization=True):
        transform_fn = (rows, metadata) | tft_beam.AnalyzeDataset(
            lambda inputs: preprocessing.preprocessing_fn(inputs, config))
    with tft_beam.Context(temp_dir=str(tmp)):
        out, _ = ((rows, metadata), transform_fn) | tft_beam.TransformDataset()
    return out


@pytest.fixture(scope="module")
def transformed_nulls(tmp_path_factory):
    import tensorflow as tf

    return _analyze_and_transform(NULL_RAW, tf.io.FixedLenFeature([], tf.int64),
                                  tmp_path_factory.mktemp("tft-nulls"))


def test_a_null_categorical_value_gets_the_oov_id(transformed_nulls):
    assert [int(r["color"]) for r in transformed_nulls] == [0, 0, 3, 1, 1, 2]
    assert [int(r["code"]) for r in transformed_nulls] == [0, 2, 0, 1, 2, 1]


def test_a_null_numeric_value_is_the_train_mean(transformed_nulls):
    age = np.array([1.0, 2.0, 3.25, 4.0, 3.25, 6.0])
    np.testing.assert_allclose([float(r["age"]) for r in transformed_nulls],
                               (age - age.mean()) / age.std(), rtol=1e-5)
    fill = math.log1p((E + E * E - 2) / 4)
    money = np.array([0.0, 1.0, fill, 2.0, 0.0, fill])
    np.testing.assert_allclose([float(r["money"]) for r in transformed_nulls],
                               (money - money.mean()) / money.std(), rtol=1e-5, atol=1e-6)


def test_nulls_give_what_the_standalone_preprocessor_gives(transformed_nulls):
    from drgrad.data.preprocessing import FeaturePreprocessor

    frame = _null_frame()
    standalone = FeaturePreprocessor(SPEC).fit(frame)
    assert standalone.vocabularies == {"color": ["red", "blue", "green"], "code": [7, 3]}
    inputs = standalone.transform(standalone.fill_nulls(frame))
    for column in SPEC.categorical:
        # Standalone: vocabulary ids 1..V and the unknown id 0; TFT: 0..V-1 and the OOV id V.
        vocabulary_size = len(standalone.vocabularies[column])
        expected = np.where(inputs[column] == 0, vocabulary_size, inputs[column] - 1)
        assert [int(r[column]) for r in transformed_nulls] == expected.tolist()
    for column in SPEC.numeric:
        np.testing.assert_allclose([float(r[column]) for r in transformed_nulls],
                                   inputs[column], rtol=1e-5, atol=1e-6)


def test_a_null_label_stops_the_transform(tmp_path):
    import tensorflow as tf

    rows = [dict(row, click=[row["click"]], like=[row["like"]]) for row in NULL_RAW]
    rows[4]["like"] = []
    with pytest.raises(ValueError, match=r"label column \\?'like\\?' has a null"):
        _analyze_and_transform(rows, tf.io.VarLenFeature(tf.int64), tmp_path)

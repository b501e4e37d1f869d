"""Tests for data.preprocessing.FeaturePreprocessor and its Keras twin (hand-computed values)."""
import math

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from drgrad.data import census
from drgrad.data.preprocessing import FeaturePreprocessor
from drgrad.data.raw_transform import RawFeatureTransform
from drgrad.data.specs import DatasetSpec

SPEC = DatasetSpec(
    name="toy", tasks=("click",), categorical=("color", "code"), numeric=("amount", "score"),
    log_numeric=("amount",),
    raw_dtypes={"color": "string", "code": "int", "amount": "int", "score": "float"})

TRAIN = pd.DataFrame({
    "color": ["red", "blue", "red", "green", "blue", "red"],
    "code": [7, 3, 7, 3, 9, 1],
    "amount": [0, 3, 0, 3, 0, 3],
    "score": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
    "click": [0, 1, 0, 1, 1, 0],
})
NEW = pd.DataFrame({"color": ["purple", "green", "red"], "code": [5, 1, 3],
                    "amount": [-2, 3, 0], "score": [3.5, 0.0, 1.0], "click": [1, 0, 1]})


@pytest.fixture
def fitted():
    return FeaturePreprocessor(SPEC).fit(TRAIN)


def _raw_tensors(spec, frame):
    dtypes = {"int": tf.int64, "float": tf.float32, "string": tf.string}
    return {column: tf.constant(frame[column].to_numpy().tolist(),
                                dtype=dtypes[spec.raw_dtypes[column]])
            for column in spec.features}


def test_vocabulary_by_descending_frequency_with_tft_tie_break(fitted):
    # red 3, blue 2, green 1.
    assert fitted.vocabularies["color"] == ["red", "blue", "green"]
    # 7 and 3 twice, 9 and 1 once; ties by descending value bytes ("7" > "3", "9" > "1").
    assert fitted.vocabularies["code"] == [7, 3, 9, 1]
    assert fitted.vocab_sizes == {"color": 4, "code": 5}


def test_numeric_statistics_by_hand(fitted):
    # amount: log1p -> [0, ln 4] alternating: mean ln(4)/2, population std ln(4)/2.
    assert fitted.numeric_stats["amount"]["mean"] == pytest.approx(math.log(4) / 2)
    assert fitted.numeric_stats["amount"]["std"] == pytest.approx(math.log(4) / 2)
    # score 1..6: mean 3.5, population variance 35/12.
    assert fitted.numeric_stats["score"]["mean"] == pytest.approx(3.5)
    assert fitted.numeric_stats["score"]["std"] == pytest.approx(math.sqrt(35 / 12))


def test_transform_by_hand(fitted):
    out = fitted.transform(NEW)
    np.testing.assert_array_equal(out["color"], [0, 3, 1])  # purple unseen -> 0
    np.testing.assert_array_equal(out["code"], [0, 4, 2])  # 5 unseen -> 0
    assert out["color"].dtype == np.int64 and out["amount"].dtype == np.float32
    # amount -2 is clipped to 0 before log1p: z = (0 - ln4/2) / (ln4/2) = -1.
    np.testing.assert_allclose(out["amount"], [-1.0, 1.0, -1.0], rtol=1e-6)
    np.testing.assert_allclose(out["score"], np.array([0.0, -3.5, -2.5]) / math.sqrt(35 / 12),
                               rtol=1e-6)
    labels = fitted.labels(NEW)
    np.testing.assert_array_equal(labels["click"], [1.0, 0.0, 1.0])
    assert labels["click"].dtype == np.float32


def test_constant_column_gets_unit_std():
    frame = TRAIN.assign(score=2.0)
    pre = FeaturePreprocessor(SPEC).fit(frame)
    assert pre.numeric_stats["score"] == {"mean": 2.0, "std": 1.0}
    np.testing.assert_array_equal(pre.transform(frame)["score"], np.zeros(6, np.float32))


def test_keras_layer_equals_transform_exactly(fitted):
    layer = fitted.keras_layer()
    out = layer(_raw_tensors(SPEC, NEW))
    expected = fitted.transform(NEW)
    assert set(out) == set(expected)
    for column, values in expected.items():
        assert out[column].dtype == tf.as_dtype(values.dtype)
        np.testing.assert_array_equal(out[column].numpy(), values)


def test_keras_layer_equals_transform_on_census():
    frames = census.load(rows=2000, seed=0)
    pre = FeaturePreprocessor("census-income").fit(frames["train"])
    layer = pre.keras_layer()
    got = layer(_raw_tensors(pre.spec, frames["eval"]))
    expected = pre.transform(frames["eval"])
    for column, values in expected.items():
        np.testing.assert_array_equal(got[column].numpy(), values, err_msg=column)
    # 2,000 train rows leave some eval categories unseen: they map to the unknown id.
    assert any((values == 0).any() for column, values in expected.items()
               if column in pre.spec.categorical)


def test_keras_layer_accepts_column_vectors_and_cleans_non_finite(fitted):
    raw = _raw_tensors(SPEC, NEW)
    raw = {column: tf.expand_dims(tensor, -1) for column, tensor in raw.items()}
    raw["score"] = tf.constant([[np.nan], [np.inf], [3.5]], tf.float32)
    out = fitted.keras_layer()(raw)
    assert out["color"].shape == (3,)
    np.testing.assert_array_equal(out["score"].numpy(), [0.0, 0.0, 0.0])


def test_keras_layer_rejects_wrong_dtype(fitted):
    raw = _raw_tensors(SPEC, NEW)
    raw["color"] = tf.constant([1, 2, 3], tf.int64)
    with pytest.raises(TypeError, match="column 'color' must be string"):
        fitted.keras_layer()(raw)


def test_keras_layer_config_round_trip_and_saved_model(fitted, tmp_path):
    layer = fitted.keras_layer()
    clone = RawFeatureTransform.from_config(layer.get_config())
    raw = _raw_tensors(SPEC, NEW)
    for column, values in layer(raw).items():
        np.testing.assert_array_equal(clone(raw)[column].numpy(), values.numpy())

    class Exported(tf.Module):
        def __init__(self):
            super().__init__()
            self.layer = layer

        @tf.function(input_signature=[{
            "color": tf.TensorSpec([None], tf.string), "code": tf.TensorSpec([None], tf.int64),
            "amount": tf.TensorSpec([None], tf.int64),
            "score": tf.TensorSpec([None], tf.float32)}])
        def __call__(self, features):
            return self.layer(features)

    tf.saved_model.save(Exported(), str(tmp_path / "saved"))
    restored = tf.saved_model.load(str(tmp_path / "saved"))
    for column, values in restored(raw).items():
        np.testing.assert_array_equal(values.numpy(), layer(raw)[column].numpy())


def test_save_and_load(fitted, tmp_path):
    path = fitted.save(tmp_path / "pre")
    assert path.endswith("preprocessor.json")
    loaded = FeaturePreprocessor.load(tmp_path / "pre")
    assert loaded.spec == SPEC
    assert loaded.vocabularies == fitted.vocabularies
    assert loaded.numeric_stats == fitted.numeric_stats
    for column, values in fitted.transform(NEW).items():
        np.testing.assert_array_equal(loaded.transform(NEW)[column], values)


def test_to_dataset(fitted):
    dataset = fitted.to_dataset(TRAIN, batch_size=4, shuffle=True, seed=1)
    batches = list(dataset)
    assert [int(labels["click"].shape[0]) for _, labels in batches] == [4, 2]
    features, labels = batches[0]
    assert features["color"].dtype == tf.int64 and features["score"].dtype == tf.float32
    assert labels["click"].dtype == tf.float32
    all_ids = np.concatenate([f["color"].numpy() for f, _ in batches])
    assert sorted(all_ids) == sorted(fitted.transform(TRAIN)["color"])


def test_to_dataset_shuffles_rows_like_a_row_shuffle(fitted):
    """The index shuffle yields the batches a row-by-row shuffle with the same seed yields, so
    runs made before the memory fix reproduce; a new permutation every epoch, rows kept whole."""
    features, labels = fitted.transform(TRAIN), fitted.labels(TRAIN)
    row_shuffle = tf.data.Dataset.from_tensor_slices((features, labels)).shuffle(
        len(TRAIN), seed=7, reshuffle_each_iteration=True).batch(4)
    dataset = fitted.to_dataset(TRAIN, batch_size=4, shuffle=True, seed=7)
    epochs = []
    for _ in range(3):
        got, want = list(dataset), list(row_shuffle)
        assert len(got) == len(want) == 2
        for (got_x, got_y), (want_x, want_y) in zip(got, want):
            for column in features:
                np.testing.assert_array_equal(got_x[column].numpy(), want_x[column].numpy())
            np.testing.assert_array_equal(got_y["click"].numpy(), want_y["click"].numpy())
        epochs.append(np.concatenate([x["score"].numpy() for x, _ in got]))
    # Each row's columns stay together: (score, click) pairs are those of the frame.
    pairs = sorted(zip(np.concatenate([x["score"].numpy() for x, _ in got]),
                       np.concatenate([y["click"].numpy() for _, y in got])))
    assert pairs == sorted(zip(features["score"], labels["click"]))
    assert any(not np.array_equal(epochs[0], other) for other in epochs[1:])


def test_errors(fitted, tmp_path):
    with pytest.raises(ValueError, match="not fitted"):
        FeaturePreprocessor(SPEC).transform(NEW)
    with pytest.raises(ValueError, match="missing columns \\['score'\\]"):
        fitted.transform(NEW.drop(columns=["score"]))
    with pytest.raises(ValueError, match="non-finite value at row 1"):
        fitted.transform(NEW.assign(score=[1.0, np.nan, 2.0]))
    with pytest.raises(ValueError, match="empty frame"):
        FeaturePreprocessor(SPEC).fit(TRAIN.iloc[:0])
    with pytest.raises(ValueError, match="label 'click' must hold only 0 and 1"):
        fitted.labels(NEW.assign(click=[0, 2, 1]))
    with pytest.raises(ValueError, match="batch_size"):
        fitted.to_dataset(TRAIN, batch_size=0)
    with pytest.raises(FileNotFoundError, match="no saved preprocessor"):
        FeaturePreprocessor.load(tmp_path)
    with pytest.raises(ValueError, match="unknown dataset"):
        FeaturePreprocessor("nope")


def test_the_transform_section_top_k_threshold_and_oov_buckets():
    # color: red 3, blue 2, green 1; code: 7 2, 3 2, 9 1, 1 1.
    pre = FeaturePreprocessor(SPEC, vocab_top_k=2, vocab_frequency_threshold=2,
                              num_oov_buckets=3).fit(TRAIN)
    assert pre.vocabularies == {"color": ["red", "blue"], "code": [7, 3]}
    assert pre.vocab_sizes == {"color": 5, "code": 5}          # 2 ids + 3 unknown buckets
    out = pre.transform(NEW)                                     # purple, green, red; 5, 1, 3
    assert out["color"][2] == 3 and out["code"][2] == 4         # red -> 0 + 3, 3 -> 1 + 3
    # An unseen value's bucket is the one TFT's lookup table gives it after its V ids.
    table = {column: tf.lookup.StaticVocabularyTable(tf.lookup.KeyValueTensorInitializer(
        [str(v) for v in pre.vocabularies[column]], tf.range(2, dtype=tf.int64)), 3)
        for column in ("color", "code")}
    for column, unseen in (("color", ["purple", "green"]), ("code", ["5", "1"])):
        tft_ids = table[column].lookup(tf.constant(unseen)).numpy()
        np.testing.assert_array_equal(out[column][:2], tft_ids - 2)
        assert set(out[column][:2]) <= {0, 1, 2}
    layer_out = pre.keras_layer()(_raw_tensors(SPEC, NEW))
    for column in ("color", "code"):
        np.testing.assert_array_equal(layer_out[column].numpy(), out[column])
    assert FeaturePreprocessor.from_config(pre.get_config()).vocab_sizes == pre.vocab_sizes
    with pytest.raises(ValueError, match="num_oov_buckets must be an int >= 1"):
        FeaturePreprocessor(SPEC, num_oov_buckets=0)


def test_a_null_is_the_unknown_id_and_the_train_mean():
    frame = TRAIN.astype({"color": object}).assign(score=[1.0, np.nan, 3.0, np.nan, 5.0, 6.0])
    frame.loc[1, "color"] = None
    pre = FeaturePreprocessor(SPEC).fit(frame)
    # red 3, blue 1 (the null is no value), green 1: tie by bytes, "green" > "blue".
    assert pre.vocabularies["color"] == ["red", "green", "blue"]
    # score: present 1, 3, 5, 6 -> mean 3.75 fills the two nulls; then 1, 3.75, 3, 3.75, 5, 6.
    assert pre.null_fill["score"] == 3.75
    filled = np.array([1, 3.75, 3, 3.75, 5, 6])
    assert pre.numeric_stats["score"]["mean"] == pytest.approx(filled.mean())
    assert pre.numeric_stats["score"]["std"] == pytest.approx(filled.std())
    out = pre.transform(pre.fill_nulls(frame))
    assert out["color"][1] == 0
    np.testing.assert_allclose(out["score"], (filled - filled.mean()) / filled.std(), rtol=1e-6)
    # Raw amount 0, 3, 0, 3, 0, 3: mean 1.5 (kept through save / load).
    assert FeaturePreprocessor.from_config(pre.get_config()).null_fill == {"amount": 1.5,
                                                                           "score": 3.75}

"""`pipeline.vocabularies`: every column's vocabulary in one analyzer, file for file what
`tft.vocabulary` writes.

Both analyzers run side by side in one `AnalyzeDataset` over the same hand-written rows (ties,
integer codes, empty strings, a token with a newline, nulls of an optional column, a column
whose every value is filtered out), plain and with ``top_k`` / ``frequency_threshold``; every
file must be byte-for-byte tft's. The order, sizes and cache coding are also checked by hand.
"""
import collections

import pytest

from drgrad.pipeline import vocabularies

# colour: red x3, blue x2, green x2 (a tie: descending bytes puts "green" before "blue"),
# "" x1 (never counted). code (int): 7 x3, 3 x3 (tie: "7" > "3"), 10 x1, 2 x1.
# note: "a\nb" is never counted; "x" x2, "y" x2. gone: only "" and "\r": an empty vocabulary.
# tag (optional): 2 nulls, "p" x2, "q" x2.
ROWS = [
    {"colour": b"red", "code": 7, "note": b"x", "gone": b"", "tag": [b"p"]},
    {"colour": b"red", "code": 7, "note": b"a\nb", "gone": b"\r", "tag": []},
    {"colour": b"red", "code": 3, "note": b"y", "gone": b"", "tag": [b"q"]},
    {"colour": b"blue", "code": 3, "note": b"x", "gone": b"", "tag": [b"p"]},
    {"colour": b"blue", "code": 3, "note": b"y", "gone": b"\r", "tag": []},
    {"colour": b"green", "code": 7, "note": b"a\nb", "gone": b"", "tag": [b"q"]},
    {"colour": b"green", "code": 10, "note": b"x", "gone": b"", "tag": [b"p"]},
    {"colour": b"", "code": 2, "note": b"y", "gone": b"", "tag": [b"q"]},
]
COLUMNS = ("colour", "code", "note", "gone", "tag")


def _feature_spec():
    import tensorflow as tf

    spec = {column: tf.io.FixedLenFeature([], tf.string) for column in COLUMNS}
    spec["code"] = tf.io.FixedLenFeature([], tf.int64)
    spec["tag"] = tf.io.VarLenFeature(tf.string)
    return spec


def _texts(inputs):
    import tensorflow as tf

    texts = dict(inputs)
    texts["code"] = tf.strings.as_string(inputs["code"])
    return texts


def _analyze(tmp_path, preprocessing_fn):
    import tensorflow_transform as tft
    import tensorflow_transform.beam as tft_beam
    from tensorflow_transform.tf_metadata import dataset_metadata, schema_utils

    metadata = dataset_metadata.DatasetMetadata(
        schema_utils.schema_from_feature_spec(_feature_spec()))
    with tft_beam.Context(temp_dir=str(tmp_path / "tmp")):
        transform_fn = (ROWS, metadata) | tft_beam.AnalyzeDataset(preprocessing_fn)
        _ = transform_fn | tft_beam.WriteTransformFn(str(tmp_path / "transform"))
    return tft.TFTransformOutput(str(tmp_path / "transform"))


@pytest.mark.parametrize("options", [{}, {"top_k": 2}, {"frequency_threshold": 2},
                                     {"top_k": 1, "frequency_threshold": 3},
                                     {"cacheable": True, "top_k": 2}],
                         ids=["all", "top2", "min2", "top1-min3", "per-column-cacheable"])
def test_files_equal_tft_vocabulary(tmp_path, options):
    import tensorflow as tf
    import tensorflow_transform as tft

    def preprocessing_fn(inputs):
        texts = _texts(inputs)
        ours = vocabularies.compute_vocabularies(texts, {c: f"ours_{c}" for c in COLUMNS},
                                                 **options)
        outputs = {}
        for column, text in texts.items():
            tft.vocabulary(text, top_k=options.get("top_k"),
                           frequency_threshold=options.get("frequency_threshold"),
                           vocab_filename=f"tft_{column}")
            # Our file must reach the graph to be written as an asset.
            outputs[column] = tft.apply_vocabulary(text, deferred_vocab_filename_tensor=ours[
                column])
        return outputs

    output = _analyze(tmp_path, preprocessing_fn)
    for column in COLUMNS:
        with tf.io.gfile.GFile(output.vocabulary_file_by_name(f"ours_{column}"), "rb") as f:
            ours = f.read()
        with tf.io.gfile.GFile(output.vocabulary_file_by_name(f"tft_{column}"), "rb") as f:
            theirs = f.read()
        assert ours == theirs, column


def test_ids_sizes_and_null_rows(tmp_path):
    import tensorflow as tf
    import tensorflow_transform as tft

    def preprocessing_fn(inputs):
        texts = _texts(inputs)
        vocab = vocabularies.compute_vocabularies(texts, {c: f"vocab_{c}" for c in COLUMNS})
        ids = {column: tft.apply_vocabulary(texts[column], deferred_vocab_filename_tensor=
                                            vocab[column], num_oov_buckets=1)
               for column in COLUMNS}
        sizes = tf.stack([tft.get_num_buckets_for_transformed_feature(ids[c]) for c in COLUMNS])
        ids["tag"] = tft.sparse_tensor_to_dense_with_shape(ids["tag"], [None, 1], -1)
        return {**ids, "sizes": sizes[tf.newaxis, :] + tf.zeros_like(inputs["code"])[:, tf.newaxis]}

    output = _analyze(tmp_path, preprocessing_fn)
    assert output.vocabulary_by_name("vocab_colour") == [b"red", b"green", b"blue"]
    assert output.vocabulary_by_name("vocab_code") == [b"7", b"3", b"2", b"10"]
    assert output.vocabulary_by_name("vocab_note") == [b"y", b"x"]
    assert output.vocabulary_by_name("vocab_gone") == [vocabularies.EMPTY_VOCABULARY_TOKEN]
    assert output.vocabulary_by_name("vocab_tag") == [b"q", b"p"]
    layer = output.transform_features_layer()
    raw = {"colour": tf.constant([b"green", b"", b"purple"]), "code": tf.constant([10, 7, 5],
                                                                                  tf.int64),
           "note": tf.constant([b"x"] * 3), "gone": tf.constant([b""] * 3),
           "tag": tf.sparse.from_dense(tf.constant([[b"p"], [b""], [b"q"]]))}
    out = layer(raw)
    # "" and "purple" are in no vocabulary: the OOV id, 3 colours -> 3; 4 codes, "5" -> 4.
    assert out["colour"].numpy().tolist() == [1, 3, 3]
    assert out["code"].numpy().tolist() == [3, 0, 4]
    # tag: "q" -> 0, "p" -> 1; the null row (no value) keeps the dense default.
    assert out["tag"].numpy().tolist() == [[1], [-1], [0]]
    # Vocabulary sizes + the one OOV bucket.
    assert out["sizes"].numpy()[0].tolist() == [4, 5, 3, 2, 3]


def test_order_by_count_then_descending_bytes():
    counts = {b"b": 2, b"a": 2, b"c": 5, b"d": 1}
    assert vocabularies.order_vocabulary(counts) == [b"c", b"b", b"a", b"d"]
    assert vocabularies.order_vocabulary(counts, top_k=2) == [b"c", b"b"]
    assert vocabularies.order_vocabulary(counts, frequency_threshold=2) == [b"c", b"b", b"a"]
    assert vocabularies.order_vocabulary({}, top_k=3) == [vocabularies.EMPTY_VOCABULARY_TOKEN]
    assert vocabularies.order_vocabulary(counts, frequency_threshold=9) == [
        vocabularies.EMPTY_VOCABULARY_TOKEN]


def test_cache_coder_round_trips_any_bytes():
    coder = vocabularies._cache_coder()  # pylint: disable=protected-access
    accumulator = [collections.Counter({b"\xff\x00": 3, "é".encode(): 1}), collections.Counter()]
    assert coder.decode_cache(coder.encode_cache(accumulator)) == accumulator


def test_counts_merge_across_batches_and_bundles():
    import numpy as np

    count = vocabularies._CountTokens(2)  # pylint: disable=protected-access
    first = count.add_input(count.create_accumulator(),
                            (np.array([b"a", b"b", b"a"], object), np.array([b"x"], object)))
    second = count.add_input(count.create_accumulator(),
                             (np.array([b"b"], object), np.array([], object)))
    merged = count.merge_accumulators([first, second])
    assert merged == [collections.Counter({b"a": 2, b"b": 2}), collections.Counter({b"x": 1})]


def test_refuses_non_string_columns_and_name_mismatch():
    import tensorflow as tf

    with pytest.raises(ValueError, match=r"no vocabulary file name for columns \['b'\]"):
        vocabularies.compute_vocabularies({"a": tf.constant([b"x"]), "b": tf.constant([b"y"])},
                                          {"a": "vocab_a"})
    with pytest.raises(ValueError, match="count strings"):
        vocabularies.compute_vocabularies({"a": tf.constant([1])}, {"a": "vocab_a"})

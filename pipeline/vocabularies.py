"""Every categorical column's vocabulary in one Beam pass: a TFX Transform analyzer.

`tft.vocabulary` gives each column its own chain of Beam stages (flatten, count per token,
filter, top-k, sort, write) and sends every value of the column through Beam as one element.
With census's 32 categorical columns that is 32 chains and 8 million Python-level elements for
249,404 rows: 40 % of the Transform component's time (docs/SCALING.md). `compute_vocabularies`
counts all columns of a batch at once (`collections.Counter` over the batch's values, in C)
in ONE combine, then writes every vocabulary file in one step.

The files are what `tft.vocabulary` writes (tested against it): one token per line, by
descending count, ties by descending token bytes (`tft`'s order); empty strings and tokens with
``\\n`` / ``\\r`` are never counted (a text file cannot hold them); ``frequency_threshold`` is
applied before ``top_k``; an empty vocabulary holds `tft`'s dummy token. Each file is an asset
named ``vocabulary_name(column)``, so `TFTransformOutput.vocabulary_by_name` reads it as before.

With an analyzer cache (a daily window of spans), ``cacheable=True`` gives each column its own
`tft.experimental.CacheablePTransformAnalyzer` (TFT 1.16 caches single-output analyzers
only): a span's token counts are its cache entry, so each span is counted once, as with
`tft.vocabulary`, and the counting is still vectorized.
"""
import collections
import json
from typing import Dict, List, Mapping, Optional

import apache_beam as beam

# tft's placeholder for an empty string vocabulary (tensorflow_transform.analyzers
# .get_empy_vocabulary_dummy_value): a lookup table cannot be built from an empty file.
EMPTY_VOCABULARY_TOKEN = b"49d0cd50-04bb-48c0-bc6f-5b575dce351a"
# tft's filter of text vocabularies (analyzers._EMPTY_STRING_OR_NEWLINE_CHARS_REGEX, re2).
_UNWRITABLE_TOKEN_REGEX = r"^$|\C*[\n\r]\C*"


def order_vocabulary(counts: Mapping[bytes, int], top_k: Optional[int] = None,
                     frequency_threshold: int = 0) -> List[bytes]:
    """Tokens of one column in `tft.vocabulary`'s order (module docstring)."""
    ranked = sorted(((count, token) for token, count in counts.items()
                     if count >= frequency_threshold), reverse=True)
    if top_k is not None:
        ranked = ranked[:top_k]
    return [token for _, token in ranked] or [EMPTY_VOCABULARY_TOKEN]


class _CountTokens(beam.CombineFn):
    """Batches of every column's values -> one `Counter` of tokens per column."""

    def __init__(self, num_columns):
        super().__init__()
        self._num_columns = num_columns

    def create_accumulator(self):
        return [collections.Counter() for _ in range(self._num_columns)]

    def add_input(self, mutable_accumulator, element):
        for counter, values in zip(mutable_accumulator, element):
            counter.update(values.tolist())
        return mutable_accumulator

    def merge_accumulators(self, accumulators):
        accumulators = iter(accumulators)
        merged = next(accumulators)
        for accumulator in accumulators:
            for counter, other in zip(merged, accumulator):
                counter.update(other)
        return merged

    def extract_output(self, accumulator):
        return accumulator


class _MergeCounts(_CountTokens):
    """Per-column `Counter`s (of several spans or bundles) -> their sum."""

    def add_input(self, mutable_accumulator, element):
        return self.merge_accumulators([mutable_accumulator, element])


class _CombineAll(beam.PTransform):
    """A PCollection -> its one combined value (the analyzer's count and merge stages)."""

    def __init__(self, combine_fn):
        super().__init__()
        self._combine_fn = combine_fn

    def expand(self, pcoll):
        return pcoll | "CombineAll" >> beam.CombineGlobally(self._combine_fn)


def _write_vocabularies(counts, directory, names, top_k, frequency_threshold):
    """Writes one vocabulary file per column; yields each file's path (tagged by index)."""
    import numpy as np
    import tensorflow as tf

    tf.io.gfile.makedirs(directory)
    for index, (name, column_counts) in enumerate(zip(names, counts)):
        path = f"{directory}/{name}"
        with tf.io.gfile.GFile(path, "wb") as f:
            f.write(b"".join(token + b"\n" for token in
                             order_vocabulary(column_counts, top_k, frequency_threshold)))
        yield beam.pvalue.TaggedOutput(str(index), np.array(path.encode("utf-8")))


class _ExtractOutputs(beam.PTransform):
    """The merged counts -> the vocabulary files' paths. Subclasses tft_beam's
    `PTransformAnalyzer` (made in `_extract_outputs`) for its unique temporary directory."""

    def __init__(self, names, top_k, frequency_threshold):
        super().__init__()
        self._names = tuple(names)
        self._top_k = top_k
        self._frequency_threshold = frequency_threshold
        self.base_temp_dir = None

    def expand(self, pcoll):
        tags = [str(index) for index in range(len(self._names))]
        outputs = pcoll | "WriteVocabularies" >> beam.FlatMap(
            _write_vocabularies, self.base_temp_dir, self._names, self._top_k,
            self._frequency_threshold).with_outputs(*tags)
        return tuple(outputs[tag] for tag in tags)


def _chained(analyzer):
    """The three stages of a `CacheablePTransformAnalyzer` as one `PTransformAnalyzer`."""
    from tensorflow_transform.beam import experimental as tft_beam_experimental

    class ChainedVocabularies(tft_beam_experimental.PTransformAnalyzer):
        def expand(self, pcoll):
            extract = analyzer.extract_output_ptransform
            extract.base_temp_dir = self.base_temp_dir
            return (pcoll | "Count" >> analyzer.make_accumulators_ptransform
                    | "Merge" >> analyzer.merge_accumulators_ptransform | "Extract" >> extract)

    return ChainedVocabularies()


def _extract_outputs(names, top_k, frequency_threshold):
    from tensorflow_transform.beam import experimental as tft_beam_experimental

    class ExtractVocabularies(_ExtractOutputs, tft_beam_experimental.PTransformAnalyzer):
        pass

    return ExtractVocabularies(names, top_k, frequency_threshold)


def _cache_coder():
    import tensorflow_transform as tft

    class CountsCacheCoder(tft.experimental.PTransformAnalyzerCacheCoder):
        """Per-column token counts as JSON (tokens as latin-1 text: every byte string maps to
        one and back)."""

        def encode_cache(self, accumulator):
            return json.dumps([[[token.decode("latin-1"), count]
                                for token, count in sorted(counter.items())]
                               for counter in accumulator]).encode("utf-8")

        def decode_cache(self, encoded_accumulator):
            return [collections.Counter({token.encode("latin-1"): count for token, count in column})
                    for column in json.loads(encoded_accumulator)]

    return CountsCacheCoder()


def compute_vocabularies(columns: Mapping[str, object], names: Mapping[str, str],
                         top_k: Optional[int] = None, frequency_threshold: int = 0,
                         cacheable: bool = False) -> Dict[str, object]:
    """Every column's vocabulary (module docstring); call inside a `preprocessing_fn`.

    Args:
      columns: `{column: string tensor}`: the values to count (any shape; a `SparseTensor`'s
        values are counted, so a null is in no vocabulary).
      names: `{column: its vocabulary file's name}`.
      top_k: keep only the most frequent tokens per column (None = all).
      frequency_threshold: drop tokens seen fewer times than this.
      cacheable: False = one analyzer for all columns (one Beam pass, not cached); True = one
        cacheable analyzer per column, for a pipeline with an analyzer cache (TFT 1.16 caches
        single-output analyzers only).

    Returns:
      `{column: path}`: each file's path, an asset tensor for `tft.apply_vocabulary`'s
      ``deferred_vocab_filename_tensor`` (`tft.get_num_buckets_for_transformed_feature` of the
      ids it returns is the file's size plus the OOV buckets).
    """
    import tensorflow as tf

    columns = dict(columns)
    unnamed = sorted(set(columns) - set(names))
    if unnamed:
        raise ValueError(f"no vocabulary file name for columns {unnamed}")
    names = [names[column] for column in columns]
    values = []
    for column, tensor in columns.items():
        if tensor.dtype != tf.string:
            raise ValueError(f"column {column!r}: vocabularies count strings, got {tensor.dtype}")
        flat = tf.reshape(tensor.values if isinstance(tensor, tf.SparseTensor) else tensor, [-1])
        values.append(tf.boolean_mask(
            flat, tf.logical_not(tf.strings.regex_full_match(flat, _UNWRITABLE_TOKEN_REGEX))))
    if cacheable:
        paths = [_analyze(values[index:index + 1], names[index:index + 1], top_k,
                          frequency_threshold, f"vocabulary_{index}")[0]
                 for index in range(len(values))]
    else:
        paths = _analyze(values, names, top_k, frequency_threshold, "vocabularies")
    return dict(zip(columns, paths))


def _analyze(values, names, top_k, frequency_threshold, scope):
    """One cacheable analyzer counting `values` (a list of 1-D string tensors) -> paths."""
    import tensorflow as tf
    import tensorflow_transform as tft

    if not values:
        return []
    analyzer = tft.experimental.CacheablePTransformAnalyzer(
        make_accumulators_ptransform=_CombineAll(_CountTokens(len(values))),
        merge_accumulators_ptransform=_CombineAll(_MergeCounts(len(values))),
        extract_output_ptransform=_extract_outputs(names, top_k, frequency_threshold),
        cache_coder=_cache_coder())
    if len(values) > 1:
        # TFT 1.16 caches single-output analyzers only: the same stages, run as a plain
        # PTransform, the three stages chained.
        analyzer = _chained(analyzer)
    # Every output is an asset (TFT 1.16 makes every output of an analyzer with
    # `output_asset_default_values` an asset, a None default included).
    return tft.experimental.ptransform_analyzer(
        values, analyzer, output_dtypes=[tf.string] * len(values),
        output_shapes=[[]] * len(values),
        output_asset_default_values=[EMPTY_VOCABULARY_TOKEN] * len(values), name=scope)

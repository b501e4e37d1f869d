"""UCI Census-Income (KDD): the public benchmark of MMoE (Ma et al., KDD 2018, Sec. 6.3) and DRGrad.

Pinned protocol (docs/ARCHITECTURE.md §1, docs/REFERENCE.md):

* Read the committed `data/census-income/census-income.{data,test}.gz` (42 comma-separated
  fields, no header; every value stripped of its surrounding spaces).
* Drop `instance_weight` (UCI: "should *not* be used in the classifiers").
* Tasks: `income` = 1 where `income_50k == "50000+."` (primary, 6.21 % of train);
  `marital` = 1 where `marital_stat == "Never married"` (auxiliary, 43.35 % of train).
  Both source columns are removed from the features.
* Splits: train = `census-income.data` (199,523 rows, file order). The 99,762 rows of
  `census-income.test` are permuted with `numpy.random.RandomState(0).permutation`; the first
  49,881 rows of the permutation are `eval` (validation), the last 49,881 are `test`.
* Features: 7 continuous columns (`age`, `wage_per_hour`, `capital_gains`, `capital_losses`,
  `stock_dividends`, `num_emp`, `weeks_worked`; the 4 money columns are `log_numeric`) and the
  other 32 nominal columns as categoricals. In the CSV every continuous column and the five
  integer-coded nominal columns (`det_ind_code`, `det_occ_code`, `own_or_self`,
  `vet_benefits`, `year`) hold integers, so they are `"int"` in `raw_dtypes` (what
  CsvExampleGen infers); the other 27 are `"string"`. Missing values stay the literal `?`.
* `rows=N` keeps at most N rows of each split after the protocol split, drawn without
  replacement by `RandomState(seed)` and kept in their order; `seed` changes nothing else
  (the validation/test permutation is pinned to 0).

Authors' protocol (`load_authors`; docs/REFERENCE.md, docs/RESULTS.md "DRGrad as released"):
the released DRGrad (logwhistle/drgrad_for_aaai25) trains on 229,285 rows and tests on
70,000, i.e. all 299,285 rows re-split; its split files are not published. Here: the train
file's rows then the test file's rows (file order, 0..299,284) are permuted with
`numpy.random.RandomState(AUTHORS_SPLIT_SEED).permutation`; the first 229,285 rows of the
permutation are `train`, the last 70,000 `test`. The authors also read a 20,000-row
validation file that cannot be disjoint from the others and never use it; `eval` here is the
first 20,000 rows of `train` (same order), reported, never used for selection. Labels, columns
and `rows` are as in the pinned protocol.
"""
import functools
import os
from typing import Dict, Optional

import numpy as np
import pandas as pd

from drgrad.data import readers
from drgrad.data.specs import CENSUS, CENSUS_RAW_COLUMNS

SPEC = CENSUS
DEFAULT_SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "census-income")
TRAIN_FILE = "census-income.data.gz"
TEST_FILE = "census-income.test.gz"
SPLIT_SEED = 0
AUTHORS_SPLIT_SEED = 0
AUTHORS_TRAIN_ROWS = 229_285
AUTHORS_TEST_ROWS = 70_000
AUTHORS_EVAL_ROWS = 20_000
INCOME_POSITIVE = "50000+."
INCOME_NEGATIVE = "- 50000."
MARITAL_POSITIVE = "Never married"
_CACHE_MIN_BYTES = 1 << 20


def read_raw(path) -> pd.DataFrame:
    """Reads one UCI census file (plain or .gz) into its 42 named, stripped columns."""
    return readers.read_delimited(path, CENSUS_RAW_COLUMNS, ",",
                                  numeric=("instance_weight",),
                                  # Numeric and nominal integer codes (census-income.yaml).
                                  integer=tuple(column for column, kind in SPEC.raw_dtypes.items()
                                                if kind == "int"))


def to_examples(raw: pd.DataFrame, path: str = "<frame>") -> pd.DataFrame:
    """Applies the label protocol: spec feature columns plus 0/1 `income` and `marital`."""
    unknown = ~raw["income_50k"].isin((INCOME_POSITIVE, INCOME_NEGATIVE))
    if unknown.any():
        row = int(np.flatnonzero(unknown.to_numpy())[0])
        raise ValueError(f"{path}, line {row + 1}: income_50k must be {INCOME_POSITIVE!r} or "
                         f"{INCOME_NEGATIVE!r}, got {raw['income_50k'].iloc[row]!r}")
    frame = raw.loc[:, list(SPEC.features)].copy()
    frame["income"] = (raw["income_50k"] == INCOME_POSITIVE).astype(np.int64)
    frame["marital"] = (raw["marital_stat"] == MARITAL_POSITIVE).astype(np.int64)
    return frame.reset_index(drop=True)


def _cached_examples(path: str) -> pd.DataFrame:
    """`to_examples(read_raw(path))`, parsed once per process while the file is unchanged
    (benchmarks load census once per seed and model); callers get a copy."""
    stat = os.stat(path)
    if stat.st_size < _CACHE_MIN_BYTES:  # Small files are cheap to parse; keep the cache for
        return to_examples(read_raw(path), path)  # the real ones.
    return _parse_examples(os.path.realpath(path), stat.st_mtime_ns, stat.st_size).copy()


@functools.lru_cache(maxsize=2)
def _parse_examples(path: str, mtime_ns: int, size: int) -> pd.DataFrame:
    del mtime_ns, size  # Part of the cache key only.
    return to_examples(read_raw(path), path)


def _source_examples(source):
    """``(train file examples, test file examples)`` of a census source directory."""
    source = os.fspath(source) if source is not None else DEFAULT_SOURCE
    if not os.path.isdir(source):
        raise FileNotFoundError(f"census-income source directory not found: {source}")
    train_path = readers.require_file(os.path.join(source, TRAIN_FILE), "census train file")
    test_path = readers.require_file(os.path.join(source, TEST_FILE), "census test file")
    return _cached_examples(train_path), _cached_examples(test_path)


def load(source=None, rows: Optional[int] = None, seed: int = 0) -> Dict[str, pd.DataFrame]:
    """Returns `{"train", "eval", "test"}` DataFrames (spec columns + labels) per the protocol.

    Args:
      source: a directory holding `census-income.data.gz` and `census-income.test.gz`
        (default: the committed copy under `data/census-income/`).
      rows: keep at most this many rows per split (seeded sample, order kept); None = all.
      seed: seed of that sample only.
    """
    rows = readers.check_rows(rows)
    train, test_all = _source_examples(source)
    order = np.random.RandomState(SPLIT_SEED).permutation(len(test_all))
    half = len(test_all) // 2
    # With an odd row count the middle row would be dropped; the UCI file has 99,762 rows.
    eval_frame = test_all.iloc[order[:half]]
    test_frame = test_all.iloc[order[len(test_all) - half:]]
    frames = {"train": train, "eval": eval_frame, "test": test_frame}
    return {split: readers.subsample(frame, rows, seed) for split, frame in frames.items()}


def authors_split(total_rows: int):
    """``(train positions, test positions)`` of the authors' protocol among ``total_rows``
    concatenated rows (train file then test file): the first `AUTHORS_TRAIN_ROWS` and the last
    `AUTHORS_TEST_ROWS` of the `AUTHORS_SPLIT_SEED` permutation."""
    needed = AUTHORS_TRAIN_ROWS + AUTHORS_TEST_ROWS
    if total_rows != needed:
        raise ValueError(f"the authors' protocol re-splits the {needed:,} census rows, got "
                         f"{total_rows:,}")
    order = np.random.RandomState(AUTHORS_SPLIT_SEED).permutation(total_rows)
    return order[:AUTHORS_TRAIN_ROWS], order[AUTHORS_TRAIN_ROWS:]


def load_authors(source=None, rows: Optional[int] = None,
                 seed: int = 0) -> Dict[str, pd.DataFrame]:
    """`{"train", "eval", "test"}` of the authors' protocol (module docstring); ``source``,
    ``rows`` and ``seed`` as in `load`."""
    rows = readers.check_rows(rows)
    every = pd.concat(_source_examples(source), ignore_index=True)
    train_rows, test_rows = authors_split(len(every))
    frames = {"train": every.iloc[train_rows], "eval": every.iloc[train_rows[:AUTHORS_EVAL_ROWS]],
              "test": every.iloc[test_rows]}
    return {split: readers.subsample(frame, rows, seed) for split, frame in frames.items()}

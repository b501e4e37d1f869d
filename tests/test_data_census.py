"""Tests for data.census: the pinned protocol on the committed UCI files, and bad input."""
import gzip

import numpy as np
import pytest

from drgrad.data import census
from drgrad.data.specs import CENSUS, CENSUS_RAW_COLUMNS


@pytest.fixture(scope="module")
def frames():
    return census.load()


def test_row_counts(frames):
    assert {split: len(frame) for split, frame in frames.items()} == {
        "train": 199_523, "eval": 49_881, "test": 49_881}


def test_positive_rates(frames):
    train = frames["train"]
    assert int(train["income"].sum()) == 12_382  # 6.21 %
    assert int(train["marital"].sum()) == 86_485  # 43.35 %
    assert round(100 * train["income"].mean(), 2) == 6.21
    assert round(100 * train["marital"].mean(), 2) == 43.35
    both = frames["eval"]["income"].sum() + frames["test"]["income"].sum()
    assert both == 6_186  # All test-file positives, none lost or duplicated by the split.


def test_columns_and_types(frames):
    train = frames["train"]
    assert list(train.columns) == list(CENSUS.columns)
    for column, kind in CENSUS.raw_dtypes.items():
        if kind == "int":
            assert train[column].dtype == np.int64, column
        else:
            assert train[column].map(type).eq(str).all(), column
    # Values are stripped of the leading space of the UCI files.
    assert train["marital"].dtype == np.int64
    assert not train["education"].str.startswith(" ").any()
    assert "Foreign born- Not a citizen of U S" in set(train["citizenship"])


def test_split_is_the_pinned_permutation(frames):
    raw = census.to_examples(census.read_raw(f"{census.DEFAULT_SOURCE}/{census.TEST_FILE}"))
    order = np.random.RandomState(0).permutation(len(raw))
    expected_eval = raw.iloc[order[:49_881]].reset_index(drop=True)
    expected_test = raw.iloc[order[49_881:]].reset_index(drop=True)
    assert frames["eval"].equals(expected_eval)
    assert frames["test"].equals(expected_test)


def test_rows_is_a_seeded_ordered_sample(frames):
    small = census.load(rows=300, seed=5)
    again = census.load(rows=300, seed=5)
    assert all(len(frame) == 300 for frame in small.values())
    assert small["train"].equals(again["train"])
    keep = np.sort(np.random.RandomState(5).choice(199_523, 300, replace=False))
    assert small["train"].equals(frames["train"].iloc[keep].reset_index(drop=True))


# --- the authors' protocol: all 299,285 rows re-split 229,285 / 70,000 ---------------------
@pytest.fixture(scope="module")
def authors():
    return census.load_authors()


def test_authors_split_sizes(authors):
    assert {split: len(frame) for split, frame in authors.items()} == {
        "train": 229_285, "eval": 20_000, "test": 70_000}
    # Every income positive of both files (12,382 + 6,186) lands in exactly one split.
    assert authors["train"]["income"].sum() + authors["test"]["income"].sum() == 18_568


def test_authors_split_positions_disjoint_and_complete():
    train_rows, test_rows = census.authors_split(299_285)
    assert len(set(train_rows)) == 229_285 and len(set(test_rows)) == 70_000
    assert not set(train_rows) & set(test_rows)
    assert sorted(np.concatenate([train_rows, test_rows])) == list(range(299_285))


def test_authors_split_is_the_stated_permutation(authors, frames):
    # RandomState(0).permutation(299285) starts 256643, 204243, 61274 (rows 0..199,522 are
    # the train file, 199,523.. the test file); the test split starts at position 229,285.
    train_rows, test_rows = census.authors_split(299_285)
    assert list(train_rows[:3]) == [256_643, 204_243, 61_274]
    assert list(test_rows[:3]) == [43_842, 14_475, 104_137]
    train_file = frames["train"]
    assert authors["train"].iloc[2].equals(train_file.iloc[61_274])
    assert authors["test"].iloc[0].equals(train_file.iloc[43_842])
    test_file = census.to_examples(census.read_raw(f"{census.DEFAULT_SOURCE}/{census.TEST_FILE}"))
    assert authors["train"].iloc[0].equals(test_file.iloc[256_643 - 199_523])
    # eval: the first 20,000 train rows (overlapping train, as the authors' unused file must).
    assert authors["eval"].equals(authors["train"].iloc[:20_000].reset_index(drop=True))


def test_authors_split_is_deterministic(authors):
    again = census.load_authors()
    assert all(again[split].equals(authors[split]) for split in authors)
    small = census.load_authors(rows=50, seed=3)
    assert {split: len(frame) for split, frame in small.items()} == {
        "train": 50, "eval": 50, "test": 50}
    keep = np.sort(np.random.RandomState(3).choice(70_000, 50, replace=False))
    assert small["test"].equals(authors["test"].iloc[keep].reset_index(drop=True))


def test_authors_split_needs_the_whole_dataset(tmp_path):
    with pytest.raises(ValueError, match="re-splits the 299,285 census rows, got 3"):
        census.load_authors(_write_source(tmp_path, [_line()]))


# --- bad input: every error names the file and the line ------------------------------------
def _line(age="73", wage="0", label=" - 50000."):
    fields = [age, " Not in universe", " 0", " 0", " High school graduate", f" {wage}"]
    fields += [" Not in universe", " Widowed"] + [" x"] * 8 + [" 0", " 0", " 0"] + [" x"] * 5
    fields += [" 1700.09"] + [" x"] * 5 + [" 0"] + [" x"] * 5 + [" 0", " x", " 2", " 0", " 95"]
    fields += [label]
    assert len(fields) == len(CENSUS_RAW_COLUMNS)
    return ",".join(fields)


def _write_source(tmp_path, train_lines, test_lines=None):
    test_lines = test_lines if test_lines is not None else [_line(), _line()]
    for name, lines in ((census.TRAIN_FILE, train_lines), (census.TEST_FILE, test_lines)):
        with gzip.open(tmp_path / name, "wt") as handle:
            handle.write("\n".join(lines) + "\n")
    return tmp_path


def test_small_valid_source_loads(tmp_path):
    source = _write_source(tmp_path, [_line(), _line(label=" 50000+."), _line(wage="12")])
    loaded = census.load(source)
    assert list(loaded["train"]["income"]) == [0, 1, 0]
    assert list(loaded["train"]["wage_per_hour"]) == [0, 0, 12]
    assert len(loaded["eval"]) == 1 and len(loaded["test"]) == 1


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="census train file not found: .*census-income"
                                                ".data.gz"):
        census.load(tmp_path)
    with pytest.raises(FileNotFoundError, match="source directory not found"):
        census.load(tmp_path / "nowhere")


def test_wrong_column_count_names_file_and_line(tmp_path):
    source = _write_source(tmp_path, [_line(), _line(), _line() + ", extra"])
    with pytest.raises(ValueError, match=r"census-income\.data\.gz, line 3: expected 42 fields "
                                         r"separated by ',', found 43"):
        census.load(source)


def test_non_numeric_value_names_file_line_and_column(tmp_path):
    source = _write_source(tmp_path, [_line(), _line(age="seventy")])
    with pytest.raises(ValueError, match=r"census-income\.data\.gz, line 2: column 'age' must "
                                         r"be a finite number, got 'seventy'"):
        census.load(source)


def test_unknown_income_label(tmp_path):
    source = _write_source(tmp_path, [_line()], [_line(), _line(label=" rich")])
    with pytest.raises(ValueError, match=r"census-income\.test\.gz, line 2: income_50k"):
        census.load(source)

"""Tests for data.movielens on the shared ml-100k copy (research licence: never in the repo)."""
import numpy as np
import pandas as pd
import pytest

from conftest import SHARED_DATA
from drgrad.data import datasets, movielens
from drgrad.data.specs import MOVIELENS


SOURCE = SHARED_DATA / "movielens-100k"
# Research licence: read from the shared folder beside the checkout, never in the repo.
pytestmark = pytest.mark.skipif(
    not (SOURCE / "u.data").is_file(),
    reason=f"MovieLens 100K not present at {SOURCE} (research licence: not shipped; set "
           f"DRGRAD_SHARED_DATA to its parent folder)")


@pytest.fixture(scope="module")
def source():
    return SOURCE


@pytest.fixture(scope="module")
def frames(source):
    return movielens.load(source)


def test_time_split_sizes_and_columns(frames):
    assert {split: len(frame) for split, frame in frames.items()} == {
        "train": 80_000, "eval": 10_000, "test": 10_000}
    assert list(frames["train"].columns) == list(MOVIELENS.columns)


def test_labels_follow_the_rating(source):
    ratings = movielens.read_ratings(source)
    assert len(ratings) == 100_000
    np.testing.assert_array_equal(ratings["like"], (ratings["rating"] >= 4).astype(int))
    np.testing.assert_array_equal(ratings["love"], (ratings["rating"] == 5).astype(int))
    np.testing.assert_array_equal(ratings["dislike"], (ratings["rating"] <= 2).astype(int))
    # GroupLens counts: 21,201 fives; 34,174 fours; 6,110 ones and 11,370 twos.
    assert ratings["love"].sum() == 21_201
    assert ratings["like"].sum() == 21_201 + 34_174
    assert ratings["dislike"].sum() == 6_110 + 11_370


def test_split_is_by_time(source):
    ratings = movielens.read_ratings(source)
    assert ratings["timestamp"].is_monotonic_increasing
    # The frames are consecutive slices of the time-ordered ratings.
    frames = movielens.load(source)
    head = ratings.iloc[80_000:80_005][list(MOVIELENS.columns)].reset_index(drop=True)
    pd.testing.assert_frame_equal(frames["eval"].iloc[:5], head)


def test_features(frames):
    train = frames["train"]
    assert train["zip_prefix"].str.fullmatch(r"[0-9A-Z]{3}xx").all()
    assert set(train["gender"]) == {"F", "M"}
    assert train["primary_genre"].isin(movielens.GENRES).all()
    assert train["release_year"].between(1922, 1998).all()
    assert MOVIELENS.personalization["author"] == ()


def test_daily_spans(source, tmp_path):
    result = datasets.split_days("movielens-100k", tmp_path, source=source, days=3)
    spans = result["manifest"]["spans"]
    assert [span["date"] for span in spans.values()] == ["1997-09-20", "1997-09-21",
                                                         "1997-09-22"]
    ratings = movielens.read_ratings(source)
    day = pd.to_datetime(ratings["timestamp"], unit="s", utc=True).dt.strftime("%Y-%m-%d")
    for span in spans.values():
        assert sum(span["rows"].values()) == int((day == span["date"]).sum())
        assert span["rows"]["eval"] > 0
    all_days = movielens.daily(source)
    assert len(all_days) == day.nunique()


def test_missing_source_and_bad_lines(tmp_path, source):
    with pytest.raises(ValueError, match="needs --source"):
        movielens.load(None)
    with pytest.raises(FileNotFoundError,
                       match=r"movielens-100k ratings file not found: .*u\.data"):
        movielens.load(tmp_path)
    for name in ("u.user", "u.item"):
        (tmp_path / name).write_bytes((source / name).read_bytes())
    (tmp_path / "u.data").write_text("1\t2\t3\t881250949\n1\t2\tfive\t881250949\n")
    with pytest.raises(ValueError, match=r"u\.data, line 2: column 'rating' must be a finite "
                                         r"number, got 'five'"):
        movielens.load(tmp_path)
    (tmp_path / "u.data").write_text("1\t2\t3\t881250949\n1\t2\t3\n")
    with pytest.raises(ValueError, match=r"u\.data, line 2: expected 4 fields separated by "
                                         r"'\\t', found 3"):
        movielens.load(tmp_path)
    (tmp_path / "u.data").write_text("1\t2\t3\t881250949\n9999\t2\t3\t881250949\n")
    with pytest.raises(ValueError, match=r"u\.data, line 2: user_id 9999 is not in .*u\.user"):
        movielens.load(tmp_path)


def test_written_csv_types_match_the_spec(source, tmp_path):
    root = datasets.build("movielens-100k", tmp_path, source=source, rows=300)["path"]
    expected = {**MOVIELENS.raw_dtypes, **{task: "int" for task in MOVIELENS.tasks}}
    for split in datasets.SPLITS:
        path = f"{root}/span-1/{split}/part-00000.csv"
        assert datasets.infer_csv_types(path) == expected

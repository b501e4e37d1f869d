"""MovieLens 100K (GroupLens; F. M. Harper and J. A. Konstan, ACM TiiS 5(4), 2015).

Licence: research use only, no redistribution. The files are read from a path the user gives
(`--source DIR` holding `u.data`, `u.user`, `u.item`) and are never copied into this repository
or a package.

Protocol:

* One example per rating (100,000). Tasks: `like` = rating >= 4 (primary), `love` = rating == 5,
  `dislike` = rating <= 2 (the conflicting task).
* Features: `user_id`, `item_id` (integer ids), `gender`, `occupation`, `zip_prefix` (the first
  three characters of the zip code followed by "xx", e.g. "553xx", so it is always text, also
  for the Canadian codes), `primary_genre` (the first genre flagged in `u.item`, in `u.genre`
  order, "unknown" if none), and the numeric `age` and `release_year` (year of the release
  date; the one movie without a date gets the median release year of all movies).
* Personalization: user = [user_id, gender, occupation, zip_prefix], item = [item_id,
  primary_genre], author = [] (MovieLens has no author/creator id; no proxy is used).
* Time-based split: ratings sorted by (timestamp, user_id, item_id); the first 80 % are train,
  the next 10 % eval, the last 10 % test. Users and items first seen later map to id 0.
* Daily spans (`daily`): one span per UTC calendar day of the rating timestamp, in date
  order; inside a day a seeded 90/10 split (`RandomState(seed)`) gives train and eval (a day
  whose every row drew eval keeps them in train; a tiny day can have an empty eval split: one of
  the 213 days of ml-100k has a single rating).
* `rows=N` keeps at most N rows per split (seeded sample, order kept).
"""
import datetime
import os
from typing import Dict, List, Optional, Tuple

import numpy as np
import pandas as pd

from drgrad.data import readers
from drgrad.data.specs import MOVIELENS

SPEC = MOVIELENS
SPLIT_FRACTIONS = (("train", 0.8), ("eval", 0.1), ("test", 0.1))
DAILY_EVAL_FRACTION = 0.1
RATING_COLUMNS = ("user_id", "item_id", "rating", "timestamp")
USER_COLUMNS = ("user_id", "age", "gender", "occupation", "zip_code")
ITEM_HEAD = ("item_id", "title", "release_date", "video_release_date", "imdb_url")
GENRES = ("unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
          "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
          "Romance", "Sci-Fi", "Thriller", "War", "Western")


def _require_source(source) -> str:
    if source is None:
        raise ValueError("movielens-100k needs --source DIR (the unpacked ml-100k folder with "
                         "u.data, u.user, u.item); it is under a research licence and is not "
                         "shipped with this project")
    source = os.fspath(source)
    if not os.path.isdir(source):
        raise FileNotFoundError(f"movielens-100k source directory not found: {source}")
    return source


def _release_year(dates: pd.Series, path: str) -> np.ndarray:
    parsed = pd.to_datetime(dates.where(dates != ""), format="%d-%b-%Y", errors="coerce")
    unparsable = parsed.isna() & (dates != "")
    if unparsable.any():
        row = int(np.flatnonzero(unparsable.to_numpy())[0])
        raise ValueError(f"{path}, line {row + 1}: release_date must look like 01-Jan-1995, "
                         f"got {dates.iloc[row]!r}")
    years = parsed.dt.year
    return years.fillna(years.median()).round().astype(np.int64).to_numpy()


def read_ratings(source) -> pd.DataFrame:
    """All ratings joined with user and item features, sorted by time; keeps `timestamp`."""
    source = _require_source(source)
    data_path = os.path.join(source, "u.data")
    user_path = os.path.join(source, "u.user")
    item_path = os.path.join(source, "u.item")
    for path, what in ((data_path, "ratings"), (user_path, "users"), (item_path, "items")):
        readers.require_file(path, f"movielens-100k {what} file")
    ratings = readers.read_delimited(data_path, RATING_COLUMNS, "\t", integer=RATING_COLUMNS)
    bad = ~ratings["rating"].between(1, 5)
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise ValueError(f"{data_path}, line {row + 1}: rating must be 1..5, got "
                         f"{ratings['rating'].iloc[row]}")
    users = readers.read_delimited(user_path, USER_COLUMNS, "|", integer=("user_id", "age"))
    items = readers.read_delimited(item_path, ITEM_HEAD + GENRES, "|",
                                   integer=("item_id",) + GENRES, encoding="latin-1")
    users["zip_prefix"] = users["zip_code"].str[:3] + "xx"
    flags = items.loc[:, list(GENRES[1:])].to_numpy() > 0
    first = np.where(flags.any(axis=1), flags.argmax(axis=1) + 1, 0)
    items["primary_genre"] = np.asarray(GENRES, dtype=object)[first]
    items["release_year"] = _release_year(items["release_date"], item_path)
    for frame, key, path in ((users, "user_id", user_path), (items, "item_id", item_path)):
        if frame[key].duplicated().any():
            row = int(np.flatnonzero(frame[key].duplicated().to_numpy())[0])
            raise ValueError(f"{path}, line {row + 1}: duplicate {key} {frame[key].iloc[row]}")
    joined = ratings.merge(users[["user_id", "age", "gender", "occupation", "zip_prefix"]],
                           on="user_id", how="left", validate="many_to_one")
    joined = joined.merge(items[["item_id", "primary_genre", "release_year"]], on="item_id",
                          how="left", validate="many_to_one")
    for column, key, path in (("gender", "user_id", user_path),
                              ("primary_genre", "item_id", item_path)):
        orphans = joined[column].isna()
        if orphans.any():
            missing = joined.loc[orphans, key].iloc[0]
            row = int(np.flatnonzero((ratings[key] == missing).to_numpy())[0])
            raise ValueError(f"{data_path}, line {row + 1}: {key} {missing} is not in {path}")
    joined["like"] = (joined["rating"] >= 4).astype(np.int64)
    joined["love"] = (joined["rating"] == 5).astype(np.int64)
    joined["dislike"] = (joined["rating"] <= 2).astype(np.int64)
    joined = joined.sort_values(["timestamp", "user_id", "item_id"], kind="mergesort")
    return joined.reset_index(drop=True)


def load(source=None, rows: Optional[int] = None, seed: int = 0) -> Dict[str, pd.DataFrame]:
    """Returns `{"train", "eval", "test"}` DataFrames, split 80/10/10 by rating time."""
    rows = readers.check_rows(rows)
    ratings = read_ratings(source)
    columns = list(SPEC.columns)
    n = len(ratings)
    bounds, start = {}, 0
    for split, fraction in SPLIT_FRACTIONS[:-1]:
        bounds[split] = (start, start + int(n * fraction))
        start += int(n * fraction)
    bounds["test"] = (start, n)
    return {split: readers.subsample(ratings.iloc[lo:hi][columns], rows, seed)
            for split, (lo, hi) in bounds.items()}


def daily(source=None, days: Optional[int] = None, seed: int = 0
          ) -> List[Tuple[str, Dict[str, pd.DataFrame]]]:
    """`[(YYYY-MM-DD, {"train", "eval"})]`, one entry per UTC rating day, in date order.

    `days=K` keeps the first K days that have ratings.
    """
    ratings = read_ratings(source)
    day_number = ratings["timestamp"].to_numpy() // 86_400  # UTC days since 1970-01-01.
    # Ratings are sorted by time, so each day is one contiguous block.
    starts = np.flatnonzero(np.diff(day_number, prepend=day_number[0] - 1))
    ends = np.append(starts[1:], len(ratings))
    columns = list(SPEC.columns)
    rng = np.random.RandomState(seed)
    result = []
    for start, end in zip(starts, ends):
        if days is not None and len(result) >= days:
            break
        date = (datetime.date(1970, 1, 1) + datetime.timedelta(days=int(day_number[start])))
        day = ratings.iloc[start:end][columns].reset_index(drop=True)
        is_eval = rng.uniform(size=len(day)) < DAILY_EVAL_FRACTION
        if is_eval.all():  # Never leave a day without train rows (days of 1-2 ratings).
            is_eval[:] = False
        result.append((date.isoformat(), {"train": day[~is_eval].reset_index(drop=True),
                                          "eval": day[is_eval].reset_index(drop=True)}))
    return result

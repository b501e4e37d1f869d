"""ByteDance ICME 2019 short-video (Douyin) track 2 sample, for the user/item/author path.

The 1,000-row sample (`byterec_sample.txt`: tab-separated, no header, 12 columns `uid,
user_city, item_id, author_id, item_city, channel, finish, like, music_id, device, time,
duration_time`) is read from a path the user gives (`--source FILE` or a directory holding
that file); it is under the challenge's research terms and never committed. With 12 `like`
positives it is for wiring tests only, never for metrics.

* Tasks: `finish` (primary) and `like`, both 0/1 in the file.
* Features: the eight id columns as integer categoricals (-1 = unknown stays its own id),
  `duration_time` numeric. `time` (an obfuscated creation timestamp, unique per video) is not
  a feature.
* Personalization: user = [uid, user_city, device], item = [item_id, item_city, channel,
  music_id], author = [author_id].
* Split: a seeded permutation (`RandomState(seed)`), first 80 % train, next 10 % eval, last
  10 % test. `rows=N` keeps at most N rows per split (seeded sample, order kept).
"""
import os
from typing import Dict, Optional

import numpy as np
import pandas as pd

from drgrad.data import readers
from drgrad.data.specs import BYTEREC, BYTEREC_RAW_COLUMNS

SPEC = BYTEREC
FILE_NAME = "byterec_sample.txt"
TRAIN_FRACTION, EVAL_FRACTION = 0.8, 0.1


def resolve_path(source) -> str:
    if source is None:
        raise ValueError(f"byterec needs --source (the {FILE_NAME} file or its directory); the "
                         f"sample is not shipped with this project")
    source = os.fspath(source)
    if os.path.isdir(source):
        source = os.path.join(source, FILE_NAME)
    return readers.require_file(source, "byterec sample file")


def read_raw(source) -> pd.DataFrame:
    """The sample's 12 columns, all integers, with label values checked to be 0/1."""
    path = resolve_path(source)
    frame = readers.read_delimited(path, BYTEREC_RAW_COLUMNS, "\t", integer=BYTEREC_RAW_COLUMNS)
    for task in SPEC.tasks:
        bad = ~frame[task].isin((0, 1))
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise ValueError(f"{path}, line {row + 1}: label {task!r} must be 0 or 1, got "
                             f"{frame[task].iloc[row]}")
    return frame


def load(source=None, rows: Optional[int] = None, seed: int = 0) -> Dict[str, pd.DataFrame]:
    """Returns `{"train", "eval", "test"}` DataFrames (seeded 80/10/10 split)."""
    rows = readers.check_rows(rows)
    frame = read_raw(source)[list(SPEC.columns)]
    order = np.random.RandomState(seed).permutation(len(frame))
    n = len(frame)
    cut1 = int(n * TRAIN_FRACTION)
    cut2 = int(n * (TRAIN_FRACTION + EVAL_FRACTION))
    parts = {"train": order[:cut1], "eval": order[cut1:cut2], "test": order[cut2:]}
    return {split: readers.subsample(frame.iloc[np.sort(index)], rows, seed)
            for split, index in parts.items()}

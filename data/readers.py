"""Strict delimited-text reading: every bad line is reported by file and line number.

Raw dataset files are read as text first and checked before anything is converted, so a
truncated line, an extra field or a stray word in a numeric column stops the build with
`ValueError("<file>, line <n>: ...")` instead of silently becoming a NaN further down.
"""
import csv
import gzip
import io
import os
from typing import Iterable, Optional, Sequence

import numpy as np
import pandas as pd


def _open_text(path, encoding):
    if str(path).endswith(".gz"):
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding=encoding, newline="")
    return open(path, "r", encoding=encoding, newline="")


def require_file(path, what: str = "input file") -> str:
    """Returns `path` as a string; FileNotFoundError naming it when it is not a file."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{what} not found: {path}")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what} is not a file: {path}")
    return path


def read_delimited(path, columns: Sequence[str], sep: str, *, numeric: Iterable[str] = (),
                   integer: Iterable[str] = (), header: bool = False, strip: bool = True,
                   encoding: str = "utf-8") -> pd.DataFrame:
    """Reads a delimited text file (optionally .gz) with a fixed column count, strictly.

    Args:
      path: the file.
      columns: names of the fields, in order; every line must have exactly this many.
      sep: the one-character field separator (no quoting is interpreted).
      numeric: columns that must parse as numbers (returned as float64 unless in `integer`).
      integer: columns that must parse as integers (returned as int64).
      header: whether the first line is a header to skip.
      strip: strip surrounding whitespace from every field.
      encoding: text encoding of the file.

    Returns:
      A DataFrame with `columns`; text columns are Python strings.

    Raises:
      FileNotFoundError: the file does not exist.
      ValueError: `"<path>, line <n>: ..."` for a wrong field count, an empty or
        non-numeric value in a numeric column, or a non-integer in an integer column.
    """
    path = require_file(path)
    columns = list(columns)
    integer = set(integer)
    numeric = set(numeric) | integer
    unknown = sorted(numeric - set(columns))
    if unknown:
        raise ValueError(f"numeric columns {unknown} are not among the columns of {path}")
    with _open_text(path, encoding) as handle:
        try:
            text = handle.read()
        except (UnicodeDecodeError, OSError, EOFError) as error:
            raise ValueError(f"{path}: cannot be read as {encoding} text: {error}") from None
    if "\r" in text:
        text = text.replace("\r\n", "\n")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    first = 1 if header else 0
    width = len(columns)
    field_counts = np.fromiter((line.count(sep) + 1 for line in lines), dtype=np.int64,
                               count=len(lines))
    wrong = np.flatnonzero(field_counts[first:] != width)
    if len(wrong):
        index = int(wrong[0]) + first
        if not lines[index].strip():
            raise ValueError(f"{path}, line {index + 1}: empty line (expected {width} "
                             f"fields separated by {sep!r})")
        raise ValueError(f"{path}, line {index + 1}: expected {width} fields separated by "
                         f"{sep!r}, found {int(field_counts[index])}")
    if len(lines) <= first:
        raise ValueError(f"{path}: no data rows")
    frame = pd.read_csv(io.StringIO("\n".join(lines[first:])), sep=sep, header=None,
                        names=columns, dtype=str, na_filter=False, quoting=csv.QUOTE_NONE,
                        skip_blank_lines=False, engine="c")
    result = {}
    for column in columns:
        # Work on the distinct values only (columns repeat a few values): fast in pure pandas.
        codes, uniques = pd.factorize(frame[column])
        uniques = pd.Series(uniques, dtype=object)
        if strip:
            uniques = uniques.str.strip()
        if column in numeric:
            values = _to_number(uniques, path, column, first, codes,
                                as_int=column in integer)
        else:
            values = uniques.to_numpy(dtype=object)
        result[column] = values[codes]
    return pd.DataFrame(result, columns=columns)


def _to_number(uniques: pd.Series, path: str, column: str, first_line: int,
               codes: np.ndarray, as_int: bool) -> np.ndarray:
    """Converts the distinct values of a column; an error names the first bad line."""
    converted = pd.to_numeric(uniques, errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(converted)
    problem = "a finite number"
    if as_int and not bad.any():
        bad = converted != np.round(converted)
        problem = "an integer"
    if bad.any():
        row = int(np.flatnonzero(bad[codes])[0])
        raise ValueError(f"{path}, line {row + first_line + 1}: column {column!r} must be "
                         f"{problem}, got {uniques.iloc[codes[row]]!r}")
    if as_int:
        return pd.to_numeric(uniques).to_numpy(dtype=np.int64)
    return converted


def subsample(frame: pd.DataFrame, rows: Optional[int], seed: int) -> pd.DataFrame:
    """At most `rows` rows drawn without replacement (RandomState(seed)), original order kept.

    `rows=None` returns the frame unchanged. The index is reset either way.
    """
    if rows is None or len(frame) <= rows:
        return frame.reset_index(drop=True)
    keep = np.sort(np.random.RandomState(seed).choice(len(frame), size=rows, replace=False))
    return frame.iloc[keep].reset_index(drop=True)


def check_rows(rows) -> Optional[int]:
    """Validates the `rows` option: None or a positive int."""
    if rows is None:
        return None
    if isinstance(rows, bool) or not isinstance(rows, (int, np.integer)) or rows < 1:
        raise ValueError(f"rows must be a positive integer or None, got {rows!r}")
    return int(rows)

"""Label noise: a share of one task's TRAINING labels flipped at random (issue #18, the DRGrad
paper's "noise processing" claim: does a method keep the primary task's AUC when an auxiliary
task's labels are noisy?). Validation and test labels stay clean, so the test AUC measures
what the noisy training did to the model.

A flip spec is ``{task: fraction}`` (text ``TASK=FRACTION``, e.g. ``marital=0.2``). Any task
may be flipped, the primary one included (then the primary task itself trains on noisy
labels); a fraction is a number in [0, 1], 0 flipping nothing.

Which rows flip: the first ``round(fraction × n)`` positions (Python's `round`) of the train
split's permutation by ``numpy.random.RandomState([seed, crc32(task)])``. So a seed flips the
same rows of a task whatever else is flipped, two tasks flip independent rows, and the rows of
a smaller fraction are among those of a larger one at the same seed.
"""
import numbers
import zlib
from typing import Dict, Mapping, Optional, Sequence, Tuple

import numpy as np


def check_flips(flips: Optional[Mapping[str, float]],
                tasks: Optional[Sequence[str]] = None) -> Dict[str, float]:
    """``flips`` (None = none) as ``{task: float fraction}``; ValueError unless every fraction
    is a number in [0, 1] and, when ``tasks`` is given, every task is one of them."""
    if flips is None:
        return {}
    if not isinstance(flips, Mapping):
        raise ValueError(f"label flips must be a {{task: fraction}} mapping, got {flips!r}")
    checked = {}
    for task, fraction in flips.items():
        if not isinstance(task, str) or not task:
            raise ValueError(f"label flips: bad task name {task!r}")
        if tasks is not None and task not in tasks:
            raise ValueError(f"label flips name unknown task {task!r}; the dataset's tasks are "
                             f"{list(tasks)}")
        if isinstance(fraction, bool) or not isinstance(fraction, numbers.Real) or not (
                0.0 <= fraction <= 1.0):       # NaN fails the range test too
            raise ValueError(f"the flipped fraction of {task!r} must be a number in [0, 1], got "
                             f"{fraction!r}")
        checked[task] = float(fraction)
    return checked


def parse_flip(text: str) -> Tuple[str, float]:
    """``"marital=0.2"`` -> ``("marital", 0.2)``; ValueError with a one-line reason otherwise."""
    task, sep, value = str(text).partition("=")
    task = task.strip()
    if not sep or not task:
        raise ValueError(f"expected TASK=FRACTION (e.g. marital=0.2), got {text!r}")
    try:
        fraction = float(value)
    except ValueError:
        raise ValueError(f"expected TASK=FRACTION with a number in [0, 1], got {text!r}") from None
    return task, check_flips({task: fraction})[task]


def flip_text(flips: Optional[Mapping[str, float]]) -> str:
    """``{"marital": 0.2}`` -> ``"marital=0.2"`` (tasks sorted, comma-joined, each fraction as
    Python's shortest exact text); "" for none."""
    return ",".join(f"{task}={fraction!r}"
                    for task, fraction in sorted(check_flips(flips).items()))


def flip_column(frame, task: str, fraction: float, seed: int):
    """A copy of the DataFrame ``frame`` whose 0/1 column ``task`` has exactly
    ``round(fraction × len(frame))`` values flipped (0 ↔ 1), the rows chosen as the module
    docstring says; ``frame`` itself is left as it was."""
    fraction = check_flips({task: fraction})[task]
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not (
            0 <= seed < 2**32):
        raise ValueError(f"seed must be an int in [0, 2**32), got {seed!r}")
    if task not in frame.columns:
        raise ValueError(f"no label column {task!r} to flip; columns: {list(frame.columns)}")
    labels = frame[task].to_numpy(copy=True)
    if not np.isin(labels, (0, 1)).all():
        raise ValueError(f"column {task!r} must hold 0/1 labels to be flipped")
    count = round(fraction * len(labels))
    rows = np.random.RandomState([int(seed), zlib.crc32(task.encode())]).permutation(
        len(labels))[:count]
    labels[rows] = labels[rows] == 0
    return frame.assign(**{task: labels})


def flip_train_labels(frames, flips: Mapping[str, float], seed: int):
    """``frames`` (``{"train", "eval", "test"}`` DataFrames) with ``frames["train"]`` replaced
    by a copy whose labels are flipped as ``flips`` (``{task: fraction}``) says; the other
    splits are the same objects, unchanged."""
    if "train" not in frames:
        raise ValueError(f"no train split to flip labels in; splits: {sorted(frames)}")
    train = frames["train"]
    for task, fraction in check_flips(flips).items():
        train = flip_column(train, task, fraction, seed)
    return {**frames, "train": train}


__all__ = ["check_flips", "parse_flip", "flip_text", "flip_column", "flip_train_labels"]

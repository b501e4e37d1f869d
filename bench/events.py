"""Reads back what `drgrad.training.train.train` logs to TensorBoard, as plain arrays.

A run directory holds ``logs/steps`` (`drgrad.training.callbacks.StrategyStatsLogger`: ``strategy/<stat>``
and ``train/<metric>`` every ``log_every`` steps) and ``logs/validation`` (the Keras TensorBoard
callback's epoch logs: ``epoch_<task>_auc_exact`` and ``epoch_mean_auc``, written there because
`AUCEarlyStopping` adds them as ``val_*`` logs).
"""
import glob
import os

import numpy as np


def read_scalars(log_dir):
    """``{tag: (steps int64 [n], values float64 [n], wall_times float64 [n])}`` of every scalar
    in the event files under ``log_dir`` (sorted by step; {} if there are none)."""
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    series = {}
    for path in sorted(glob.glob(os.path.join(log_dir, "events.out.tfevents.*"))):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                if value.HasField("tensor"):
                    number = tf.make_ndarray(value.tensor)
                    if number.ndim != 0 or number.dtype.kind not in "fiu":
                        continue
                    number = float(number)
                elif value.HasField("simple_value"):
                    number = float(value.simple_value)
                else:
                    continue
                series.setdefault(value.tag, []).append((event.step, number, event.wall_time))
    out = {}
    for tag, points in series.items():
        points.sort(key=lambda p: (p[0], p[2]))
        steps, values, times = zip(*points)
        out[tag] = (np.asarray(steps, np.int64), np.asarray(values, np.float64),
                    np.asarray(times, np.float64))
    return out


def step_stats(run_dir):
    """``{stat: (steps, values)}`` of the per-step strategy statistics (``strategy/`` prefix
    dropped)."""
    scalars = read_scalars(os.path.join(run_dir, "logs", "steps"))
    return {tag[len("strategy/"):]: (s, v) for tag, (s, v, _) in scalars.items()
            if tag.startswith("strategy/")}


def epoch_val_auc(run_dir, tasks):
    """``{task: float64 [epochs]}`` validation AUC after each epoch (NaN where missing); every
    curve has the length of the longest validation log."""
    scalars = read_scalars(os.path.join(run_dir, "logs", "validation"))
    epochs = max((int(max(steps)) + 1 for steps, _, _ in scalars.values() if len(steps)),
                 default=0)
    out = {}
    for task in tasks:
        steps, values, _ = scalars.get(f"epoch_{task}_auc_exact", ((), (), ()))
        curve = np.full(epochs, np.nan)
        for step, value in zip(steps, values):
            curve[int(step)] = value
        out[task] = curve
    return out


def mean_step_ms(run_dir, outlier_factor=3.0):
    """Mean training-step time in ms from the wall times of the step logs.

    Consecutive logged steps ``every`` apart give ``Δt / Δstep``; intervals longer than
    ``outlier_factor`` × their median (those spanning an epoch end: validation, checkpoint) are
    dropped. NaN if fewer than two points were logged.
    """
    scalars = read_scalars(os.path.join(run_dir, "logs", "steps"))
    if not scalars:
        return float("nan")
    # Every tag of one logging call shares the step; take the earliest wall time per step.
    first = {}
    for steps, _, times in scalars.values():
        for step, time in zip(steps, times):
            first[int(step)] = min(time, first.get(int(step), np.inf))
    steps = np.array(sorted(first))
    if len(steps) < 2:
        return float("nan")
    times = np.array([first[s] for s in steps])
    per_step = np.diff(times) / np.diff(steps)
    keep = per_step <= outlier_factor * np.median(per_step)
    return float(1000.0 * np.mean(per_step[keep]))

"""drgrad.bench.events on hand-written TensorBoard event files (known steps and wall times)."""
import math
import os

import numpy as np
import pytest
import tensorflow as tf

from drgrad.bench import events, harness


def _write(directory, points):
    """points: (wall_time, step, tag, value) -> one event file in ``directory``."""
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, "events.out.tfevents.0.test")
    with tf.io.TFRecordWriter(path) as writer:
        writer.write(tf.compat.v1.Event(wall_time=0.0, file_version="brain.Event:2")
                     .SerializeToString())
        for wall, step, tag, value in points:
            summary = tf.compat.v1.Summary(value=[tf.compat.v1.Summary.Value(
                tag=tag, simple_value=value)])
            writer.write(tf.compat.v1.Event(wall_time=wall, step=step, summary=summary)
                         .SerializeToString())


@pytest.fixture(name="run_dir")
def fixture_run_dir(tmp_path):
    run = str(tmp_path / "run")
    # Logged every 10 steps; the interval 20 -> 30 spans an epoch end (validation, 8 s).
    steps = [(1000.0, 10), (1001.0, 20), (1010.0, 30), (1011.0, 40)]
    mu = [0.5, 0.9, 0.995, 0.999]
    points = []
    for (wall, step), m in zip(steps, mu):
        points += [(wall, step, "strategy/mu_dedicated", m),
                   (wall + 0.001, step, "strategy/xi2", -0.1 * step),
                   (wall + 0.002, step, "train/loss", 1.0)]
    _write(os.path.join(run, "logs", "steps"), points)
    _write(os.path.join(run, "logs", "validation"), [
        (1005.0, 0, "epoch_income_auc_exact", 0.90), (1005.0, 0, "epoch_marital_auc_exact", 0.98),
        (1012.0, 1, "epoch_income_auc_exact", 0.92), (1012.0, 1, "epoch_mean_auc", 0.95)])
    return run


def test_step_stats(run_dir):
    stats = events.step_stats(run_dir)
    assert set(stats) == {"mu_dedicated", "xi2"}           # train/* is not a strategy stat
    steps, values = stats["xi2"]
    np.testing.assert_array_equal(steps, [10, 20, 30, 40])
    np.testing.assert_allclose(values, [-1.0, -2.0, -3.0, -4.0], rtol=1e-6)


def test_epoch_val_auc(run_dir):
    curves = events.epoch_val_auc(run_dir, ["income", "marital"])
    np.testing.assert_allclose(curves["income"], [0.90, 0.92], rtol=1e-6)
    assert curves["marital"][0] == pytest.approx(0.98) and math.isnan(curves["marital"][1])


def test_mean_step_ms_drops_epoch_boundaries(run_dir):
    # Per-step times 0.1, 0.1, 0.9, 0.1 s; the 0.9 one (> 3 × median) is dropped -> 100 ms.
    assert events.mean_step_ms(run_dir) == pytest.approx(100.0, rel=1e-6)


def test_missing_logs_give_empty_results(tmp_path):
    assert events.step_stats(str(tmp_path)) == {}
    assert math.isnan(events.mean_step_ms(str(tmp_path)))
    assert events.epoch_val_auc(str(tmp_path), ["a"])["a"].size == 0


def test_mu_saturation_step(run_dir):
    # μ′ crosses 0.99 at the third logged step.
    assert harness._mu_saturation_step(events.step_stats(run_dir)) == 30  # pylint: disable=protected-access
    assert harness._mu_saturation_step({}) is None  # pylint: disable=protected-access


def test_router_dynamics():
    stats = {"xi1/label2": (np.arange(4), np.array([-0.2, 0.1, -0.3, 0.0])),
             "norm_shared": (np.arange(10), np.array([1.0] * 8 + [0.0, 0.2])),
             "norm_dedicated": (np.arange(10), np.full(10, 2.0))}
    out = harness.router_dynamics(stats)
    assert out["xi1_negative_share"] == 0.5            # ξ1 = 0 counts as >= 0
    assert out["shared_norm_ratio_end"] == pytest.approx(0.05)   # median(0/2, 0.2/2)
    assert harness.router_dynamics({}) == {"xi1_negative_share": "",
                                           "shared_norm_ratio_end": ""}

"""`MultiTaskModel.train_step` under tf.distribute (model/multitask_model.py, module docstring).

Each scenario runs in a subprocess (tests/distribute_scenarios.py): logical CPU devices and
`TF_CONFIG` must be set before TensorFlow initialises. Every subprocess is bounded in time.
"""
import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
SCENARIOS = os.path.join(HERE, "distribute_scenarios.py")
TIMEOUT_S = 300
PIPELINE_TIMEOUT_S = 900  # the census e2e run: about 4 minutes on 2 idle cores
# Float32 sums over 4 + 4 examples instead of 8: the same up to rounding.
TOLERANCE = 1e-5


def _env(**extra):
    env = {name: value for name, value in os.environ.items() if name != "TF_CONFIG"}
    env.update(TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="2", **extra)
    return env


def _run_scenario(*arguments, timeout=TIMEOUT_S):
    done = subprocess.run([sys.executable, SCENARIOS, *arguments], env=_env(), cwd=HERE,
                          capture_output=True, text=True, timeout=timeout, check=False)
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.mark.parametrize("strategy", ["equal_weight", "drgrad", "pcgrad", "gradcraft"])
def test_two_replicas_match_one_device_on_the_same_global_batch(tmp_path, strategy):
    out = tmp_path / "result.json"
    _run_scenario("equivalence", strategy, str(out))
    result = json.loads(out.read_text())
    assert result["replicas"] == 2
    assert (result["steps"], result["skipped"]) == (3, 0)
    assert result["moved"] > 1e-2  # training changed the weights: the comparison is not vacuous
    for key in ("trainable", "state", "stats", "loss", "mu_difference"):
        assert result[key] < TOLERANCE, (key, result)
    if strategy == "drgrad":
        # The updater ran on the global gradients: μ left ½ and σ is the same on both.
        assert result["mu"][0] > 0.55 and result["sigma_difference"] < TOLERANCE


def test_a_non_finite_step_is_skipped_on_every_replica_as_on_one_device(tmp_path):
    out = tmp_path / "result.json"
    _run_scenario("equivalence", "drgrad", str(out), "1")  # step 1's batch holds a NaN
    result = json.loads(out.read_text())
    # Skipped once (decided on the all-reduced values: the NaN is on one replica only), then
    # the same weights, σ and μ as one device that skipped the same step.
    assert (result["steps"], result["skipped"]) == (2, 1)
    for key in ("trainable", "state", "mu_difference", "sigma_difference"):
        assert result[key] < TOLERANCE, (key, result)


def test_a_parameter_server_style_strategy_is_refused_at_compile():
    # CentralStorageStrategy stands in for ParameterServerStrategy (the same check; a parameter
    # server needs a cluster): variables on one device, no replica all-reduce.
    import tensorflow as tf

    from drgrad.model import build_model
    from tiny_split_mmoe import FC, TASKS, TINY

    with tf.distribute.experimental.CentralStorageStrategy().scope():
        with pytest.raises(ValueError, match="does not support CentralStorageStrategy"):
            build_model(FC, TASKS, backbone="split_mmoe", strategy="drgrad", backbone_args=TINY)


def test_every_registered_strategy_trains_two_steps_under_mirrored_strategy(tmp_path):
    from drgrad.model.strategies import available_strategies, get_strategy_class

    out = tmp_path / "outcome.json"
    _run_scenario("every-strategy", str(out))
    outcome = json.loads(out.read_text())
    # Other tests register probe strategies in this process; the scenario's fresh one has the
    # project's own, every one of which must be there.
    assert set(outcome) == {name for name in available_strategies() if get_strategy_class(
        name).__module__.startswith("drgrad.model.strategies.")}
    assert {name: result for name, result in outcome.items() if result != "ok"} == {}


def test_drgrad_train_distribute_mirrored_trains_on_two_replicas(tmp_path):
    _run_scenario("train", str(tmp_path / "run"))
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert (metrics["distribute"], metrics["replicas"]) == ("mirrored", 2)
    assert metrics["epochs"] == 1 and all(0.0 <= auc <= 1.0 for auc in metrics["val"].values())


def test_drgrad_train_refuses_an_unknown_distribute_value(capsys):
    from drgrad.cli.main import main

    with pytest.raises(SystemExit) as exited:
        main(["train", "--dataset", "synthetic", "--out", "unused", "--distribute", "ps"])
    assert exited.value.code == 2 and "invalid choice: 'ps'" in capsys.readouterr().err


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def test_multi_worker_drgrad_ends_with_equal_weights_and_mu_on_both_workers(tmp_path):
    cluster = {"worker": [f"127.0.0.1:{port}" for port in _free_ports(2)]}
    outs = [tmp_path / f"worker-{i}.npz" for i in range(2)]
    # pylint: disable=consider-using-with
    logs = [open(tmp_path / f"worker-{i}.log", "w", encoding="utf-8") for i in range(2)]
    workers = [subprocess.Popen(
        [sys.executable, SCENARIOS, "worker", str(out)], cwd=HERE, stdout=subprocess.DEVNULL,
        stderr=log, env=_env(TF_CONFIG=json.dumps({"cluster": cluster,
                                                   "task": {"type": "worker", "index": i}})))
        for i, (out, log) in enumerate(zip(outs, logs))]
    try:
        codes = [w.wait(timeout=TIMEOUT_S) for w in workers]
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
                w.wait(timeout=30)
        for log in logs:
            log.close()
    assert codes == [0, 0], [(tmp_path / f"worker-{i}.log").read_text()[-2000:]
                             for i in range(2)]
    chief, other = (np.load(out) for out in outs)
    assert int(chief["replicas"]) == 2 and int(chief["steps"]) == 3
    assert set(chief.files) == set(other.files)
    for name in chief.files:
        np.testing.assert_array_equal(chief[name], other[name], err_msg=name)
    assert chief["mu"][0] != 0.5  # the updater ran


@pytest.mark.e2e
def test_pipeline_run_with_mirrored_trains_on_two_replicas_and_pushes(tmp_path):
    out = tmp_path / "result.json"
    _run_scenario("pipeline", str(tmp_path / "work"), str(out), timeout=PIPELINE_TIMEOUT_S)
    result = json.loads(out.read_text())
    assert result["trainer"] == {"distribute": "mirrored", "num_replicas_in_sync": 2}
    assert len(result["pushed"]) == 1 and result["pushed"][0].isdigit()  # one pushed version

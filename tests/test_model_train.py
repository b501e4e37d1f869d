"""`drgrad train` end to end on a small synthetic set: DRGrad and MMoE both learn (test AUC well
above 0.5), the run directory is complete and `load_trained` rebuilds the same model."""
import json
import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from drgrad.training.train import train  # noqa: E402
from drgrad.cli.main import main  # noqa: E402

SMALL = ["--dataset", "synthetic", "--rows", "5000", "--epochs", "3", "--batch-size", "256",
         "--verbose", "0", "--log-every", "5"]


def test_cli_train_drgrad_learns_and_reloads(tmp_path):
    out = str(tmp_path / "drgrad")
    assert main(["train", *SMALL, "--out", out, "--positive-weight", "label1=2"]) == 0
    with open(os.path.join(out, "metrics.json")) as f:
        metrics = json.load(f)
    assert set(metrics["test"]) == set(metrics["val"]) == {"label1", "label2"}
    assert min(metrics["test"].values()) > 0.65, metrics
    assert 1 <= metrics["epochs"] <= 3 and metrics["seconds"] > 0
    assert metrics["skipped_steps"] == 0
    for name in ("model_config.json", "preprocessor", "weights", "checkpoints", "logs"):
        assert os.path.exists(os.path.join(out, name)), name
    event_files = [f for _, _, files in os.walk(os.path.join(out, "logs", "steps")) for f in files]
    assert event_files  # per-step ξ/λ/μ statistics were written

    from drgrad.training.run_dir import load_trained
    from drgrad.training.callbacks import evaluate_auc
    from drgrad import data
    model, preprocessor, config = load_trained(out)
    assert config.strategy == "drgrad" and preprocessor is not None
    assert config.positive_weights == {"label1": 2.0}
    assert dict(model.positive_weights) == {"label1": 2.0, "label2": 1.0}
    frames = data.load_frames("synthetic", rows=5000, seed=0)
    aucs = evaluate_auc(model, preprocessor.to_dataset(frames["test"], 4096))
    for task, value in aucs.items():
        np.testing.assert_allclose(value, metrics["test"][task], rtol=1e-6)


def test_mmoe_learns(tmp_path):
    metrics = train("synthetic", str(tmp_path / "mmoe"), preset="mmoe", rows=5000, epochs=3,
                    batch_size=256, verbose=0)
    assert metrics["backbone"] == "mmoe" and "mu" not in metrics
    assert min(metrics["test"].values()) > 0.65, metrics


def test_bad_input_is_reported_in_one_line(tmp_path, capsys):
    assert main(["train", *SMALL, "--out", str(tmp_path), "--preset", "mmoe",
                 "--backbone", "mmoe"]) == 1
    assert "not both" in capsys.readouterr().err
    assert main(["train", *SMALL, "--out", str(tmp_path), "--strategy", "nope"]) == 1
    assert "unknown strategy" in capsys.readouterr().err
    assert main(["train", *SMALL, "--out", str(tmp_path), "--strategy-arg", "gamma"]) == 1
    assert "KEY=VALUE" in capsys.readouterr().err
    assert main(["train", *SMALL, "--out", str(tmp_path), "--parquet", "/nonexistent.parquet"]) == 1
    assert "not found" in capsys.readouterr().err
    assert main(["train", *SMALL, "--out", str(tmp_path), "--positive-weight", "nope=3"]) == 1
    assert "positive_weights names unknown task 'nope'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "--dataset", "nope", "--out", str(tmp_path)])


def test_early_stopping_watches_only_the_monitored_tasks(monkeypatch):
    """A single-task baseline's untrained task (loss weight 0) must not decide when to stop:
    here its AUC wanders while the trained task improves every epoch."""
    from drgrad.training import callbacks

    epochs = iter([{"a": 0.60, "b": 0.50}, {"a": 0.61, "b": 0.40}, {"a": 0.62, "b": 0.30},
                   {"a": 0.63, "b": 0.20}])
    monkeypatch.setattr(callbacks, "evaluate_auc", lambda model, data: next(epochs))

    class FakeModel:
        stop_training = False

        def get_weights(self):
            return []

    watched = callbacks.AUCEarlyStopping(None, patience=2, verbose=0, monitor=["a"])
    watched.set_model(FakeModel())
    for epoch in range(4):
        watched.on_epoch_end(epoch, {})
    assert watched.best_epoch == 3 and not watched.model.stop_training

    epochs = iter([{"a": 0.60, "b": 0.50}, {"a": 0.61, "b": 0.40}, {"a": 0.62, "b": 0.30}])
    everything = callbacks.AUCEarlyStopping(None, patience=2, verbose=0)
    everything.set_model(FakeModel())
    for epoch in range(3):
        everything.on_epoch_end(epoch, {})
    assert everything.best_epoch == 0 and everything.model.stop_training
    with pytest.raises(ValueError):
        callbacks.AUCEarlyStopping(None, monitor=[])

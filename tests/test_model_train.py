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
    assert main(["train", *SMALL, "--out", out, "--positive-weight", "label1=2",
                 "--beta-2", "0.9999", "--no-early-stopping"]) == 0
    with open(os.path.join(out, "metrics.json")) as f:
        metrics = json.load(f)
    assert set(metrics["test"]) == set(metrics["val"]) == {"label1", "label2"}
    assert min(metrics["test"].values()) > 0.65, metrics
    # No early stopping: every epoch runs and the last one's weights are kept.
    assert metrics["epochs"] == metrics["best_epoch"] == 3 and metrics["seconds"] > 0
    assert (metrics["beta_2"], metrics["patience"]) == (0.9999, None)
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


def test_beta_2_no_early_stopping_and_extra_records(tmp_path, monkeypatch):
    """The DRGrad authors' protocol through train(): Adam β2 0.9999 reaches the optimizer,
    patience=None trains every epoch, extra test metrics and metadata land in metrics.json."""
    import tensorflow as tf
    from drgrad import data

    created = []

    class RecordingAdam(tf.keras.optimizers.Adam):
        def __init__(self, **kwargs):
            created.append(kwargs)
            super().__init__(**kwargs)

    monkeypatch.setattr(tf.keras.optimizers, "Adam", RecordingAdam)
    out = str(tmp_path / "run")
    metrics = train("synthetic", out, preset="mmoe", rows=1000, epochs=2, batch_size=256,
                    verbose=0, patience=None, beta_2=0.9999, metadata={"protocol": "test"},
                    test_metrics={"test_rows": lambda labels, scores: len(labels)})
    assert created == [{"learning_rate": 1e-3, "beta_2": 0.9999}]
    assert (metrics["epochs"], metrics["best_epoch"], metrics["patience"]) == (2, 2, None)
    test_rows = len(data.load_frames("synthetic", rows=1000, seed=0)["test"])
    assert metrics["test_rows"] == {"label1": test_rows, "label2": test_rows}
    with open(os.path.join(out, "metrics.json")) as f:
        saved = json.load(f)
    assert (saved["beta_2"], saved["protocol"], saved["flip_labels"]) == (0.9999, "test", {})


@pytest.mark.parametrize("kwargs,message", [
    ({"beta_2": 1.0}, "beta_2 must be a number in \\[0, 1\\)"),
    ({"patience": -1}, "patience must be an int >= 0"),
    ({"metadata": {"seed": 1}}, "must add new names"),
    ({"metadata": {"x": 1}, "test_metrics": {"x": len}}, "must add new names"),
    ({"test_metrics": {"x": 1}}, "fn\\(labels, scores\\)"),
    ({"frames": {}, "rows": 10}, "frames replace reading the dataset"),
    ({"flip_labels": {"nope": 0.2}}, "unknown task 'nope'"),
])
def test_train_refuses_bad_options_before_reading_data(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        train("synthetic", str(tmp_path), verbose=0, **kwargs)
    assert not os.listdir(tmp_path)

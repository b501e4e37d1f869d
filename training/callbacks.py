"""Training callbacks: exact-AUC early stopping, TensorBoard logging of strategy statistics
(the DRGrad paper's Figs. 4–7 quantities: ξ, λ, μ, task-gradient cosines and norm ratios) and
the strategies' epoch-end hook."""
import math

import numpy as np
import tensorflow as tf

from drgrad.training.metrics import roc_auc


def predict_arrays(model, dataset):
    """``({task: probabilities}, {task: labels})`` over a `(features, labels)` dataset."""
    predictions = {t: [] for t in model.task_names}
    labels = {t: [] for t in model.task_names}
    predict = tf.function(lambda features: model(features, training=False))
    for features, batch_labels in dataset:
        out = predict(features)
        for task in model.task_names:
            predictions[task].append(out[task].numpy())
            labels[task].append(np.asarray(batch_labels[task]))
    return ({t: np.concatenate(v) for t, v in predictions.items()},
            {t: np.concatenate(v) for t, v in labels.items()})


def evaluate_auc(model, dataset):
    """``{task: exact AUC}`` on a `(features, labels)` dataset."""
    predictions, labels = predict_arrays(model, dataset)
    return {t: roc_auc(labels[t], predictions[t]) for t in model.task_names}


class AUCEarlyStopping(tf.keras.callbacks.Callback):
    """Stops when the mean exact validation AUC (over the `monitor` tasks, default all) has not
    improved for ``patience`` epochs and restores the best epoch's weights (all of them: μ and
    strategy state included).

    Adds ``val_<task>_auc_exact`` and ``val_mean_auc`` to the epoch logs.
    """

    def __init__(self, validation_data, patience=2, min_delta=0.0, verbose=1, monitor=None):
        super().__init__()
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 0:
            raise ValueError(f"patience must be an int >= 0, got {patience!r}")
        if monitor is not None and not list(monitor):
            raise ValueError("monitor must name at least one task")
        self.monitor = None if monitor is None else tuple(monitor)
        self.validation_data = validation_data
        self.patience = patience
        self.min_delta = float(min_delta)
        self.verbose = verbose
        self.best = -math.inf
        self.best_epoch = -1
        self.best_weights = None
        self.wait = 0
        self.history = []

    def on_epoch_end(self, epoch, logs=None):
        aucs = evaluate_auc(self.model, self.validation_data)
        mean = float(np.mean([aucs[t] for t in (self.monitor or aucs)]))
        self.history.append(aucs)
        if logs is not None:
            for task, value in aucs.items():
                logs[f"val_{task}_auc_exact"] = value
            logs["val_mean_auc"] = mean
        if self.verbose:
            text = ", ".join(f"{t} {v:.4f}" for t, v in aucs.items())
            print(f"\nepoch {epoch + 1}: validation AUC {text}; mean {mean:.4f}", flush=True)
        if mean > self.best + self.min_delta:
            self.best, self.best_epoch, self.wait = mean, epoch, 0
            self.best_weights = self.model.get_weights()
        else:
            self.wait += 1
            if self.wait >= self.patience:
                self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.best_weights is not None:
            self.model.set_weights(self.best_weights)
            if self.verbose:
                print(f"restored the weights of epoch {self.best_epoch + 1} "
                      f"(validation mean AUC {self.best:.4f})", flush=True)


class StrategyStatsLogger(tf.keras.callbacks.Callback):
    """Writes the strategy's per-step statistics (``model.read_stats()``) and the batch logs to
    TensorBoard every ``every`` steps, under ``strategy/<name>`` and ``train/<name>``."""

    def __init__(self, log_dir, every=10):
        super().__init__()
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"every must be a positive int, got {every!r}")
        self.log_dir = log_dir
        self.every = every
        self._writer = None
        self._step = 0

    def on_train_begin(self, logs=None):
        self._writer = tf.summary.create_file_writer(self.log_dir)

    def on_train_batch_end(self, batch, logs=None):
        self._step += 1
        if self._step % self.every:
            return
        with self._writer.as_default(step=self._step):
            for name, value in self.model.read_stats().items():
                tf.summary.scalar(f"strategy/{name}", value)
            for name, value in (logs or {}).items():
                tf.summary.scalar(f"train/{name}", float(value))

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.flush()
            self._writer.close()


class StrategyEpochEnd(tf.keras.callbacks.Callback):
    """Calls ``model.strategy.on_epoch_end(epoch)`` after every epoch (e.g. DWA's epoch-level
    loss ratios; see `drgrad.model.strategies.base`)."""

    def on_epoch_end(self, epoch, logs=None):
        del logs
        self.model.strategy.on_epoch_end(epoch)


def strategy_callbacks(model):
    """The callbacks ``model.strategy`` needs in ``model.fit`` (none for most strategies)."""
    return [StrategyEpochEnd()] if model.strategy.needs_epoch_end else []

"""Standalone training without TFX (`drgrad train`): data -> preprocessor -> model -> report.

Protocol (the project's census reference, docs/REFERENCE.md): Adam (lr 1e-3, β2 0.999),
batch 1024, early stopping on the exact validation mean AUC (patience 2, best weights
restored; ``patience=None`` trains every epoch and keeps the last weights), at most ``epochs``
epochs. Writes into ``out_dir``::

    metrics.json        {"val": {task: auc}, "test": {task: auc}, "epochs": n, "seconds": s,
                        "beta_2", "batch_size", "patience", "flip_labels", ...}
    model_config.json   ModelConfig (rebuild with drgrad.training.run_dir.load_trained(out_dir))
    weights/            final (best) weights, TF checkpoint
    preprocessor/       the fitted FeaturePreprocessor
    checkpoints/        weights after every epoch
    logs/               TensorBoard: epoch metrics, and per-step strategy statistics
                        (DRGrad: ξ, λ, μ′, gradient cosines and norm ratios)
"""
import json
import os
import shutil
import tempfile
import time

from drgrad.model.config import PRESETS, FeatureConfig, resolve_preset

DEFAULT_BACKBONE = "split_mmoe"
DEFAULT_STRATEGY = "drgrad"
# A dataset with one task trains a single-task model: the shared-bottom MLP with one tower.
SINGLE_TASK_BACKBONE = "shared_bottom"
#: The entries `train` itself writes into metrics.json.
RECORDED = ("val", "test", "epochs", "best_epoch", "skipped_steps", "dataset", "backbone",
            "strategy", "strategy_args", "preset", "seed", "distribute", "replicas",
            "batch_size", "patience", "beta_2", "flip_labels", "mu", "seconds")


def feature_config_for(spec, preprocessor, embedding_dim=8):
    """The `FeatureConfig` of a fitted `FeaturePreprocessor` of dataset ``spec``."""
    personalization = tuple(name for key in ("user", "item", "author")
                            for name in spec.personalization.get(key, ()))
    return FeatureConfig(categorical=dict(preprocessor.vocab_sizes), numeric=tuple(spec.numeric),
                         personalization=personalization, embedding_dim=embedding_dim)


def load_data(dataset, spec, batch_size, seed=0, source=None, rows=None, data_seed=0,
              data_options=None, parquet=None, frames=None, flip_labels=None):
    """`(fitted FeaturePreprocessor, train, val, test)` of `dataset` (a `--dataset` value, its
    `DatasetSpec` being `spec`), the splits as tf.data batches.

    A user's TFRecord / Parquet logs stream (`drgrad.data.streaming`: vocabularies and
    statistics from one pass, every epoch read from the files); CSV and the built-ins are held
    in memory (a note on stderr above `streaming.CSV_IN_MEMORY_BYTES` of CSV). `parquet`: the
    train split instead, a Parquet file of raw columns and labels, streamed. `frames`: the
    `{"train", "eval", "test"}` DataFrames to use instead of reading `dataset` (a protocol's
    own split of it). The vocabularies and unknown ids follow the dataset file's `transform`
    section. `flip_labels` (`{task: fraction}`): that share of each task's train labels flipped
    (`drgrad.data.label_noise`, rows drawn with ``seed``), in-memory train splits only.
    """
    import sys  # pylint: disable=g-import-not-at-top

    # pylint: disable-next=g-import-not-at-top
    from drgrad.data import datasets, label_noise, specs, streaming
    from drgrad.data.preprocessing import FeaturePreprocessor  # pylint: disable=g-import-not-at-top

    described = specs.get_dataset(dataset)
    streamed = frames is None and streaming.streams(described)
    if flip_labels and (streamed or parquet is not None):
        raise ValueError(f"flipping labels needs the train split in memory; "
                         f"{'--parquet' if parquet is not None else described.where} streams "
                         "it from files")
    preprocessor = FeaturePreprocessor(
        spec, vocab_top_k=described.transform.vocab_top_k,
        vocab_frequency_threshold=described.transform.vocab_frequency_threshold,
        num_oov_buckets=described.transform.num_oov_buckets)
    eval_batch = max(batch_size, 4096)
    held = None
    if streamed:
        datasets.check_own_source(described, source, data_options)
        held = streaming.LogStream.from_dataset(described, spec, rows=rows)
    elif frames is None:
        hint = streaming.csv_memory_hint(described)
        if hint:
            print(hint, file=sys.stderr)
        frames = datasets.load_frames(dataset, source=source, rows=rows, seed=data_seed,
                                      **dict(data_options or {}))
    if flip_labels:
        frames = label_noise.flip_train_labels(frames, flip_labels, seed)
    train_stream = (streaming.LogStream(spec, "parquet", [(parquet, "train")], rows=rows)
                    if parquet is not None else held)
    if train_stream is not None:
        train_stream.fit(preprocessor)
        train_data = train_stream.to_dataset(preprocessor, "train", batch_size, shuffle=True,
                                             seed=seed)
    else:
        train_data = preprocessor.fit(frames["train"]).to_dataset(
            frames["train"], batch_size, shuffle=True, seed=seed)
    if held is not None:
        val_data, test_data = (held.to_dataset(preprocessor, split, eval_batch)
                               for split in ("eval", "test"))
    else:
        val_data, test_data = (preprocessor.to_dataset(frames[split], eval_batch)
                               for split in ("eval", "test"))
    return preprocessor, train_data, val_data, test_data


def train(dataset, out_dir, backbone=None, strategy=None, preset=None, backbone_args=None,
          strategy_args=None, epochs=15, batch_size=1024, seed=0, rows=None, source=None,
          patience=2, parquet=None, learning_rate=1e-3, embedding_dim=None, task_weights=None,
          data_seed=0, log_every=10, verbose=1, data_options=None, positive_weights=None,
          distribute="none", beta_2=0.999, frames=None, flip_labels=None, test_metrics=None,
          metadata=None):
    """Trains one model and writes the run directory; returns the metrics dict.

    ``distribute`` (`drgrad.training.distribution`: none | mirrored | multi_worker): the model
    is built and fit inside that tf.distribute strategy (Keras `fit` distributes the
    batches: ``batch_size`` is the global batch); a multi-worker cluster's non-chief workers
    write their run directory into a temporary directory, removed at the end.

    ``patience``: early-stopping patience in epochs; None trains all ``epochs`` epochs and
    keeps the last weights. ``learning_rate``, ``beta_2``: Adam's (Keras's default β2 0.999;
    the DRGrad authors' census code uses 0.9999). ``frames``: the ``{"train", "eval", "test"}``
    DataFrames to train on instead of reading ``dataset`` (which still gives the spec and
    transform); ``source``, ``rows``, ``data_options`` and ``parquet`` then stay unset.
    ``flip_labels`` (``{task: fraction}``): that share of each task's training labels flipped
    (`drgrad.data.label_noise`, rows drawn with ``seed``: every configuration's run of one seed
    sees the same noisy labels); validation and test keep theirs. ``test_metrics``
    (``{name: fn(labels, scores) -> float}``): more metrics of the test predictions, written
    as ``name: {task: value}``. ``metadata``: more JSON entries for metrics.json (a benchmark's
    protocol name). Neither may reuse a name of `RECORDED`.
    """
    checks = [("epochs", epochs, 1), ("batch_size", batch_size, 1), ("log_every", log_every, 1)]
    if patience is not None:
        checks.append(("patience", patience, 0))
    for name, value, low in checks:
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    if isinstance(beta_2, bool) or not isinstance(beta_2, (int, float)) or not 0 <= beta_2 < 1:
        raise ValueError(f"beta_2 must be a number in [0, 1), got {beta_2!r}")
    added = [*(test_metrics or {}), *(metadata or {})]
    if set(added) & set(RECORDED) or len(set(added)) != len(added):
        raise ValueError(f"test_metrics and metadata must add new names, got {added}")
    if any(not callable(fn) for fn in (test_metrics or {}).values()):
        raise ValueError("test_metrics must map names to fn(labels, scores)")
    if frames is not None and (source is not None or rows is not None or data_options
                               or parquet is not None):
        raise ValueError("frames replace reading the dataset: give no source, rows, "
                         "data_options or parquet with them")
    if preset is not None and (backbone is not None or strategy is not None):
        raise ValueError("give either --preset or --backbone/--strategy, not both")
    if parquet is not None and not os.path.isfile(parquet):
        raise FileNotFoundError(f"parquet file {parquet} not found")
    if os.path.exists(os.path.join(out_dir, "metrics.json")):
        raise FileExistsError(f"{out_dir} already holds a finished run (metrics.json); "
                              "choose another --out")

    if preset is not None and preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; known: {', '.join(PRESETS)}")
    from drgrad.training import distribution  # pylint: disable=g-import-not-at-top
    distribute = distribution.normalize(distribute)
    import tensorflow as tf  # pylint: disable=g-import-not-at-top

    from drgrad.model.backbones import get_backbone_class  # pylint: disable=g-import-not-at-top
    from drgrad.model.strategies import get_strategy_class  # pylint: disable=g-import-not-at-top
    # Unknown names fail here, before any data is read.
    get_backbone_class(backbone or PRESETS.get(preset, {}).get("backbone", DEFAULT_BACKBONE))
    get_strategy_class(strategy or PRESETS.get(preset, {}).get("strategy", DEFAULT_STRATEGY))

    from drgrad import data  # pylint: disable=g-import-not-at-top
    from drgrad.data import label_noise  # pylint: disable=g-import-not-at-top
    from drgrad.model.builder import build_model  # pylint: disable=g-import-not-at-top
    from drgrad.training.run_dir import save_trained  # pylint: disable=g-import-not-at-top
    from drgrad.training.callbacks import (  # pylint: disable=g-import-not-at-top
        AUCEarlyStopping, StrategyStatsLogger, evaluate_auc, predict_arrays, strategy_callbacks)
    from drgrad.training.metrics import roc_auc  # pylint: disable=g-import-not-at-top

    started = time.time()
    described = data.specs.get_dataset(dataset)
    spec = data.get_spec(dataset)
    flip_labels = label_noise.check_flips(flip_labels, spec.tasks)
    if len(spec.tasks) == 1:
        if preset is not None or strategy == "drgrad":
            raise ValueError(f"DRGrad (and the paper presets) need two or more tasks, a primary "
                             f"and an auxiliary one; {described.where} has one task "
                             f"({spec.tasks[0]!r}): train a single-task model (the default for "
                             f"one task: --backbone {SINGLE_TASK_BACKBONE} --strategy "
                             f"equal_weight)")
        backbone = backbone or SINGLE_TASK_BACKBONE
        strategy = strategy or "equal_weight"
    if task_weights is None and described.task_weights:
        task_weights = dict(described.task_weights)
    if embedding_dim is None:
        embedding_dim = described.transform.embedding_dim
    preprocessor, train_data, val_data, test_data = load_data(
        dataset, spec, batch_size, seed=seed, source=source, rows=rows, data_seed=data_seed,
        data_options=data_options, parquet=parquet, frames=frames, flip_labels=flip_labels)
    feature_config = feature_config_for(spec, preprocessor, embedding_dim)
    strategy_args = dict(strategy_args or {})
    if preset is not None:
        backbone, strategy, preset_args, feature_config = resolve_preset(preset, feature_config)
        strategy_args = {**preset_args, **strategy_args}
    backbone = backbone or DEFAULT_BACKBONE
    strategy = strategy or DEFAULT_STRATEGY
    distributed = distribution.make_strategy(distribute)
    with distributed.scope():
        model = build_model(feature_config, spec.tasks, backbone=backbone, strategy=strategy,
                            backbone_args=backbone_args, strategy_args=strategy_args,
                            task_weights=task_weights, learning_rate=learning_rate, seed=seed,
                            positive_weights=positive_weights, beta_2=beta_2)
    chief_out_dir = out_dir
    if not distribution.is_chief(distributed):
        out_dir = tempfile.mkdtemp(prefix="drgrad-worker-")

    os.makedirs(out_dir, exist_ok=True)
    # A task with loss weight 0 (a single-task baseline's other tasks) is not trained: its
    # validation AUC is noise and must not decide when to stop.
    trained_tasks = [t for t in spec.tasks if (task_weights or {}).get(t, 1.0) > 0]
    early = None if patience is None else AUCEarlyStopping(
        val_data, patience=patience, verbose=verbose, monitor=trained_tasks)
    callbacks = ([] if early is None else [early]) + [
        StrategyStatsLogger(os.path.join(out_dir, "logs", "steps"), every=log_every),
        tf.keras.callbacks.TensorBoard(os.path.join(out_dir, "logs"), write_graph=False,
                                       profile_batch=0),
        tf.keras.callbacks.ModelCheckpoint(
            os.path.join(out_dir, "checkpoints", "epoch-{epoch:02d}"), save_weights_only=True),
    ] + strategy_callbacks(model)
    history = model.fit(train_data, epochs=epochs, callbacks=callbacks, verbose=verbose)
    epochs_run = len(history.history.get("loss", []))

    val = evaluate_auc(model, val_data)
    predictions, labels = predict_arrays(model, test_data)    # once, for every test metric
    test = {t: roc_auc(labels[t], predictions[t]) for t in model.task_names}
    metrics = {"val": val, "test": test, "epochs": epochs_run,
               "best_epoch": epochs_run if early is None else early.best_epoch + 1,
               "skipped_steps": int(model.skipped_steps.numpy()),
               "dataset": spec.name, "backbone": backbone, "strategy": strategy,
               "strategy_args": strategy_args, "preset": preset, "seed": seed,
               "distribute": distribute, "replicas": distributed.num_replicas_in_sync,
               "batch_size": batch_size, "patience": patience, "beta_2": beta_2,
               "flip_labels": flip_labels, **dict(metadata or {})}
    for name, fn in (test_metrics or {}).items():
        metrics[name] = {t: fn(labels[t], predictions[t]) for t in model.task_names}
    if model.mixer is not None:
        metrics["mu"] = [float(m) for m in model.mixer.mu.numpy()]
    metrics["seconds"] = round(time.time() - started, 1)
    save_trained(model, out_dir, preprocessor)
    with open(os.path.join(out_dir, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=2, sort_keys=True)
        f.write("\n")
    if out_dir != chief_out_dir:
        shutil.rmtree(out_dir, ignore_errors=True)
        return metrics
    if verbose:
        for split in ("val", "test"):
            text = ", ".join(f"{t} {v:.4f}" for t, v in metrics[split].items())
            print(f"{split} AUC: {text}")
        print(f"wrote {out_dir}/metrics.json ({epochs_run} epochs, {metrics['seconds']} s)")
    return metrics


__all__ = ["train", "load_data", "feature_config_for", "PRESETS", "RECORDED"]

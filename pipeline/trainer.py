"""The TFX Trainer `run_fn`: trains the DRGrad `MultiTaskModel` on Transform's output.

`run_fn(fn_args)` (TFX generic trainer contract):

1. rebuilds the feature config from the Transform graph (vocabulary sizes) and the model from
   `custom_config` (`trainer_config(...)`: backbone, strategy and their arguments);
2. reads transformed examples through `fn_args.data_accessor.tf_dataset_factory` as
   `({feature: [B]}, {task: [B]})` batches;
3. trains with TensorBoard logs in `fn_args.model_run_dir` (`train_steps` when TrainArgs sets
   them, otherwise `epochs` passes over the train split);
4. refuses to export a model with a non-finite weight;
5. exports through `serving.export.export_saved_model` (raw `tf.Example` in, the Transform
   layer tracked inside, `{task: probability}` out) to `fn_args.serving_model_dir`, with
   `model_config.json` beside it and a Keras weight checkpoint under the model artifact, from
   which the next run warm-starts when the pipeline passes it as `base_model`.

This module is imported by the Trainer executor as `pipeline.trainer`, so the package
`__init__` sets TF_USE_LEGACY_KERAS=1 before TensorFlow loads there too.
"""
import json
import os
from typing import Any, Dict, Mapping, Optional

from pipeline import configs, preprocessing

MODEL_CONFIG_FILE = "model_config.json"
# Keras weights beside Format-Serving inside the Trainer's model artifact (for warm start).
CHECKPOINT_DIR = "checkpoint"
CHECKPOINT_PREFIX = "weights"
_TRAINER_KEYS = ("transform", "backbone", "strategy", "backbone_args", "strategy_args",
                 "task_weights", "learning_rate", "seed", "epochs", "batch_size",
                 "personalization", "embedding_dim", "model_name")


def trainer_config(transform: Mapping[str, Any], backbone: str = "split_mmoe",
                   strategy: str = "drgrad", backbone_args: Optional[Mapping] = None,
                   strategy_args: Optional[Mapping] = None,
                   task_weights: Optional[Mapping[str, float]] = None,
                   learning_rate: float = 1e-3, seed: Optional[int] = 0,
                   epochs: int = configs.DEFAULT_EPOCHS,
                   batch_size: int = configs.DEFAULT_BATCH_SIZE,
                   personalization=(), embedding_dim: int = 8,
                   model_name: str = "model") -> Dict[str, Any]:
    """The Trainer `custom_config` (JSON-able; recorded in MLMD with the Trainer execution).

    Args:
      transform: the Transform `custom_config` (`preprocessing.transform_config(spec)`).
      backbone, strategy, backbone_args, strategy_args, task_weights, learning_rate, seed:
        passed to `model.build_model`.
      epochs: passes over the train split when TrainArgs has no `num_steps`; >= 1.
      batch_size: examples per step; >= 1.
      personalization: categorical columns feeding the personalization path (PPNet).
      embedding_dim: embedding width per categorical.
      model_name: the served model's name (recorded in the warmup requests).
    """
    for name, value in (("epochs", epochs), ("batch_size", batch_size),
                        ("embedding_dim", embedding_dim)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    if not (isinstance(learning_rate, (int, float)) and learning_rate > 0):
        raise ValueError(f"learning_rate must be > 0, got {learning_rate!r}")
    for name, value in (("backbone", backbone), ("strategy", strategy)):
        if not isinstance(value, str) or not value:
            raise ValueError(f"{name} must be a non-empty string, got {value!r}")
    unknown = sorted(set(personalization) - set(transform["categorical"]))
    if unknown:
        raise ValueError(f"personalization columns must be categorical: {unknown}")
    if task_weights is not None:
        extra = sorted(set(task_weights) - set(transform["tasks"]))
        if extra:
            raise ValueError(f"task_weights names unknown tasks: {extra}")
    return {
        "transform": dict(transform),
        "backbone": backbone,
        "strategy": strategy,
        "backbone_args": dict(backbone_args or {}),
        "strategy_args": dict(strategy_args or {}),
        "task_weights": dict(task_weights) if task_weights is not None else None,
        "learning_rate": float(learning_rate),
        "seed": seed,
        "epochs": epochs,
        "batch_size": batch_size,
        "personalization": list(personalization),
        "embedding_dim": embedding_dim,
        "model_name": model_name,
    }


def _check_config(custom_config) -> Mapping[str, Any]:
    if not custom_config:
        raise ValueError("the Trainer needs custom_config = pipeline.trainer.trainer_config(...)")
    missing = [key for key in _TRAINER_KEYS if key not in custom_config]
    if missing:
        raise ValueError(f"Trainer custom_config lacks {missing}; build it with "
                         "pipeline.trainer.trainer_config(...)")
    return custom_config


def model_config(tf_transform_output, custom_config):
    """`model.config.ModelConfig` for a Transform output and a Trainer `custom_config`."""
    from model.config import ModelConfig

    config = _check_config(custom_config)
    features = preprocessing.feature_config(
        tf_transform_output, config["transform"], personalization=config["personalization"],
        embedding_dim=config["embedding_dim"])
    return ModelConfig(feature_config=features, tasks=tuple(config["transform"]["tasks"]),
                       backbone=config["backbone"], strategy=config["strategy"],
                       backbone_args=config["backbone_args"],
                       strategy_args=config["strategy_args"],
                       task_weights=config["task_weights"],
                       learning_rate=config["learning_rate"], seed=config["seed"])


def input_fn(file_pattern, data_accessor, tf_transform_output, feature_names, tasks,
             batch_size, num_epochs=None, shuffle=True, seed=None):
    """Transformed examples as a `tf.data.Dataset` of `({feature: [B]}, {task: [B]})`."""
    from tfx_bsl.public import tfxio

    dataset = data_accessor.tf_dataset_factory(
        file_pattern,
        tfxio.TensorFlowDatasetOptions(batch_size=batch_size, num_epochs=num_epochs,
                                       shuffle=shuffle, shuffle_seed=seed),
        tf_transform_output.transformed_metadata.schema)
    feature_names, tasks = tuple(feature_names), tuple(tasks)
    return dataset.map(lambda batch: ({name: batch[name] for name in feature_names},
                                      {task: batch[task] for task in tasks}))


def check_finite_weights(model):
    """Raises FloatingPointError naming the first non-finite variable of `model`."""
    import numpy as np

    for variable in model.variables:
        if not np.all(np.isfinite(variable.numpy())):
            raise FloatingPointError(f"training produced a non-finite value in {variable.name}; "
                                     "the model is not exported")


def warm_start(model, base_model_serving_dir, built, dataset) -> bool:
    """Loads the weights of a previous model (`fn_args.base_model`) when it is the same network.

    The previous model's `model_config.json` must equal this one's (same backbone, strategy,
    vocabulary sizes...); otherwise the embeddings would not line up, so the model trains from
    scratch and the reason is logged. Non-trainable state (DRGrad's μ/σ) is restored with the
    weights. Returns True when the weights were loaded.
    """
    import tensorflow as tf
    from absl import logging

    if not base_model_serving_dir:
        return False
    config_path = os.path.join(base_model_serving_dir, MODEL_CONFIG_FILE)
    checkpoint = os.path.join(os.path.dirname(base_model_serving_dir.rstrip("/")),
                              CHECKPOINT_DIR, CHECKPOINT_PREFIX)
    if not tf.io.gfile.exists(config_path) or not tf.io.gfile.exists(checkpoint + ".index"):
        logging.warning("base model %s has no model_config.json / checkpoint; training from "
                        "scratch", base_model_serving_dir)
        return False
    with tf.io.gfile.GFile(config_path) as handle:
        previous = json.loads(handle.read())
    if previous != json.loads(built.to_json()):
        logging.warning("base model %s has a different model config (e.g. vocabulary sizes); "
                        "training from scratch", base_model_serving_dir)
        return False
    features, _ = next(iter(dataset.take(1)))
    model(features, training=False)  # create the variables, then restore them
    model.load_weights(checkpoint).assert_existing_objects_matched()
    logging.info("warm start from %s", checkpoint)
    return True


def run_fn(fn_args):
    """TFX Trainer entry point (module docstring)."""
    import tensorflow as tf
    import tensorflow_transform as tft

    from model import build_model
    from serving.export import export_saved_model, write_warmup_requests

    config = _check_config(fn_args.custom_config)
    tft_output = tft.TFTransformOutput(fn_args.transform_output)
    built = model_config(tft_output, config)
    tasks = list(built.tasks)
    if config["seed"] is not None:
        tf.keras.utils.set_random_seed(config["seed"])
    model = build_model(**built.build_kwargs())

    features = built.feature_config.feature_names
    train_steps = fn_args.train_steps
    train = input_fn(fn_args.train_files, fn_args.data_accessor, tft_output, features, tasks,
                     config["batch_size"], num_epochs=None if train_steps else 1, shuffle=True,
                     seed=config["seed"])
    evaluation = input_fn(fn_args.eval_files, fn_args.data_accessor, tft_output, features,
                          tasks, config["batch_size"],
                          num_epochs=None if fn_args.eval_steps else 1, shuffle=False)
    warm_start(model, fn_args.base_model, built, train)
    callbacks = [tf.keras.callbacks.TensorBoard(log_dir=fn_args.model_run_dir,
                                                update_freq="epoch"),
                 tf.keras.callbacks.TerminateOnNaN()]
    if train_steps:
        model.fit(train, epochs=1, steps_per_epoch=train_steps, validation_data=evaluation,
                  validation_steps=fn_args.eval_steps, callbacks=callbacks, verbose=2)
    else:
        model.fit(train, epochs=config["epochs"], validation_data=evaluation,
                  validation_steps=fn_args.eval_steps, callbacks=callbacks, verbose=2)
    check_finite_weights(model)

    raw_spec = tft_output.raw_feature_spec()
    export_saved_model(model, tft_output.transform_features_layer(),
                       {name: spec for name, spec in raw_spec.items() if name not in tasks},
                       tasks, fn_args.serving_model_dir,
                       label_feature_spec={task: raw_spec[task] for task in tasks})
    write_warmup_requests(fn_args.serving_model_dir, config["model_name"])
    with tf.io.gfile.GFile(os.path.join(fn_args.serving_model_dir, MODEL_CONFIG_FILE),
                           "w") as handle:
        handle.write(built.to_json() + "\n")
    model_root = os.path.dirname(fn_args.serving_model_dir.rstrip("/"))
    model.save_weights(os.path.join(model_root, CHECKPOINT_DIR, CHECKPOINT_PREFIX))
    with tf.io.gfile.GFile(os.path.join(fn_args.model_run_dir, "trainer_config.json"),
                           "w") as handle:
        handle.write(json.dumps(dict(config), indent=2, sort_keys=True) + "\n")

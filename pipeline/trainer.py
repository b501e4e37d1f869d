"""The TFX Trainer `run_fn`: trains the DRGrad `MultiTaskModel` on Transform's output.

`run_fn(fn_args)` (TFX generic trainer contract):

1. rebuilds the feature config from the Transform graph (vocabulary sizes) and the model from
   `custom_config` (`trainer_config(PipelineConfig)`: backbone, strategy and their arguments),
   inside the tf.distribute strategy its ``distribute`` names (`drgrad.training.distribution`:
   none | mirrored | multi_worker; `fit` distributes the datasets), and writes
   ``distribute.json`` (``{"distribute", "num_replicas_in_sync"}``) beside the TensorBoard logs;
2. reads transformed examples through `fn_args.data_accessor.tf_dataset_factory` as
   `({feature: [B]}, {task: [B]})` batches: the ones Transform wrote, or (``materialized``
   False: `transform.materialize=False`) the raw examples through the Transform graph;
3. trains with TensorBoard logs in `fn_args.model_run_dir` (`train_steps` when TrainArgs sets
   them, otherwise `epochs` passes over the train split);
4. refuses to export a model with a non-finite weight;
5. (only the chief of a multi-worker cluster; the other workers stop after training)
   exports through `serving.export.export_saved_model` (raw `tf.Example` in, the Transform
   layer tracked inside, `{task: probability}` out) to `fn_args.serving_model_dir`, with
   `model_config.json` beside it and a trained-model directory (`drgrad.model.saving`:
   config, checkpoint, vocabularies) under the model artifact, from which the next day's run
   warm-starts when the pipeline passes it as `base_model` (`drgrad.pipeline.warm_start`:
   embedding rows follow their values across vocabulary changes; what was done is written to
   `warm_start.json` in the model-run directory).

This module is imported by the Trainer executor as `drgrad.pipeline.trainer`, so the package
`__init__` sets TF_USE_LEGACY_KERAS=1 before TensorFlow loads there too.
"""
import os
from typing import Any, Dict, Mapping

from drgrad.model import saving
from drgrad.pipeline import preprocessing, warm_start
from drgrad.pipeline.json_files import write_json
from drgrad.pipeline.pipeline_config import PipelineConfig

MODEL_CONFIG_FILE = saving.CONFIG_FILE
DISTRIBUTE_FILE = "distribute.json"
_TRAINER_KEYS = ("transform", "backbone", "strategy", "backbone_args", "strategy_args",
                 "task_weights", "learning_rate", "seed", "epochs", "batch_size",
                 "personalization", "embedding_dim", "model_name", "distribute",
                 "materialized")


def trainer_config(config: PipelineConfig) -> Dict[str, Any]:
    """The Trainer `custom_config` of a validated `pipeline_config.PipelineConfig` (JSON-able;
    recorded in MLMD with the Trainer execution): every key of `_TRAINER_KEYS`, from the config's
    training section (model, strategy and their arguments, epochs, batch size, embedding width)
    and what the config derives (the Transform `custom_config`, the personalization columns, the
    served model's name)."""
    return {**config.training.model_dump(include=set(_TRAINER_KEYS)),
            "transform": dict(config.transform_custom_config),
            "materialized": config.transform.materialize,
            "personalization": list(config.personalization),
            "model_name": config.model_name}


def _check_config(custom_config) -> Mapping[str, Any]:
    if not custom_config:
        raise ValueError("the Trainer needs custom_config = trainer_config(PipelineConfig)")
    # Recorded (or compiled) before tf.distribute support: those trained on one replica; and
    # before the materialize option: on materialized examples.
    custom_config = {"distribute": "none", "materialized": True, **custom_config}
    missing = [key for key in _TRAINER_KEYS if key not in custom_config]
    if missing:
        raise ValueError(f"Trainer custom_config lacks {missing}; build it with "
                         "drgrad.pipeline.trainer.trainer_config(PipelineConfig)")
    return custom_config


def model_config(tf_transform_output, custom_config):
    """`model.config.ModelConfig` for a Transform output and a Trainer `custom_config`."""
    from drgrad.model.config import ModelConfig

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
             batch_size, num_epochs=None, shuffle=True, seed=None, transform_layer=None):
    """Transformed examples as a `tf.data.Dataset` of `({feature: [B]}, {task: [B]})`: read
    as Transform wrote them, or, given the Transform graph's ``transform_layer``, raw examples
    through it."""
    import tensorflow as tf
    from tfx_bsl.public import tfxio

    options = tfxio.TensorFlowDatasetOptions(batch_size=batch_size, num_epochs=num_epochs,
                                             shuffle=shuffle, shuffle_seed=seed)
    feature_names, tasks = tuple(feature_names), tuple(tasks)
    if transform_layer is None:
        dataset = data_accessor.tf_dataset_factory(
            file_pattern, options, tf_transform_output.transformed_metadata.schema)
    else:
        dataset = data_accessor.tf_dataset_factory(
            file_pattern, options, tf_transform_output.raw_metadata.schema).map(
                transform_layer, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.map(lambda batch: ({name: batch[name] for name in feature_names},
                                      {task: batch[task] for task in tasks})).prefetch(
                                          tf.data.AUTOTUNE)


def check_finite_weights(model):
    """Raises FloatingPointError naming the first non-finite variable of `model`."""
    import numpy as np

    for variable in model.variables:
        if not np.all(np.isfinite(variable.numpy())):
            raise FloatingPointError(f"training produced a non-finite value in {variable.name}; "
                                     "the model is not exported")


def vocabularies(tf_transform_output, custom_config) -> Dict[str, list]:
    """`{categorical column: [value, ...] in id order}` of a Transform output."""
    config = custom_config["transform"]
    return {column: [value.decode("utf-8", "backslashreplace") if isinstance(value, bytes)
                     else str(value)
                     for value in tf_transform_output.vocabulary_by_name(
                         preprocessing.vocabulary_name(column))]
            for column in config["categorical"]}


def run_fn(fn_args):
    """TFX Trainer entry point (module docstring)."""
    import tensorflow as tf
    import tensorflow_transform as tft
    from absl import logging

    from drgrad.model import build_model
    from drgrad.serving.export import export_saved_model, write_warmup_requests
    from drgrad.training import distribution
    from drgrad.training.callbacks import strategy_callbacks

    config = _check_config(fn_args.custom_config)
    tft_output = tft.TFTransformOutput(fn_args.transform_output)
    built = model_config(tft_output, config)
    tasks = list(built.tasks)
    if config["seed"] is not None:
        tf.keras.utils.set_random_seed(config["seed"])
    strategy = distribution.make_strategy(config["distribute"])
    with strategy.scope():
        model = build_model(**built.build_kwargs())
    write_json(os.path.join(fn_args.model_run_dir, DISTRIBUTE_FILE),
               {"distribute": config["distribute"],
                "num_replicas_in_sync": strategy.num_replicas_in_sync})

    features = built.feature_config.feature_names
    train_steps = fn_args.train_steps
    # One layer (each loads the transform graph) for both datasets and the export.
    transform_layer = tft_output.transform_features_layer()
    reading = None if config["materialized"] else transform_layer
    train = input_fn(fn_args.train_files, fn_args.data_accessor, tft_output, features, tasks,
                     config["batch_size"], num_epochs=None if train_steps else 1, shuffle=True,
                     seed=config["seed"], transform_layer=reading)
    evaluation = input_fn(fn_args.eval_files, fn_args.data_accessor, tft_output, features,
                          tasks, config["batch_size"],
                          num_epochs=None if fn_args.eval_steps else 1, shuffle=False,
                          transform_layer=reading)
    vocabs = vocabularies(tft_output, config)
    record = warm_start.warm_start(model, built, fn_args.base_model, vocabs,
                                   config["transform"]["num_oov_buckets"])
    write_json(os.path.join(fn_args.model_run_dir, warm_start.RECORD_FILE), record)
    logging.info("warm start: %s", record)
    callbacks = [tf.keras.callbacks.TensorBoard(log_dir=fn_args.model_run_dir,
                                                update_freq="epoch"),
                 tf.keras.callbacks.TerminateOnNaN()] + strategy_callbacks(model)
    if train_steps:
        model.fit(train, epochs=1, steps_per_epoch=train_steps, validation_data=evaluation,
                  validation_steps=fn_args.eval_steps, callbacks=callbacks, verbose=2)
    else:
        model.fit(train, epochs=config["epochs"], validation_data=evaluation,
                  validation_steps=fn_args.eval_steps, callbacks=callbacks, verbose=2)
    check_finite_weights(model)
    if not distribution.is_chief(strategy):
        return

    raw_spec = tft_output.raw_feature_spec()
    # A request carries the features only: not the labels, nor other logged columns (a
    # timestamp) that the dataset names no feature and preprocessing_fn does not read.
    features = config["transform"]["categorical"] + config["transform"]["numeric"]
    export_saved_model(model, transform_layer,
                       {name: raw_spec[name] for name in features},
                       tasks, fn_args.serving_model_dir,
                       label_feature_spec={task: raw_spec[task] for task in tasks})
    write_warmup_requests(fn_args.serving_model_dir, config["model_name"])
    saving.write_config(built, fn_args.serving_model_dir)  # labels the pushed version
    saving.save(model, warm_start.trained_model_dir(fn_args.serving_model_dir), vocabs)
    write_json(os.path.join(fn_args.model_run_dir, "trainer_config.json"), dict(config))

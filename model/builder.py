"""`build_model` (docs/ARCHITECTURE.md §2): validated arguments -> a compiled `MultiTaskModel`.

Saving and loading a trained model: `drgrad.model.saving`."""
import tensorflow as tf

from drgrad.model.config import ModelConfig, check_feature_config, check_tasks
from drgrad.model.multitask_model import MultiTaskModel


def build_model(feature_config, tasks, backbone="split_mmoe", strategy="drgrad",
                backbone_args=None, strategy_args=None, task_weights=None, learning_rate=1e-3,
                seed=None, compile_model=True, positive_weights=None, beta_2=0.999):
    """Builds (and by default compiles, with Adam) a `MultiTaskModel`.

    Args:
      feature_config: `FeatureConfig` (or its dict form).
      tasks: task names, primary first.
      backbone: "shared_bottom", "mmoe", "split_mmoe", "ple", "snr" or "ac_mmoe" (see
          model/backbones/).
      strategy: a registered strategy name ("equal_weight", "drgrad", ...).
      backbone_args, strategy_args: keyword arguments of the backbone / strategy.
      task_weights: ``{task: α}``, default 1.0 each.
      positive_weights: ``{task: p}``: positives of that task weigh p in its loss (default 1).
      learning_rate: Adam learning rate, > 0.
      beta_2: Adam's β2 (Keras's default 0.999; the DRGrad authors' census code: 0.9999).
      seed: if set, `tf.keras.utils.set_random_seed(seed)` before creating the weights.
      compile_model: False returns the model uncompiled (used when loading).
    """
    feature_config = check_feature_config(feature_config)
    tasks = check_tasks(tasks)
    if isinstance(learning_rate, bool) or not isinstance(learning_rate, (int, float)) or not (
            learning_rate > 0):
        raise ValueError(f"learning_rate must be > 0, got {learning_rate!r}")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    config = ModelConfig(feature_config=feature_config, tasks=tasks, backbone=backbone,
                         strategy=strategy, backbone_args=dict(backbone_args or {}),
                         strategy_args=dict(strategy_args or {}), task_weights=task_weights,
                         learning_rate=float(learning_rate), seed=seed,
                         positive_weights=positive_weights)
    model = MultiTaskModel.from_model_config(config)
    if compile_model:
        model.compile(optimizer=tf.keras.optimizers.Adam(learning_rate=learning_rate,
                                                         beta_2=beta_2))
    return model


def build_from_config(config, compile_model=True):
    """`build_model` from a `ModelConfig` (or its dict form)."""
    if isinstance(config, dict):
        config = ModelConfig.from_dict(config)
    return build_model(**config.build_kwargs(), compile_model=compile_model)

"""TFMA configuration of the Evaluator (one output per task) and reading its results.

The candidate is blessed only when, for **every** task, its AUC on the eval split is

* at least an absolute floor (`GenericValueThreshold.lower_bound`), and
* no more than `max_auc_drop` below the current blessed model's AUC
  (`GenericChangeThreshold`, `HIGHER_IS_BETTER`; TFMA ignores it on the first run, when the
  `LatestBlessedModelStrategy` resolver finds no baseline).

`model_type='tf_generic'`: TFMA must call the exported `serving_default` signature (serialized
raw `tf.Example` in, `{task: probability}` out) instead of deserializing the custom Keras
class, whose dict labels break its auto-detection. Labels are the raw 0/1 task columns
(`label_keys`: output name -> column).
"""
from typing import Dict, Mapping, Sequence, Union

from drgrad.pipeline import configs

# AUC gates the push; the others are reported. TFMA computes each metric of each task in
# Python, one example at a time, so every metric costs about as much as the AUC: at 1M
# simulated rows (100k eval rows, 6 tasks) these five took 204 s of the Evaluator, AUC alone
# 54 s (docs/SCALING.md). The default keeps AUC and the count; the rest are one option away.
DEFAULT_METRICS = ("AUC", "ExampleCount")
OPTIONAL_METRICS = ("BinaryCrossentropy", "MeanPrediction", "MeanLabel", "Calibration")


def check_metrics(metrics: Sequence[str]) -> tuple:
    """``metrics`` as a tuple, AUC first; ValueError on an unknown or repeated name."""
    if isinstance(metrics, str):
        raise ValueError(f"metrics must be a sequence of names, got {metrics!r}")
    known = DEFAULT_METRICS + OPTIONAL_METRICS
    unknown = [m for m in metrics if m not in known]
    if unknown or len(set(metrics)) != len(metrics):
        raise ValueError(f"metrics must be distinct names of {list(known)}, got {list(metrics)}")
    return ("AUC",) + tuple(m for m in metrics if m != "AUC")


def _per_task(value, tasks, name, default) -> Dict[str, float]:
    """One value per task from a number or a `{task: value}` mapping (others get `default`)."""
    if isinstance(value, Mapping):
        unknown = sorted(set(value) - set(tasks))
        if unknown:
            raise ValueError(f"{name} names unknown tasks {unknown}; tasks are {list(tasks)}")
        values = {task: value.get(task, default) for task in tasks}
    else:
        values = {task: value for task in tasks}
    for task, number in values.items():
        if isinstance(number, bool) or not isinstance(number, (int, float)):
            raise ValueError(f"{name}[{task!r}] must be a number, got {number!r}")
    return {task: float(number) for task, number in values.items()}


def make_eval_config(tasks: Sequence[str],
                     min_auc: Union[float, Mapping[str, float]] = configs.DEFAULT_MIN_AUC,
                     max_auc_drop: Union[float, Mapping[str, float]] =
                     configs.DEFAULT_MAX_AUC_DROP,
                     metrics: Sequence[str] = DEFAULT_METRICS):
    """`tfma.EvalConfig` blessing a model only if every task passes both AUC thresholds.

    Args:
      tasks: task names = the model's output names = the label columns.
      min_auc: absolute AUC floor, one for all tasks or `{task: floor}` (tasks left out get
        `configs.DEFAULT_MIN_AUC`); in [0, 1.0001] (a floor above 1 is an impossible
        threshold, useful to test the push gate).
      max_auc_drop: largest tolerated AUC drop vs the blessed baseline, one value or
        `{task: drop}` (default `configs.DEFAULT_MAX_AUC_DROP`); >= 0.
      metrics: TFMA metric class names computed per task, AUC always among them
        (`DEFAULT_METRICS`, `OPTIONAL_METRICS`).
    """
    import tensorflow_model_analysis as tfma

    if isinstance(tasks, str) or not tasks:
        raise ValueError(f"tasks must be a non-empty sequence of names, got {tasks!r}")
    tasks = list(tasks)
    metrics = check_metrics(metrics)
    floors = _per_task(min_auc, tasks, "min_auc", configs.DEFAULT_MIN_AUC)
    drops = _per_task(max_auc_drop, tasks, "max_auc_drop", configs.DEFAULT_MAX_AUC_DROP)
    for task in tasks:
        if not 0.0 <= floors[task] <= 1.0001:
            raise ValueError(f"min_auc[{task!r}] must be in [0, 1.0001], got {floors[task]}")
        if drops[task] < 0:
            raise ValueError(f"max_auc_drop[{task!r}] must be >= 0, got {drops[task]}")
    metrics_specs = []
    for task in tasks:
        auc = tfma.MetricConfig(
            class_name="AUC",
            threshold=tfma.MetricThreshold(
                value_threshold=tfma.GenericValueThreshold(lower_bound={"value": floors[task]}),
                change_threshold=tfma.GenericChangeThreshold(
                    direction=tfma.MetricDirection.HIGHER_IS_BETTER,
                    absolute={"value": -drops[task] - 1e-10})))
        others = [tfma.MetricConfig(class_name=name) for name in metrics if name != "AUC"]
        metrics_specs.append(tfma.MetricsSpec(output_names=[task], metrics=[auc] + others))
    return tfma.EvalConfig(
        model_specs=[tfma.ModelSpec(signature_name="serving_default", model_type="tf_generic",
                                    label_keys={task: task for task in tasks})],
        slicing_specs=[tfma.SlicingSpec()],
        metrics_specs=metrics_specs)


def read_metrics(evaluation_uri: str) -> Dict[str, Dict[str, float]]:
    """`{task: {metric: value}}` of the overall slice of the candidate model.

    Args:
      evaluation_uri: URI of the Evaluator's `evaluation` (ModelEvaluation) artifact.
    """
    import tensorflow_model_analysis as tfma

    result = tfma.load_eval_result(evaluation_uri)
    overall = [metrics for slice_key, metrics in result.slicing_metrics if slice_key == ()]
    if not overall:
        raise ValueError(f"no overall-slice metrics in {evaluation_uri}")
    out: Dict[str, Dict[str, float]] = {}
    for output_name, by_sub_key in overall[0].items():
        values = by_sub_key.get("", {})
        task = {}
        for metric, value in values.items():
            if isinstance(value, dict) and "doubleValue" in value:
                task[metric] = float(value["doubleValue"])
        out[output_name] = task
    return out


def read_blessing(blessing_uri: str) -> bool:
    """True when the Evaluator blessed the candidate (its `BLESSED` marker file exists)."""
    import os

    import tensorflow as tf

    return tf.io.gfile.exists(os.path.join(blessing_uri, "BLESSED"))

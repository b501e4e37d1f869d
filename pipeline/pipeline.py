"""`create_pipeline`: the TFX DAG of the DRGrad recommender (TFX template `pipeline.py` style).

```
CsvExampleGen | ImportExampleGen  (span-{SPAN}/train/*, span-{SPAN}/eval/*)
  -> StatisticsGen -> ImportSchemaGen (curated data/schemas/<dataset>/schema.pbtxt)
                      | SchemaGen (first run, no curated schema yet)
  -> ExampleValidator -> ValidationGate (fails the run on any anomaly)
  -> Transform (pipeline.preprocessing.preprocessing_fn) -> Trainer (pipeline.trainer.run_fn)
  -> Resolver(LatestBlessedModelStrategy) -> Evaluator (AUC per task, floor + change vs baseline)
  -> Pusher (only when blessed: an atomic new version under <serving>/<model>/, pipeline.pusher)
```

Daily retraining (issue 7, `pipeline.daily`) plugs in through the arguments, without rewiring:
`run_date` adds `SpanForDate` in front of ExampleGen (the day's span from the data manifest, a
runtime parameter on Kubeflow / Vertex), `window_spans=N` puts a resolver of the newest N
validated spans between ExampleGen and Transform, `analyzer_cache=True` feeds the latest
Transform analyzer cache back into Transform, and `warm_start=True` feeds the latest blessed
model to the Trainer as `base_model`.

```
SpanForDate(run_date) -> CsvExampleGen(range_config) -> ... -> ValidationGate
  validated-span-window-resolver(newest N validated spans) -> Transform(+ analyzer cache)
```
"""
import os
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

from drgrad.pipeline import configs

# Component ids (also the directory names under the pipeline root).
EXAMPLE_GEN = "CsvExampleGen"
IMPORT_EXAMPLE_GEN = "ImportExampleGen"
STATISTICS_GEN = "StatisticsGen"
SCHEMA_GEN = "SchemaGen"
IMPORT_SCHEMA_GEN = "ImportSchemaGen"
EXAMPLE_VALIDATOR = "ExampleValidator"
VALIDATION_GATE = "ValidationGate"
TRANSFORM = "Transform"
TRAINER = "Trainer"
MODEL_RESOLVER = "latest-blessed-model-resolver"
SPAN_FOR_DATE = "SpanForDate"
SPAN_WINDOW_RESOLVER = "validated-span-window-resolver"
ANALYZER_CACHE_RESOLVER = "latest-analyzer-cache-resolver"
EVALUATOR = "Evaluator"
PUSHER = "Pusher"

INPUT_FORMATS = ("csv", "tfrecord")
DEFAULT_INPUT_PATTERNS = {"train": "span-{SPAN}/train/*", "eval": "span-{SPAN}/eval/*"}
SCHEMAS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                           "data", "schemas")


def default_schema_path(dataset: str) -> Optional[str]:
    """The committed curated schema of a dataset (by registry name), or None if absent."""
    path = os.path.join(SCHEMAS_DIR, dataset, "schema.pbtxt")
    return path if os.path.isfile(path) else None


def _example_gen(input_format, data_root, input_patterns, partition_feature, hash_buckets,
                 range_config):
    from tfx import v1 as tfx

    if input_format not in INPUT_FORMATS:
        raise ValueError(f"input_format must be one of {list(INPUT_FORMATS)}, got "
                         f"{input_format!r}")
    patterns = dict(input_patterns or DEFAULT_INPUT_PATTERNS)
    if not patterns or not all(isinstance(p, str) and p for p in patterns.values()):
        raise ValueError(f"input_patterns must map split names to file patterns, got {patterns}")
    output_config = None
    if len(patterns) == 1:
        # One input folder: hash-split it, on the partition feature (e.g. the user id) when the
        # dataset has one so that a user's examples never straddle train and eval.
        train_buckets, eval_buckets = hash_buckets
        output_config = tfx.proto.Output(split_config=tfx.proto.SplitConfig(
            splits=[tfx.proto.SplitConfig.Split(name="train", hash_buckets=train_buckets),
                    tfx.proto.SplitConfig.Split(name="eval", hash_buckets=eval_buckets)],
            partition_feature_name=partition_feature or ""))
    elif not {"train", "eval"} <= set(patterns):
        raise ValueError(f"input_patterns needs 'train' and 'eval' splits, got {sorted(patterns)}")
    input_config = tfx.proto.Input(splits=[tfx.proto.Input.Split(name=name, pattern=pattern)
                                           for name, pattern in patterns.items()])
    component = (tfx.components.CsvExampleGen if input_format == "csv"
                 else tfx.components.ImportExampleGen)
    return component(input_base=data_root, input_config=input_config,
                     output_config=output_config, range_config=range_config)


def create_pipeline(
        pipeline_name: str,
        pipeline_root: str,
        data_root: str,
        serving_model_dir: str,
        *,
        dataset: str,
        backbone: str = "split_mmoe",
        strategy: str = "drgrad",
        backbone_args: Optional[Mapping[str, Any]] = None,
        strategy_args: Optional[Mapping[str, Any]] = None,
        task_weights: Optional[Mapping[str, float]] = None,
        learning_rate: float = 1e-3,
        seed: Optional[int] = 0,
        epochs: int = configs.DEFAULT_EPOCHS,
        batch_size: int = configs.DEFAULT_BATCH_SIZE,
        train_steps: Optional[int] = None,
        eval_steps: Optional[int] = configs.DEFAULT_EVAL_STEPS,
        min_auc: Union[float, Mapping[str, float]] = configs.DEFAULT_MIN_AUC,
        max_auc_drop: Union[float, Mapping[str, float]] = configs.DEFAULT_MAX_AUC_DROP,
        schema_path: Optional[str] = "default",
        check_schema_path: bool = True,
        input_format: str = "csv",
        input_patterns: Optional[Mapping[str, str]] = None,
        hash_buckets: Sequence[int] = (9, 1),
        range_config=None,
        run_date=None,
        window_spans: Optional[int] = None,
        bucketize: Optional[Mapping[str, int]] = None,
        num_oov_buckets: int = configs.DEFAULT_NUM_OOV_BUCKETS,
        vocab_top_k: Optional[int] = None,
        analyzer_cache=None,
        warm_start: bool = False,
        preprocessing_fn: str = configs.PREPROCESSING_FN,
        run_fn: str = configs.RUN_FN,
        metadata_connection_config=None,
        beam_pipeline_args: Optional[List[str]] = None,
        enable_cache: bool = False,
        data_only: bool = False):
    """Builds the TFX pipeline (module docstring).

    Args:
      pipeline_name: matches `[a-z0-9][a-z0-9-]*` (Kubeflow Pipelines v2 rejects others).
      pipeline_root: where TFX writes artifacts (local path or gs://).
      data_root: the dataset directory holding `span-<N>/{train,eval}/` (`input_base`).
      serving_model_dir: the Pusher's filesystem destination, `<serving>/<model name>`; every
        push adds a numbered version directory under it.
      dataset: registry name of the dataset (`data.specs.get_spec`).
      backbone, strategy, backbone_args, strategy_args, task_weights, learning_rate, seed:
        the model (`model.build_model`).
      epochs, batch_size: training passes and batch size (used when `train_steps` is None).
      train_steps, eval_steps: TrainArgs / EvalArgs `num_steps` (None = by epochs / whole
        eval split).
      min_auc, max_auc_drop: Evaluator thresholds, one value or `{task: value}`.
      schema_path: a curated schema file -> ImportSchemaGen; None -> SchemaGen (first run);
        "default" -> `data/schemas/<dataset>/schema.pbtxt` when committed, else SchemaGen.
      check_schema_path: fail now if `schema_path` is not a file here (False when compiling
        for a container that holds the file at that path).
      input_format: "csv" (CsvExampleGen) or "tfrecord" (ImportExampleGen of tf.Examples).
      input_patterns: `{split: pattern}` under `data_root` (default: `span-{SPAN}/train/*`,
        `span-{SPAN}/eval/*`); a single entry is hash-split train/eval by `hash_buckets` on
        the dataset's `partition_feature`.
      range_config: `tfx.proto.RangeConfig` selecting spans (default: the latest span).
      run_date: `YYYY-MM-DD` (or a `RuntimeParameter` of type str; '' = newest span): ingest
        that day's span, looked up in `<data_root>/manifest.json` by `SpanForDate`.
        Exclusive with `range_config`.
      window_spans: Transform and Trainer read the newest N spans that passed the validation
        gate (`pipeline.daily.ValidatedSpanWindowStrategy`); None = only this run's span.
      bucketize, num_oov_buckets, vocab_top_k: Transform options
        (`pipeline.preprocessing.transform_config`).
      analyzer_cache: True = reuse the latest Transform analyzer cache of this pipeline
        (incremental analysis across days), or a channel of a `TransformCache`.
      warm_start: give the Trainer the latest blessed model as `base_model`.
      preprocessing_fn, run_fn: dotted paths of the Transform and Trainer functions.
      metadata_connection_config: MLMD connection (None on Kubeflow / Vertex).
      beam_pipeline_args: Beam arguments (`configs.beam_pipeline_args(...)`).
      enable_cache: reuse outputs of executions whose inputs did not change.
      data_only: stop after Transform (ingestion, validation and preprocessing only; used by
        bench/pipeline_throughput.py).

    Returns:
      A `tfx.dsl.Pipeline`.
    """
    from drgrad.data.specs import get_spec
    from tfx import v1 as tfx

    from tfx.dsl.components.base import executor_spec

    from drgrad.pipeline import evaluation, preprocessing, trainer
    from drgrad.pipeline import pusher as pusher_executor
    from drgrad.pipeline.validation_gate import ValidationGate

    configs.check_pipeline_name(pipeline_name)
    for name, value in (("pipeline_root", pipeline_root), ("data_root", data_root),
                        ("serving_model_dir", serving_model_dir)):
        if not isinstance(value, str) or not value:
            raise ValueError(f"{name} must be a non-empty path, got {value!r}")
    for name, value in (("train_steps", train_steps), ("eval_steps", eval_steps)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or value < 1):
            raise ValueError(f"{name} must be None or an int >= 1, got {value!r}")
    if len(hash_buckets) != 2 or min(hash_buckets) < 1:
        raise ValueError(f"hash_buckets must be (train, eval) positive ints, got {hash_buckets}")
    if run_date is not None and range_config is not None:
        raise ValueError("give run_date or range_config, not both")
    if isinstance(run_date, str) and run_date:
        from drgrad.pipeline.daily import check_date
        check_date(run_date)
    if window_spans is not None and (isinstance(window_spans, bool)
                                     or not isinstance(window_spans, int) or window_spans < 1):
        raise ValueError(f"window_spans must be None or an int >= 1, got {window_spans!r}")
    spec = get_spec(dataset)
    if schema_path == "default":
        schema_path = default_schema_path(spec.name)
    if check_schema_path and schema_path is not None and not os.path.isfile(schema_path):
        raise FileNotFoundError(f"schema file not found: {schema_path}")

    transform_config = preprocessing.transform_config(
        spec, bucketize=bucketize, num_oov_buckets=num_oov_buckets, vocab_top_k=vocab_top_k)
    personalization = sorted({c for names in spec.personalization.values() for c in names})
    trainer_config = trainer.trainer_config(
        transform_config, backbone=backbone, strategy=strategy, backbone_args=backbone_args,
        strategy_args=strategy_args, task_weights=task_weights, learning_rate=learning_rate,
        seed=seed, epochs=epochs, batch_size=batch_size, personalization=personalization,
        model_name=os.path.basename(serving_model_dir.rstrip("/")))
    eval_config = evaluation.make_eval_config(spec.tasks, min_auc=min_auc,
                                              max_auc_drop=max_auc_drop)

    components = []
    if run_date is not None:
        from drgrad.pipeline.daily import SpanForDate

        span_for_date = SpanForDate(data_root=data_root, run_date=run_date).with_id(
            SPAN_FOR_DATE)
        components.append(span_for_date)
        range_config = span_for_date.outputs["range_config"].future()[0].value
    example_gen = _example_gen(input_format, data_root, input_patterns, spec.partition_feature,
                               tuple(hash_buckets), range_config)
    components.append(example_gen)
    statistics_gen = tfx.components.StatisticsGen(examples=example_gen.outputs["examples"])
    components.append(statistics_gen)
    if schema_path is None:
        schema_gen = tfx.components.SchemaGen(statistics=statistics_gen.outputs["statistics"],
                                              infer_feature_shape=True)
    else:
        schema_gen = tfx.components.ImportSchemaGen(schema_file=schema_path)
    components.append(schema_gen)
    example_validator = tfx.components.ExampleValidator(
        statistics=statistics_gen.outputs["statistics"], schema=schema_gen.outputs["schema"])
    components.append(example_validator)
    gate = ValidationGate(anomalies=example_validator.outputs["anomalies"],
                          schema=schema_gen.outputs["schema"],
                          examples=example_gen.outputs["examples"])
    components.append(gate)
    validated_schema = gate.outputs["validated_schema"]

    transform_examples = example_gen.outputs["examples"]
    if window_spans is not None:
        from drgrad.pipeline.daily import ValidatedSpanWindowStrategy

        window = tfx.dsl.Resolver(
            strategy_class=ValidatedSpanWindowStrategy,
            config={"num_spans": window_spans, "gate_type": gate.type},
            examples=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Examples,
                                     producer_component_id=example_gen.id),
        ).with_id(SPAN_WINDOW_RESOLVER)
        # The window must be read after today's gate has judged today's span.
        window.add_upstream_node(gate)
        components.append(window)
        transform_examples = window.outputs["examples"]
    if analyzer_cache is True:
        cache_resolver = tfx.dsl.Resolver(
            strategy_class=tfx.dsl.experimental.LatestArtifactStrategy,
            cache=tfx.dsl.Channel(type=tfx.types.standard_artifacts.TransformCache),
        ).with_id(ANALYZER_CACHE_RESOLVER)
        components.append(cache_resolver)
        analyzer_cache = cache_resolver.outputs["cache"]
    elif analyzer_cache is False:
        analyzer_cache = None

    transform = tfx.components.Transform(
        examples=transform_examples, schema=validated_schema,
        preprocessing_fn=preprocessing_fn, custom_config=transform_config,
        analyzer_cache=analyzer_cache,
        # StatisticsGen already profiled the raw data; skip Transform's own pre/post stats.
        disable_statistics=True)
    components.append(transform)
    if data_only:
        return _pipeline(pipeline_name, pipeline_root, components, enable_cache,
                         metadata_connection_config, beam_pipeline_args)

    model_resolver = tfx.dsl.Resolver(
        strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
        model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
        model_blessing=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing),
    ).with_id(MODEL_RESOLVER)
    components.append(model_resolver)

    trainer_component = tfx.components.Trainer(
        run_fn=run_fn,
        examples=transform.outputs["transformed_examples"],
        transform_graph=transform.outputs["transform_graph"],
        schema=validated_schema,
        base_model=model_resolver.outputs["model"] if warm_start else None,
        train_args=tfx.proto.TrainArgs(splits=["train"], num_steps=train_steps),
        eval_args=tfx.proto.EvalArgs(splits=["eval"], num_steps=eval_steps),
        custom_config=trainer_config)
    components.append(trainer_component)

    evaluator = tfx.components.Evaluator(
        examples=example_gen.outputs["examples"],
        model=trainer_component.outputs["model"],
        baseline_model=model_resolver.outputs["model"],
        eval_config=eval_config)
    components.append(evaluator)

    pusher = tfx.components.Pusher(
        custom_executor_spec=executor_spec.ExecutorClassSpec(pusher_executor.Executor),
        model=trainer_component.outputs["model"],
        model_blessing=evaluator.outputs["blessing"],
        push_destination=tfx.proto.PushDestination(
            filesystem=tfx.proto.PushDestination.Filesystem(
                base_directory=serving_model_dir)))
    components.append(pusher)

    return _pipeline(pipeline_name, pipeline_root, components, enable_cache,
                     metadata_connection_config, beam_pipeline_args)


def _pipeline(pipeline_name, pipeline_root, components, enable_cache,
              metadata_connection_config, beam_pipeline_args):
    from tfx import v1 as tfx

    return tfx.dsl.Pipeline(
        pipeline_name=pipeline_name,
        pipeline_root=pipeline_root,
        components=components,
        enable_cache=enable_cache,
        metadata_connection_config=metadata_connection_config,
        beam_pipeline_args=list(beam_pipeline_args if beam_pipeline_args is not None
                                else configs.beam_pipeline_args("direct")))


def component_ids(pipeline) -> Dict[str, Any]:
    """`{component id: component}` of a built pipeline (for tests and reports)."""
    return {component.id: component for component in pipeline.components}

"""`create_pipeline(config)`: the TFX DAG of the DRGrad recommender (TFX template `pipeline.py`
style), from one validated `pipeline_config.PipelineConfig`.

```
CsvExampleGen | ImportExampleGen  (span-{SPAN}/train/*, span-{SPAN}/eval/*)
  -> StatisticsGen -> ImportSchemaGen (curated data/schemas/<dataset>/schema.pbtxt)
                      | SchemaGen (first run, no curated schema yet)
  -> ExampleValidator -> ValidationGate (fails the run on any anomaly)
  -> Transform (pipeline.preprocessing.preprocessing_fn) -> Trainer (pipeline.trainer.run_fn)
  -> Resolver(LatestBlessedModelStrategy) -> Evaluator (AUC per task, floor + change vs baseline)
  -> Pusher (only when blessed: an atomic new version under <serving>/<model>/, pipeline.pusher)
```

Each stage is one function (`_ingest`, `_validate`, `_transform`, `_train`, `_evaluate`,
`_push`) returning its components in DAG order. Daily retraining (`pipeline.daily`)
plugs in through the config, without rewiring: `ingestion.run_date` adds `SpanForDate` in front
of ExampleGen (the day's span from the data manifest, a runtime parameter on Kubeflow / Vertex),
`transform.window_spans=N` puts a resolver of the newest N validated spans between ExampleGen
and Transform, `transform.analyzer_cache=True` feeds the latest Transform analyzer cache back
into Transform, and `training.warm_start=True` feeds the latest blessed model to the Trainer as
`base_model`.

```
SpanForDate(run_date) -> CsvExampleGen(range_config) -> ... -> ValidationGate
  validated-span-window-resolver(newest N validated spans) -> Transform(+ analyzer cache)
```
"""
from typing import Any, Dict, NamedTuple, Optional

from tfx import v1 as tfx
from tfx.components import FileBasedExampleGen
from tfx.dsl.components.base import executor_spec

from drgrad.pipeline import daily, trainer
from drgrad.pipeline import pusher as pusher_executor
from drgrad.pipeline.pipeline_config import PipelineConfig
from drgrad.pipeline.validation_gate import ValidationGate

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


def create_pipeline(config: PipelineConfig):
    """Builds the TFX pipeline (module docstring) described by a validated `PipelineConfig`.

    Returns:
      A `tfx.dsl.Pipeline`; with `config.runtime.data_only` it stops after Transform.
    """
    ingest = _ingest(config)
    validate = _validate(config, ingest.example_gen)
    transform = _transform(config, ingest.example_gen, validate.gate)
    stages = [ingest, validate, transform]
    if not config.runtime.data_only:
        train = _train(config, transform.transform, validate.gate)
        evaluate = _evaluate(config, ingest.example_gen, train)
        stages += [train, evaluate, _push(config, train.trainer, evaluate.evaluator)]
    components = [component for stage in stages for component in stage if component is not None]
    return tfx.dsl.Pipeline(
        pipeline_name=config.pipeline_name,
        pipeline_root=config.pipeline_root,
        components=components,
        enable_cache=config.runtime.enable_cache,
        metadata_connection_config=config.runtime.metadata_connection_config,
        beam_pipeline_args=list(config.runtime.beam_pipeline_args))


class _Ingest(NamedTuple):
    span_for_date: Optional[Any]  # only with a run date
    example_gen: Any


class _Validate(NamedTuple):
    statistics_gen: Any
    schema_gen: Any
    example_validator: Any
    gate: Any


class _Transform(NamedTuple):
    span_window: Optional[Any]  # only with a rolling window
    analyzer_cache_resolver: Optional[Any]  # only with analyzer_cache=True
    transform: Any


class _Train(NamedTuple):
    model_resolver: Any
    trainer: Any


class _Evaluate(NamedTuple):
    evaluator: Any


class _Push(NamedTuple):
    pusher: Any


def _ingest(config: PipelineConfig) -> _Ingest:
    """ExampleGen of the configured spans; with a run date, SpanForDate picks that day's span."""
    ingestion = config.ingestion
    span_for_date, range_config = None, ingestion.range_config
    if ingestion.run_date is not None:
        span_for_date = daily.SpanForDate(data_root=ingestion.data_root,
                                          run_date=ingestion.run_date).with_id(SPAN_FOR_DATE)
        range_config = span_for_date.outputs["range_config"].future()[0].value
    patterns = ingestion.input_patterns
    output_config = None
    if len(patterns) == 1:
        # One input folder: hash-split it, on the partition feature (e.g. the user id) when the
        # dataset has one so that a user's examples never straddle train and eval.
        split_config = tfx.proto.SplitConfig(
            splits=[tfx.proto.SplitConfig.Split(name=name, hash_buckets=buckets)
                    for name, buckets in zip(("train", "eval", "test"), ingestion.hash_buckets)])
        if config.spec.partition_feature:
            # Only when there is one: a set "" (a oneof member) names a feature "".
            split_config.partition_feature_name = config.spec.partition_feature
        output_config = tfx.proto.Output(split_config=split_config)
    input_config = tfx.proto.Input(splits=[tfx.proto.Input.Split(name=name, pattern=pattern)
                                           for name, pattern in patterns.items()])
    arguments = dict(input_base=ingestion.data_root, input_config=input_config,
                     output_config=output_config, range_config=range_config)
    if ingestion.input_format == "csv":
        # The CsvExampleGen node (same id, examples and splits), its files read and written in
        # C++ with every column's declared type (csv_example_gen); the executor decides at run
        # time, once the span is known, and runs TFX's CsvExampleGen where the files do not
        # have these types (an untyped column, a cell that does not parse).
        from drgrad.data.specs import get_dataset  # pylint: disable=g-import-not-at-top
        from drgrad.pipeline import csv_example_gen  # pylint: disable=g-import-not-at-top
        types = csv_example_gen.dataset_column_types(config.spec,
                                                     get_dataset(config.dataset).timestamp)
        example_gen = FileBasedExampleGen(
            custom_executor_spec=executor_spec.BeamExecutorSpec(csv_example_gen.Executor),
            custom_config=csv_example_gen.custom_config(types), **arguments).with_id(EXAMPLE_GEN)
    elif ingestion.input_format == "tfrecord":
        example_gen = tfx.components.ImportExampleGen(**arguments)
    else:  # FileBasedExampleGen with TFX's Parquet reading, zeros kept (parquet_example_gen)
        from drgrad.pipeline import parquet_example_gen  # pylint: disable=g-import-not-at-top
        example_gen = FileBasedExampleGen(
            custom_executor_spec=executor_spec.BeamExecutorSpec(parquet_example_gen.Executor),
            **arguments)
    return _Ingest(span_for_date, example_gen)


def _validate(config: PipelineConfig, example_gen) -> _Validate:
    """Statistics, the schema (curated or inferred), anomalies, and the gate failing on any."""
    statistics_gen = tfx.components.StatisticsGen(examples=example_gen.outputs["examples"])
    if config.schema_file is None:
        schema_gen = tfx.components.SchemaGen(statistics=statistics_gen.outputs["statistics"],
                                              infer_feature_shape=True)
    else:
        schema_gen = tfx.components.ImportSchemaGen(schema_file=config.schema_file)
    example_validator = tfx.components.ExampleValidator(
        statistics=statistics_gen.outputs["statistics"], schema=schema_gen.outputs["schema"])
    gate = ValidationGate(anomalies=example_validator.outputs["anomalies"],
                          schema=schema_gen.outputs["schema"],
                          examples=example_gen.outputs["examples"])
    return _Validate(statistics_gen, schema_gen, example_validator, gate)


def _transform(config: PipelineConfig, example_gen, gate) -> _Transform:
    """Transform of this run's span or of the window of validated spans, with the schema the
    gate passed on and, when configured, the previous analyzer cache."""
    options = config.transform
    span_window, examples = None, example_gen.outputs["examples"]
    if options.window_spans is not None:
        span_window = tfx.dsl.Resolver(
            strategy_class=daily.ValidatedSpanWindowStrategy,
            config={"num_spans": options.window_spans, "gate_type": gate.type},
            examples=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Examples,
                                     producer_component_id=example_gen.id),
        ).with_id(SPAN_WINDOW_RESOLVER)
        # The window must be read after today's gate has judged today's span.
        span_window.add_upstream_node(gate)
        examples = span_window.outputs["examples"]
    cache_resolver, analyzer_cache = None, options.analyzer_cache
    if analyzer_cache is True:
        cache_resolver = tfx.dsl.Resolver(
            strategy_class=tfx.dsl.experimental.LatestArtifactStrategy,
            cache=tfx.dsl.Channel(type=tfx.types.standard_artifacts.TransformCache),
        ).with_id(ANALYZER_CACHE_RESOLVER)
        analyzer_cache = cache_resolver.outputs["cache"]
    transform = tfx.components.Transform(
        examples=examples, schema=gate.outputs["validated_schema"],
        preprocessing_fn=options.preprocessing_fn, custom_config=config.transform_custom_config,
        analyzer_cache=analyzer_cache, materialize=options.materialize,
        # StatisticsGen already profiled the raw data; skip Transform's own pre/post stats.
        disable_statistics=True)
    return _Transform(span_window, cache_resolver, transform)


def _train(config: PipelineConfig, transform, gate) -> _Train:
    """The Trainer on Transform's output, warm-started from the latest blessed model when
    configured (that model is also the Evaluator's baseline)."""
    training = config.training
    model_resolver = tfx.dsl.Resolver(
        strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
        model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
        model_blessing=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing),
    ).with_id(MODEL_RESOLVER)
    # Without materialized examples the Trainer reads what Transform read and applies the
    # transform graph itself (trainer.run_fn).
    examples = (transform.outputs["transformed_examples"] if config.transform.materialize
                else transform.inputs["examples"])
    trainer_component = tfx.components.Trainer(
        run_fn=training.run_fn,
        examples=examples,
        transform_graph=transform.outputs["transform_graph"],
        schema=gate.outputs["validated_schema"],
        base_model=model_resolver.outputs["model"] if training.warm_start else None,
        train_args=tfx.proto.TrainArgs(splits=["train"], num_steps=training.train_steps),
        eval_args=tfx.proto.EvalArgs(splits=["eval"], num_steps=training.eval_steps),
        custom_config=trainer.trainer_config(config))
    return _Train(model_resolver, trainer_component)


def _evaluate(config: PipelineConfig, example_gen, train: _Train) -> _Evaluate:
    """The Evaluator: the new model on this run's eval split, against the blessed baseline."""
    return _Evaluate(tfx.components.Evaluator(
        examples=example_gen.outputs["examples"],
        model=train.trainer.outputs["model"],
        baseline_model=train.model_resolver.outputs["model"],
        eval_config=config.eval_config))


def _push(config: PipelineConfig, trainer_component, evaluator) -> _Push:
    """The Pusher: a new version under the serving directory, only when blessed."""
    return _Push(tfx.components.Pusher(
        custom_executor_spec=executor_spec.ExecutorClassSpec(pusher_executor.Executor),
        model=trainer_component.outputs["model"],
        model_blessing=evaluator.outputs["blessing"],
        push_destination=tfx.proto.PushDestination(
            filesystem=tfx.proto.PushDestination.Filesystem(
                base_directory=config.push.serving_model_dir))))


def component_ids(pipeline) -> Dict[str, Any]:
    """`{component id: component}` of a built pipeline (for tests and reports)."""
    return {component.id: component for component in pipeline.components}

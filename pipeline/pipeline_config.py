"""`PipelineConfig`: everything `create_pipeline` needs, validated once and frozen.

One pydantic model with a section per stage of the DAG, so each stage of `create_pipeline`
reads its own section:

```
PipelineConfig
  pipeline_name, pipeline_root, dataset     what the pipeline is, where TFX writes, which data
  ingestion   data_root, input_format, input_patterns, hash_buckets, range_config, run_date
  validation  schema_path, check_schema_path
  transform   preprocessing_fn, bucketize, num_oov_buckets, vocab_top_k, window_spans,
              analyzer_cache
  training    run_fn, backbone, strategy, backbone_args, strategy_args, task_weights,
              learning_rate, seed, epochs, batch_size, embedding_dim, train_steps, eval_steps,
              warm_start, distribute
  evaluation  min_auc, max_auc_drop, metrics
  push        serving_model_dir
  runtime     metadata_connection_config, beam_pipeline_args, enable_cache, data_only
```

Every option name is unique across the sections, so callers that hold flat options (the CLI,
`local_runner.build(**options)`, an Airflow DAG's `pipeline_args`) build a config with
`PipelineConfig.from_options(epochs=2, min_auc=0.7, ...)`. Any bad value or unknown name fails
at construction with a `pydantic.ValidationError` (a `ValueError`) naming the option; a missing
curated schema file raises `FileNotFoundError`. What the dataset implies (its spec, the Transform
`custom_config`, the Evaluator's `EvalConfig`, ...) is derived from the validated values once,
during validation, and cached on the config.
"""
import functools
import os
from typing import Annotated, Any, Dict, List, Literal, Optional, Tuple, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from drgrad.data.dataset_file import is_dataset_file
from drgrad.data.specs import get_dataset, get_spec
from drgrad.pipeline import configs, evaluation, preprocessing

DEFAULT_INPUT_PATTERNS = {"train": "span-{SPAN}/train/*", "eval": "span-{SPAN}/eval/*"}
# `validation.schema_path` value meaning "the dataset's committed curated schema, if any".
DEFAULT_SCHEMA = "default"
SCHEMAS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                           "data", "schemas")

# Strict: a bool or a numeric string is a mistake here, not a number.
PositiveInt = Annotated[int, Field(strict=True, ge=1)]
NonEmptyStr = Annotated[str, Field(strict=True, min_length=1)]
Thresholds = Union[float, Dict[str, float]]  # one value for every task, or {task: value}


def tf_io_exists(path: str) -> bool:
    """`os.path.isfile` that also reads gs:// and other `tf.io.gfile` URLs."""
    if "://" not in path:
        return os.path.isfile(path)
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    return tf.io.gfile.exists(path)


def default_schema_path(dataset: str) -> Optional[str]:
    """The committed curated schema of a dataset (by registry name), or None if absent."""
    path = os.path.join(SCHEMAS_DIR, dataset, "schema.pbtxt")
    return path if os.path.isfile(path) else None


class _Frozen(BaseModel):
    """Base of the config and its sections: immutable, unknown keys rejected."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class IngestionConfig(_Frozen):
    """ExampleGen: which files of which spans become Examples.

    Attributes:
      data_root: the dataset directory holding `span-<N>/{train,eval}/` (`input_base`).
      input_format: "csv" (CsvExampleGen), "tfrecord" (ImportExampleGen of tf.Examples) or
        "parquet" (FileBasedExampleGen with TFX's Parquet executor).
      input_patterns: `{split: pattern}` under `data_root`; a single entry is hash-split into
        train/eval(/test) by `hash_buckets` on the dataset's `partition_feature`.
      hash_buckets: (train, eval) or (train, eval, test) hash buckets of a single input
        pattern; a user's flat files take (8, 1, 1), the split the standalone trainer uses.
      range_config: `tfx.proto.RangeConfig` selecting spans (None: the latest span).
      run_date: `YYYY-MM-DD`, or a `RuntimeParameter` of type str ('' = newest span): ingest
        that day's span, looked up in `<data_root>/manifest.json` by `SpanForDate`.
        Exclusive with `range_config`.
    """

    data_root: NonEmptyStr
    input_format: Literal["csv", "tfrecord", "parquet"] = "csv"
    input_patterns: Annotated[Dict[str, NonEmptyStr], Field(min_length=1)] = Field(
        default_factory=lambda: dict(DEFAULT_INPUT_PATTERNS))
    hash_buckets: Annotated[Tuple[PositiveInt, ...], Field(min_length=2, max_length=3)] = (9, 1)
    range_config: Any = None
    run_date: Any = None

    @field_validator("input_patterns")
    @classmethod
    def _split_patterns_name_train_and_eval(cls, patterns):
        if len(patterns) > 1 and not {"train", "eval"} <= set(patterns):
            raise ValueError(f"input_patterns needs 'train' and 'eval' splits, got "
                             f"{sorted(patterns)}")
        return patterns

    @field_validator("run_date")
    @classmethod
    def _run_date_is_a_date(cls, run_date):
        if isinstance(run_date, str) and run_date:
            from drgrad.pipeline.daily import check_date  # imports TFX

            check_date(run_date)
        return run_date

    @model_validator(mode="after")
    def _one_span_selector(self):
        if self.run_date is not None and self.range_config is not None:
            raise ValueError("give run_date or range_config, not both")
        return self


class ValidationConfig(_Frozen):
    """StatisticsGen -> ImportSchemaGen | SchemaGen -> ExampleValidator -> ValidationGate.

    Attributes:
      schema_path: a curated schema file -> ImportSchemaGen; None -> SchemaGen (first run);
        `DEFAULT_SCHEMA` -> `data/schemas/<dataset>/schema.pbtxt` when committed, else SchemaGen.
      check_schema_path: fail now if the schema file is not here (False when compiling for a
        container that holds the file at that path).
    """

    schema_path: Optional[str] = DEFAULT_SCHEMA
    check_schema_path: bool = True


class TransformConfig(_Frozen):
    """Transform: its function, its options (`preprocessing.transform_config`, which checks
    them) and which spans it reads.

    Attributes:
      preprocessing_fn: dotted path of the Transform function.
      bucketize, num_oov_buckets, vocab_top_k, vocab_frequency_threshold:
        `preprocessing.transform_config` options.
      window_spans: read the newest N spans that passed the validation gate
        (`daily.ValidatedSpanWindowStrategy`); None = only this run's span.
      analyzer_cache: True = reuse the latest Transform analyzer cache of this pipeline
        (incremental analysis across days), None or False = none, or a channel of a
        `TransformCache`.
      materialize: True = Transform writes the transformed examples and the Trainer reads
        them; False = Transform writes only the transform graph and the Trainer applies it
        to the raw examples in its `tf.data` pipeline (no second pass over the data in
        Transform, the transform work once per epoch in the Trainer; docs/SCALING.md).
    """

    preprocessing_fn: NonEmptyStr = configs.PREPROCESSING_FN
    bucketize: Dict[str, int] = Field(default_factory=dict)
    num_oov_buckets: int = configs.DEFAULT_NUM_OOV_BUCKETS
    vocab_top_k: Optional[int] = None
    vocab_frequency_threshold: int = 0
    window_spans: Optional[PositiveInt] = None
    analyzer_cache: Any = None
    materialize: bool = True

    @field_validator("analyzer_cache")
    @classmethod
    def _no_cache_is_none(cls, analyzer_cache):
        return None if analyzer_cache is False else analyzer_cache


class TrainingConfig(_Frozen):
    """Trainer: the model (`model.build_model`), how long it trains and what it starts from.

    Attributes:
      run_fn: dotted path of the Trainer function.
      backbone, strategy, backbone_args, strategy_args, task_weights, learning_rate, seed:
        the model (`model.build_model`).
      epochs, batch_size: training passes and batch size (passes count when `train_steps` is
        None).
      embedding_dim: embedding width per categorical column.
      train_steps, eval_steps: TrainArgs / EvalArgs `num_steps` (None = by epochs / the whole
        eval split).
      warm_start: give the Trainer the latest blessed model as `base_model`.
      distribute: the tf.distribute strategy the Trainer trains under
        (`drgrad.training.distribution`): none | mirrored | multi_worker.
    """

    run_fn: NonEmptyStr = configs.RUN_FN
    backbone: NonEmptyStr = "split_mmoe"
    strategy: NonEmptyStr = "drgrad"
    backbone_args: Dict[str, Any] = Field(default_factory=dict)
    strategy_args: Dict[str, Any] = Field(default_factory=dict)
    task_weights: Optional[Dict[str, float]] = None
    learning_rate: Annotated[float, Field(gt=0)] = 1e-3
    seed: Optional[int] = 0
    epochs: PositiveInt = configs.DEFAULT_EPOCHS
    batch_size: PositiveInt = configs.DEFAULT_BATCH_SIZE
    embedding_dim: PositiveInt = 8
    train_steps: Optional[PositiveInt] = None
    eval_steps: Optional[PositiveInt] = configs.DEFAULT_EVAL_STEPS
    warm_start: bool = False
    distribute: Literal["none", "mirrored", "multi_worker"] = "none"


class EvaluationConfig(_Frozen):
    """Evaluator thresholds (`evaluation.make_eval_config`, which checks them).

    Attributes:
      min_auc: every task's AUC floor.
      max_auc_drop: largest tolerated AUC drop vs the blessed baseline.
      metrics: TFMA metrics per task (AUC always; `evaluation.OPTIONAL_METRICS` add
        BinaryCrossentropy, MeanPrediction, MeanLabel, Calibration at about one AUC's cost
        each).
    """

    min_auc: Thresholds = configs.DEFAULT_MIN_AUC
    max_auc_drop: Thresholds = configs.DEFAULT_MAX_AUC_DROP
    metrics: Tuple[str, ...] = evaluation.DEFAULT_METRICS


class PushConfig(_Frozen):
    """Pusher.

    Attributes:
      serving_model_dir: the filesystem destination, `<serving>/<model name>`; every push adds a
        numbered version directory under it.
    """

    serving_model_dir: NonEmptyStr


class RuntimeConfig(_Frozen):
    """How the pipeline runs.

    Attributes:
      metadata_connection_config: MLMD connection (None on Kubeflow / Vertex).
      beam_pipeline_args: Beam arguments (`configs.beam_pipeline_args(...)`; default the
        in-memory DirectRunner).
      enable_cache: reuse outputs of executions whose inputs did not change.
      data_only: stop after Transform (ingestion, validation and preprocessing only; used by
        bench/pipeline_throughput.py).
    """

    metadata_connection_config: Any = None
    beam_pipeline_args: List[str] = Field(
        default_factory=lambda: configs.beam_pipeline_args("direct"))
    enable_cache: bool = False
    data_only: bool = False


class PipelineConfig(_Frozen):
    """The whole pipeline's configuration (module docstring).

    Attributes:
      pipeline_name: matches `[a-z0-9][a-z0-9-]*` (Kubeflow Pipelines v2 rejects others).
      pipeline_root: where TFX writes artifacts (local path or gs://).
      dataset: a built-in dataset's name (an alias is replaced by the name) or the path of a
        dataset file (`drgrad.data.dataset_file`; made absolute).
      ingestion, validation, transform, training, evaluation, push, runtime: the sections.
    """

    pipeline_name: str
    pipeline_root: NonEmptyStr
    dataset: str
    ingestion: IngestionConfig
    validation: ValidationConfig = Field(default_factory=ValidationConfig)
    transform: TransformConfig = Field(default_factory=TransformConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    push: PushConfig
    runtime: RuntimeConfig = Field(default_factory=RuntimeConfig)

    @classmethod
    def from_options(cls, **options: Any) -> "PipelineConfig":
        """A config from flat options (`data_root=..., epochs=2, min_auc=0.7`): each option goes
        to the section that declares it; a name no section declares is an unknown key."""
        fields: Dict[str, Any] = {}
        for name, value in options.items():
            section = _SECTION_OF_OPTION.get(name)
            if section is None:
                fields[name] = value
            else:
                fields.setdefault(section, {})[name] = value
        return cls(**fields)

    @field_validator("pipeline_name")
    @classmethod
    def _kfp_pipeline_name(cls, name):
        return configs.check_pipeline_name(name)

    @field_validator("dataset")
    @classmethod
    def _registered_dataset(cls, dataset):
        if is_dataset_file(dataset):
            get_dataset(dataset)  # validates the file now
            return dataset if "://" in dataset else os.path.abspath(dataset)
        return get_spec(dataset).name

    @model_validator(mode="after")
    def _consistent_with_the_dataset(self):
        if (self.validation.check_schema_path and self.schema_file is not None
                and not os.path.isfile(self.schema_file)):
            raise FileNotFoundError(f"schema file not found: {self.schema_file}")
        unknown = sorted(set(self.personalization) - set(self.spec.categorical))
        if unknown:
            raise ValueError(f"personalization columns must be categorical: {unknown}")
        if self.training.task_weights is not None:
            extra = sorted(set(self.training.task_weights) - set(self.spec.tasks))
            if extra:
                raise ValueError(f"task_weights names unknown tasks: {extra}")
        # Built now, once: their builders check the transform and evaluation sections.
        _ = self.transform_custom_config, self.eval_config
        return self

    @functools.cached_property
    def spec(self):
        """The dataset's `data.specs.DatasetSpec`."""
        return get_spec(self.dataset)

    @functools.cached_property
    def schema_file(self) -> Optional[str]:
        """The curated schema ImportSchemaGen reads, or None for SchemaGen."""
        if self.validation.schema_path == DEFAULT_SCHEMA:
            if is_dataset_file(self.dataset):  # the user's schema.pbtxt beside the file, if any
                from drgrad.data.check import schema_path  # pylint: disable=g-import-not-at-top
                beside = schema_path(self.dataset)
                return beside if tf_io_exists(beside) else None
            return default_schema_path(self.dataset)
        return self.validation.schema_path

    @functools.cached_property
    def transform_custom_config(self) -> Dict[str, Any]:
        """The Transform `custom_config` (`preprocessing.transform_config`)."""
        return preprocessing.transform_config(
            self.spec, bucketize=self.transform.bucketize,
            num_oov_buckets=self.transform.num_oov_buckets,
            vocab_top_k=self.transform.vocab_top_k,
            vocab_frequency_threshold=self.transform.vocab_frequency_threshold,
            cacheable_vocabularies=self.transform.analyzer_cache is not None)

    @functools.cached_property
    def eval_config(self):
        """The Evaluator's `tfma.EvalConfig` (`evaluation.make_eval_config`)."""
        return evaluation.make_eval_config(self.spec.tasks, min_auc=self.evaluation.min_auc,
                                           max_auc_drop=self.evaluation.max_auc_drop,
                                           metrics=self.evaluation.metrics)

    @functools.cached_property
    def personalization(self) -> List[str]:
        """Categorical columns feeding the model's personalization path (PPNet), sorted."""
        return sorted({column for columns in self.spec.personalization.values()
                       for column in columns})

    @property
    def model_name(self) -> str:
        """The served model's name: the last component of `push.serving_model_dir`."""
        return os.path.basename(self.push.serving_model_dir.rstrip("/"))


# {option name: the section declaring it}, for `PipelineConfig.from_options`.
_SECTION_OF_OPTION = {option: section
                      for section, field in PipelineConfig.model_fields.items()
                      if isinstance(field.annotation, type)
                      and issubclass(field.annotation, _Frozen)
                      for option in field.annotation.model_fields}

"""Daily retraining pieces of the pipeline: date -> span, and the rolling span window.

* `SpanForDate` is a small TFX component that reads the dataset's `manifest.json` (written by
  `drgrad data split-days`: span number -> date) and emits the ExampleGen `RangeConfig` of one
  day as a `String` artifact, which ExampleGen takes through a placeholder (the pattern of
  TFX's `penguin_pipeline_local.py`). Because the date is a component parameter, it can be a
  `RuntimeParameter` (`run_date` on Kubeflow / Vertex); an empty date selects the newest span
  of the manifest, which is what a scheduled run that carries no date wants.
* `ValidatedSpanWindowStrategy` is the resolver of the rolling window that Transform and the
  Trainer read: the newest `num_spans` spans **among those the validation gate accepted**. A
  span whose gate execution failed keeps its `Examples` artifact LIVE in ML Metadata (TFX never
  retracts a published artifact), so the stock `SpanRangeStrategy` would train on it the next
  day; this strategy looks up, in MLMD, which `ValidationGate` executions consumed each
  artifact and keeps only artifacts with a successful (COMPLETE or CACHED) one. When a day was
  ingested twice (a re-run without cache) the newest artifact of that span wins, so no day is
  counted twice.
"""
import datetime
import os
from typing import Dict, List, Optional

from tfx import v1 as tfx
from tfx import types
from tfx.dsl.components.common import resolver

import ml_metadata as mlmd

from drgrad.pipeline import json_files

MANIFEST_NAME = "manifest.json"  # data.datasets.MANIFEST_NAME (kept import-light here)
SPAN_PROPERTY = "span"
VERSION_PROPERTY = "version"
_ACCEPTED_STATES = (mlmd.proto.Execution.COMPLETE, mlmd.proto.Execution.CACHED)


def check_date(text: str) -> str:
    """`text` if it is an ISO date `YYYY-MM-DD`; ValueError otherwise."""
    try:
        datetime.date.fromisoformat(text)
    except (TypeError, ValueError):
        raise ValueError(f"expected a date YYYY-MM-DD, got {text!r}") from None
    return text


def read_manifest(data_root: str) -> Dict:
    """The `manifest.json` of a span folder (local path or gs://)."""
    import tensorflow as tf

    path = os.path.join(data_root, MANIFEST_NAME)
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(f"{path} not found: daily runs need the span -> date manifest "
                                "that `drgrad data split-days` writes")
    return json_files.read_json(path)


def dated_spans(data_root: str) -> Dict[str, int]:
    """`{date: span number}` of the manifest, in date order."""
    spans = read_manifest(data_root).get("spans", {})
    dated = {entry["date"]: int(number) for number, entry in spans.items() if entry.get("date")}
    if not dated:
        raise ValueError(f"the manifest in {data_root} has no dated spans; build the data with "
                         "`drgrad data split-days`")
    return dict(sorted(dated.items()))


def span_for_date(data_root: str, run_date: str = "") -> int:
    """The span number of `run_date` in the manifest; the newest span when `run_date` is ''."""
    dated = dated_spans(data_root)
    if not run_date:
        return max(dated.values())
    check_date(run_date)
    if run_date not in dated:
        dates = list(dated)
        raise ValueError(f"no span for {run_date} in {data_root}; the manifest covers "
                         f"{dates[0]} .. {dates[-1]} ({len(dates)} days)")
    return dated[run_date]


def range_config_json(span: int) -> str:
    """The JSON of a single-span `RangeConfig` (what ExampleGen accepts)."""
    from tfx.utils import proto_utils

    return proto_utils.proto_to_json(tfx.proto.RangeConfig(
        static_range=tfx.proto.StaticRange(start_span_number=span, end_span_number=span)))


@tfx.dsl.components.component
def SpanForDate(  # pylint: disable=invalid-name
        data_root: tfx.dsl.components.Parameter[str],
        run_date: tfx.dsl.components.Parameter[str],
        range_config: tfx.dsl.components.OutputArtifact[tfx.types.standard_artifacts.String]):
    """Emits the ExampleGen RangeConfig of `run_date`'s span (module docstring).

    Args:
      data_root: the folder holding `span-<N>/` and `manifest.json`.
      run_date: `YYYY-MM-DD`, or '' for the newest span of the manifest.
      range_config: output; its `value` is the RangeConfig JSON, its `span` custom property the
        span number.
    """
    span = span_for_date(data_root, run_date)
    range_config.value = range_config_json(span)
    range_config.set_int_custom_property(SPAN_PROPERTY, span)


def _int_property(artifact: types.Artifact, name: str) -> int:
    # ExampleGen writes span/version as int custom properties (older releases: strings).
    text = artifact.get_string_custom_property(name)
    return int(text) if text else artifact.get_int_custom_property(name)


def accepted_artifact_ids(store, artifact_ids, gate_type: str) -> set:
    """Ids among `artifact_ids` consumed by a COMPLETE or CACHED execution of `gate_type`."""
    if not artifact_ids:
        return set()
    consumers: Dict[int, List[int]] = {}
    for event in store.get_events_by_artifact_ids(list(artifact_ids)):
        if event.type == mlmd.proto.Event.INPUT:
            consumers.setdefault(event.execution_id, []).append(event.artifact_id)
    if not consumers:
        return set()
    try:
        gate_type_id = store.get_execution_type(gate_type).id
    except mlmd.errors.NotFoundError:
        return set()
    accepted = set()
    for execution in store.get_executions_by_id(list(consumers)):
        if execution.type_id == gate_type_id and execution.last_known_state in _ACCEPTED_STATES:
            accepted.update(consumers[execution.id])
    return accepted


def select_window(artifacts: List[types.Artifact], num_spans: int) -> List[types.Artifact]:
    """The newest artifact of each of the newest `num_spans` spans, oldest span first."""
    newest: Dict[int, types.Artifact] = {}
    for artifact in artifacts:
        if not artifact.has_custom_property(SPAN_PROPERTY):
            raise RuntimeError(f"Examples artifact {artifact.id} has no span property")
        span = _int_property(artifact, SPAN_PROPERTY)
        key = (_int_property(artifact, VERSION_PROPERTY)
               if artifact.has_custom_property(VERSION_PROPERTY) else 0, artifact.id)
        current = newest.get(span)
        if current is None or key > current[0]:
            newest[span] = (key, artifact)
    spans = sorted(newest)[-num_spans:]
    return [newest[span][1] for span in spans]


class ValidatedSpanWindowStrategy(resolver.ResolverStrategy):
    """The newest `num_spans` spans that passed the validation gate (module docstring).

    Use through `tfx.dsl.Resolver(strategy_class=ValidatedSpanWindowStrategy,
    config={"num_spans": N, "gate_type": <gate type name>},
    examples=tfx.dsl.Channel(type=Examples, producer_component_id=example_gen.id))`, consumed by
    a component that runs after the gate (Transform reads the gate's validated schema).
    """

    def __init__(self, num_spans: int, gate_type: str):
        if isinstance(num_spans, bool) or not isinstance(num_spans, int) or num_spans < 1:
            raise ValueError(f"num_spans must be an int >= 1, got {num_spans!r}")
        if not isinstance(gate_type, str) or not gate_type:
            raise ValueError(f"gate_type must name an execution type, got {gate_type!r}")
        self._num_spans = num_spans
        self._gate_type = gate_type

    def resolve_artifacts(self, store: mlmd.MetadataStore,
                          input_dict: Dict[str, List[types.Artifact]]
                          ) -> Optional[Dict[str, List[types.Artifact]]]:
        result = {}
        for key, artifacts in input_dict.items():
            accepted = accepted_artifact_ids(store, [a.id for a in artifacts], self._gate_type)
            window = select_window([a for a in artifacts if a.id in accepted], self._num_spans)
            if not window:
                return None  # nothing validated yet: the consumer does not run
            result[key] = window
        return result

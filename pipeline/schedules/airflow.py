"""Airflow: a DAG file that builds the pipeline and hands it to TFX's `AirflowDagRunner`.

Airflow does not install beside TFX 1.16's pins in this repository's environment, so the file is
generated from `templates/airflow_dag.py.tmpl` and checked here by parsing (`ast`) and against a
golden file; docs/SCHEDULING.md says how to install it on the Airflow side.

`AirflowDagRunner` passes `airflow_dag_config` to `airflow.models.DAG(dag_id=<pipeline name>,
...)`: `schedule_interval` (5-field cron; the name every Airflow 2.x release accepts),
`start_date` (a `pendulum` date in the schedule's zone, so 02:00 stays local time across
daylight-saving changes), `catchup=False` and `max_active_runs=1`.
"""
import dataclasses
import datetime
import json
import os
import re
import string
from typing import Any, Mapping

from drgrad.pipeline.schedules import cronexpr

TEMPLATE_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "templates",
                             "airflow_dag.py.tmpl")


@dataclasses.dataclass(frozen=True)
class AirflowDag:
    """The values of one generated DAG file.

    Attributes:
      pipeline_name: TFX pipeline name, also the Airflow `dag_id`.
      dataset: dataset registry name (`data.specs.get_spec`).
      data_root: absolute directory with `span-<N>/` folders, as the Airflow workers see it.
      run_root: absolute directory for the pipeline root, MLMD and the serving models.
      schedule: 5-field cron.
      timezone: IANA zone of `schedule`.
      start_date: first day the DAG may run.
      pipeline_args: extra `create_pipeline` keyword arguments (JSON-serializable values).
      max_active_runs: DAG runs allowed at once.
      retries: Airflow retries per task.
    """
    pipeline_name: str
    dataset: str
    data_root: str
    run_root: str
    schedule: str
    timezone: str = "UTC"
    start_date: datetime.date = datetime.date(2024, 1, 1)
    pipeline_args: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    max_active_runs: int = 1
    retries: int = 0

    def __post_init__(self):
        from drgrad.pipeline import configs

        configs.check_pipeline_name(self.pipeline_name)
        cronexpr.parse(self.schedule, cronexpr.UNIX)
        cronexpr.check_timezone(self.timezone)
        if not isinstance(self.dataset, str) or not re.fullmatch(r"[A-Za-z0-9_.-]+", self.dataset):
            raise ValueError(f"dataset must be a registry name, got {self.dataset!r}")
        for name in ("data_root", "run_root"):
            value = getattr(self, name)
            if not isinstance(value, str) or not (os.path.isabs(value) or "://" in value):
                raise ValueError(f"{name} must be an absolute path (the scheduler's working "
                                 f"directory is not this one), got {value!r}")
        if not isinstance(self.start_date, datetime.date):
            raise ValueError(f"start_date must be a datetime.date, got {self.start_date!r}")
        for name in ("max_active_runs", "retries"):
            value = getattr(self, name)
            low = 1 if name == "max_active_runs" else 0
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
        reserved = {"pipeline_name", "metadata_connection_config"} & set(self.pipeline_args)
        if reserved:
            raise ValueError(f"pipeline_args may not set {sorted(reserved)}")
        try:
            json.dumps(dict(self.pipeline_args))
        except TypeError as error:
            raise ValueError(f"pipeline_args must be JSON-serializable: {error}") from error

    def render(self) -> str:
        """The DAG file's source text."""
        with open(TEMPLATE_PATH) as handle:
            template = string.Template(handle.read())
        hour_minute = ""
        schedule = cronexpr.parse(self.schedule)
        if len(schedule.hours) == 1 and len(schedule.minutes) == 1:
            (hour,), (minute,) = schedule.hours, schedule.minutes
            hour_minute = f" at {hour:02d}:{minute:02d}"
        return template.substitute(
            pipeline_name=self.pipeline_name,
            pipeline_name_literal=_py(self.pipeline_name),
            dataset_literal=_py(self.dataset),
            data_root_literal=_py(self.data_root),
            run_root_literal=_py(self.run_root),
            pipeline_args_literal=_literal(dict(self.pipeline_args)),
            schedule_literal=_py(self.schedule),
            schedule_comment=f"{self.schedule}{hour_minute} {self.timezone}".replace("  ", " "),
            start_year=self.start_date.year, start_month=self.start_date.month,
            start_day=self.start_date.day, timezone_literal=_py(self.timezone),
            max_active_runs=self.max_active_runs, retries=self.retries)

    def filename(self) -> str:
        return f"{self.pipeline_name.replace('-', '_')}_dag.py"


def write(dag: AirflowDag, out_dir: str) -> str:
    """Writes the DAG file into `out_dir` (atomically); returns its path."""
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, dag.filename())
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w") as handle:
        handle.write(dag.render())
    os.replace(tmp, path)
    return path


def _literal(value: Mapping[str, Any]) -> str:
    """A Python literal for a JSON-like dict (sorted keys; True/False/None, not JSON's)."""
    if not value:
        return "{}"
    items = ", ".join(f"{_py(key)}: {_py(item)}" for key, item in sorted(value.items()))
    return "{" + items + "}"


def _py(value: Any) -> str:
    if isinstance(value, dict):
        return _literal(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_py(item) for item in value) + "]"
    if isinstance(value, str):
        return json.dumps(value)  # a valid Python literal, in the file's double quotes
    return repr(value)

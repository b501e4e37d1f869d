"""Vertex AI Pipelines: a daily schedule, `aiplatform.PipelineJob(...).create_schedule(...)`.

Vertex takes a **5-field unix cron** with the time zone as a prefix, ``TZ=Europe/Berlin 0 2 * * *``
(the aiplatform docstring: "TZ=${IANA_TIME_ZONE}" or "CRON_TZ=${IANA_TIME_ZONE}"), so, unlike KFP,
02:00 stays 02:00 local time across daylight-saving changes. `max_concurrent_run_count=1` keeps runs
from overlapping; `allow_queueing=False` drops (rather than queues) a start while one is running.

The template is the `pipeline.json` PipelineJob that `compile_pipeline("vertex", ...)` writes (a
KFP `pipeline.yaml` works too). Parameters must be declared by the template (`package`).
"""
import dataclasses
from typing import Any, Dict, Mapping, Optional

from drgrad.pipeline.schedules import cronexpr, package


@dataclasses.dataclass(frozen=True)
class VertexSchedule:
    """One `PipelineJob(...)` plus its `create_schedule(...)` call.

    Attributes:
      template_path: compiled `pipeline.json` (or KFP `pipeline.yaml`).
      display_name: the schedule's (and each run's) display name.
      cron: 5-field unix cron with a ``TZ=<zone>`` prefix.
      project, location: Google Cloud project and region (e.g. ``europe-west4``).
      pipeline_root: gs:// root for artifacts (None: the template's default).
      params: run-time parameters; each must be declared by the template.
      max_concurrent_run_count: runs allowed at once (1: never overlap).
      allow_queueing: queue a due run while `max_concurrent_run_count` are running.
      max_run_count: stop after this many runs (None: never).
      start_time, end_time: optional RFC3339 bounds of the schedule.
      service_account: the runs' service account (needs act-as permission).
      enable_caching: overrides the template's caching (None keeps it).
      labels: labels of every run.
    """
    template_path: str
    display_name: str
    cron: str
    project: str
    location: str
    pipeline_root: Optional[str] = None
    params: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    max_concurrent_run_count: int = 1
    allow_queueing: bool = False
    max_run_count: Optional[int] = None
    start_time: Optional[str] = None
    end_time: Optional[str] = None
    service_account: Optional[str] = None
    enable_caching: Optional[bool] = None
    labels: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        schedule = cronexpr.parse(self.cron, cronexpr.UNIX, allow_timezone=True)
        if schedule.timezone is None:
            raise ValueError(f"Vertex cron {self.cron!r} needs a time-zone prefix, e.g. "
                             f"'TZ=UTC {schedule.expression}' (without one Vertex uses UTC "
                             "silently)")
        for name in ("display_name", "project", "location"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"{name} must be a non-empty string, got {value!r}")
        if len(self.display_name) > 128:
            raise ValueError(f"display_name must be at most 128 characters (Vertex's limit), "
                             f"got {len(self.display_name)}")
        if self.pipeline_root is not None and not self.pipeline_root.startswith("gs://"):
            raise ValueError(f"pipeline_root must be a gs:// path, got {self.pipeline_root!r}")
        for name in ("max_concurrent_run_count", "max_run_count"):
            value = getattr(self, name)
            if value is None and name == "max_run_count":
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        spec = package.read_pipeline_spec(self.template_path, package.VERTEX_SUFFIXES)
        package.check_params(self.params, spec, self.template_path)

    def job_kwargs(self) -> Dict[str, Any]:
        """Keyword arguments of `aiplatform.PipelineJob`."""
        return dict(display_name=self.display_name, template_path=self.template_path,
                    pipeline_root=self.pipeline_root, parameter_values=dict(self.params),
                    enable_caching=self.enable_caching, labels=dict(self.labels) or None,
                    project=self.project, location=self.location)

    def schedule_kwargs(self) -> Dict[str, Any]:
        """Keyword arguments of `PipelineJob.create_schedule`."""
        return dict(cron=self.cron, display_name=self.display_name,
                    start_time=self.start_time, end_time=self.end_time,
                    allow_queueing=self.allow_queueing, max_run_count=self.max_run_count,
                    max_concurrent_run_count=self.max_concurrent_run_count,
                    service_account=self.service_account)

    def plan(self) -> Dict[str, Any]:
        """What `submit` would do, as JSON-ready data (for `--dry-run`)."""
        return {"target": "vertex", "pipeline_job": self.job_kwargs(),
                "create_schedule": self.schedule_kwargs()}


def submit(schedule: VertexSchedule, credentials=None):
    """Creates the schedule; returns the `aiplatform.PipelineJobSchedule`."""
    from google.cloud import aiplatform

    job = aiplatform.PipelineJob(credentials=credentials, **schedule.job_kwargs())
    return job.create_schedule(**schedule.schedule_kwargs())

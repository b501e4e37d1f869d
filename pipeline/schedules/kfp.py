"""Kubeflow Pipelines: a daily recurring run, `kfp.Client().create_recurring_run(...)`.

KFP evaluates the cron with robfig/cron, **6 fields with seconds first** (``0 0 2 * * *`` is
02:00:00), in the scheduled-workflow controller's time zone (`CRON_SCHEDULE_TIMEZONE` of the KFP
install, UTC by default): a recurring run has no time-zone field of its own.

`no_catchup=True`: after a pause or an outage KFP starts one run for the latest missed time, not
one per missed day. The pipeline reads the newest span at run time, so catch-up runs would all
train on the same day; replay past days with `drgrad pipeline backfill` instead.
`max_concurrency=1`: a run that is still going when the next one is due delays it.

The run date reaches the pipeline as the run-time parameter `RUN_DATE_PARAMETER` when the
compiled package declares it (see docs/SCHEDULING.md for which placeholder each KFP version
expands); a package without it trains on the newest span present when the run starts.
"""
import dataclasses
from typing import Any, Dict, Mapping, Optional

from drgrad.pipeline.kubeflow_v2_runner import RUN_DATE_PARAMETER
from drgrad.pipeline.schedules import cronexpr, package

DEFAULT_EXPERIMENT = "drgrad-daily"


@dataclasses.dataclass(frozen=True)
class KfpRecurringRun:
    """The arguments of one `kfp.Client.create_recurring_run` call.

    Attributes:
      package_path: compiled `pipeline.yaml` (KFP rejects a `.json` PipelineJob).
      job_name: the recurring run's display name.
      cron: 6-field cron, seconds first (`cronexpr.SECONDS`).
      experiment: experiment name (created if missing).
      description: free text shown in the KFP UI.
      params: run-time parameters; each must be declared by the package.
      max_concurrency: runs allowed at once (1: never overlap).
      no_catchup: start only the latest missed run after downtime.
      enabled: create the schedule enabled.
      start_time, end_time: optional RFC3339 bounds of the schedule.
      pipeline_root: overrides the package's pipeline root.
      enable_caching: overrides the compile-time caching options (None keeps them).
      service_account: Kubernetes service account of the runs.
      namespace: KFP namespace (multi-user installs).
    """
    package_path: str
    job_name: str
    cron: str
    experiment: str = DEFAULT_EXPERIMENT
    description: str = ""
    params: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    max_concurrency: int = 1
    no_catchup: bool = True
    enabled: bool = True
    start_time: Optional[str] = None
    end_time: Optional[str] = None
    pipeline_root: Optional[str] = None
    enable_caching: Optional[bool] = None
    service_account: Optional[str] = None
    namespace: Optional[str] = None

    def __post_init__(self):
        cronexpr.parse(self.cron, cronexpr.SECONDS)
        for name in ("job_name", "experiment"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"{name} must be a non-empty string, got {value!r}")
        if isinstance(self.max_concurrency, bool) or not isinstance(self.max_concurrency, int) \
                or not 1 <= self.max_concurrency <= 10:
            raise ValueError(f"max_concurrency must be an int in [1, 10] (KFP's limit), got "
                             f"{self.max_concurrency!r}")
        spec = package.read_pipeline_spec(self.package_path, package.KFP_SUFFIXES)
        package.check_params(self.params, spec, self.package_path)

    def declares_run_date(self) -> bool:
        spec = package.read_pipeline_spec(self.package_path, package.KFP_SUFFIXES)
        return RUN_DATE_PARAMETER in package.declared_parameters(spec)

    def call_kwargs(self, experiment_id: str) -> Dict[str, Any]:
        """Keyword arguments of `kfp.Client.create_recurring_run`."""
        return dict(
            experiment_id=experiment_id, job_name=self.job_name, description=self.description,
            start_time=self.start_time, end_time=self.end_time, cron_expression=self.cron,
            max_concurrency=self.max_concurrency, no_catchup=self.no_catchup,
            params=dict(self.params), pipeline_package_path=self.package_path,
            enabled=self.enabled, pipeline_root=self.pipeline_root,
            enable_caching=self.enable_caching, service_account=self.service_account)

    def plan(self) -> Dict[str, Any]:
        """What `submit` would do, as JSON-ready data (for `--dry-run`)."""
        return {"target": "kfp",
                "create_experiment": {"name": self.experiment, "namespace": self.namespace},
                "create_recurring_run": self.call_kwargs("<experiment id>")}


def submit(run: KfpRecurringRun, client=None, host: Optional[str] = None, **client_kwargs):
    """Creates the experiment if needed and the recurring run; returns KFP's
    `V2beta1RecurringRun`.

    Args:
      run: the recurring run.
      client: a `kfp.Client` (default: `kfp.Client(host=host, namespace=..., **client_kwargs)`).
      host: the KFP API endpoint, e.g. ``http://localhost:8080``.
    """
    if client is None:
        import kfp
        if run.namespace:
            client_kwargs.setdefault("namespace", run.namespace)
        client = kfp.Client(host=host, **client_kwargs)
    experiment = client.create_experiment(name=run.experiment, namespace=run.namespace)
    return client.create_recurring_run(**run.call_kwargs(experiment.experiment_id))

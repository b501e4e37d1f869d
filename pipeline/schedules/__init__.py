"""Daily-retraining schedules for the DRGrad TFX pipeline (docs/SCHEDULING.md).

One module per scheduler, each building the call or the file that scheduler's own client takes:

* `pipeline.schedules.kfp`: a Kubeflow Pipelines recurring run,
  `kfp.Client().create_recurring_run(...)`, 6-field cron with seconds, `no_catchup=True`.
* `pipeline.schedules.vertex`: a Vertex AI Pipelines schedule,
  `aiplatform.PipelineJob(...).create_schedule(cron="TZ=<zone> m h * * *")`.
* `pipeline.schedules.airflow`: an Airflow DAG file built by TFX's `AirflowDagRunner`.
* `pipeline.schedules.cron`: a crontab entry and the locking wrapper `drgrad-daily.sh`.

`pipeline.schedules.cronexpr` parses and checks the cron dialects they share. Nothing here imports
TensorFlow, TFX, kfp or aiplatform at import time; each target imports its client when it calls it.
"""
import os as _os

_os.environ["TF_USE_LEGACY_KERAS"] = "1"

TARGETS = ("kfp", "vertex", "airflow", "cron")

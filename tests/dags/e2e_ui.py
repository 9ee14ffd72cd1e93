"""Test-only DAGs for the "Tencent CI" UI plugin (tests/plugins and tests/deployment/test_ui_plugin.py).

Needs: the CI emulator behind ``tencent_ci_default`` with images at ``ui/deer.jpg``,
``ui/cat.png`` and ``ui/batch/<n>.png`` (n < 3); ``ui/missing.jpg`` must not exist, so one job
fails with a Code and Message (its retry fails the same way).
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import dag, task

from airflow_provider_ci.operators.batch import CloudInfiniteBatchPicProcessOperator
from airflow_provider_ci.operators.pic_process import CloudInfinitePicProcessOperator
from airflow_provider_ci.sensors.job import CloudInfiniteJobSensor

RULE = "imageMogr2/rotate/90/thumbnail/!50p/format/webp"
FAST = {"poll_interval": 0.5}
BATCH_ITEMS = [
    *({"input_object": f"ui/batch/{n}.png", "output_object": f"ui/batch/out/{n}.jpg"} for n in range(3)),
    {"input_object": "ui/missing.jpg", "output_object": "ui/batch/out/missing.jpg"},
]


@task
def no_ci_job() -> str:
    return "this task runs no CI job"


#: One retry, only for the upstream deferral race the deployment suite tolerates (see e2e_deployment.py).
RETRIES = {"retries": 1, "retry_delay": timedelta(seconds=1)}


@dag(schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False, tags=["test"],
     default_args=RETRIES)  # fmt: skip
def e2e_ui_jobs():
    """A job that succeeds and its sensor, a job that fails, a batch with one failure, a task with no job."""
    ok = CloudInfinitePicProcessOperator(
        task_id="process", input_object="ui/deer.jpg", output_object="ui/out/deer.webp", process_rule=RULE,
        is_pic_info=True, **FAST,
    )  # fmt: skip
    CloudInfiniteJobSensor(task_id="watch", job_id="{{ ti.xcom_pull(task_ids='process', key='job_id') }}",
                           poke_interval=0.5) << ok  # fmt: skip
    CloudInfinitePicProcessOperator(
        task_id="fails", input_object="ui/missing.jpg", output_object="ui/out/missing.webp", process_rule=RULE, **FAST
    )
    CloudInfiniteBatchPicProcessOperator(
        task_id="batch", items=BATCH_ITEMS, process_rule="imageMogr2/thumbnail/32x32/format/jpg", allow_failures=1,
        is_pic_info=True, **FAST,
    )  # fmt: skip
    no_ci_job()


@dag(schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False, tags=["test"],
     default_args=RETRIES)  # fmt: skip
def e2e_ui_other():
    """A second DAG, for DAG-level access (a user may read this one and not the other), and a mapped task."""
    CloudInfinitePicProcessOperator(
        task_id="process", input_object="ui/cat.png", output_object="ui/out/cat.jpg",
        process_rule="imageMogr2/format/jpg", **FAST,
    )  # fmt: skip
    mapped = CloudInfinitePicProcessOperator.partial(task_id="mapped", process_rule="imageMogr2/format/jpg", **FAST)
    mapped.expand_kwargs([{"input_object": "ui/cat.png", "output_object": f"ui/out/cat-{n}.jpg"} for n in range(2)])


e2e_ui_jobs()
e2e_ui_other()

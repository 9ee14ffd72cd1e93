"""Reliability matrix DAGs: N PicProcess jobs per run, through each way of waiting, for the fault matrix.

Needs: a ``tencent_ci_default`` connection to the CI emulator (``tests/reliability`` sets it
up and injects the faults) whose bucket holds ``<prefix><i>.png`` for ``i`` in ``0..jobs-1``
(the DAG params ``prefix`` and ``jobs``). Test-only: these are not examples to copy.

One DAG per way of waiting, built by one factory so they differ only in that:

* ``reliability_operator``: the operator submits and polls on the worker;
* ``reliability_operator_deferrable``: the operator submits and waits in the triggerer;
* ``reliability_sensor_deferrable``: the operator only submits, and a deferrable sensor waits
  for the job id it returned;
* ``reliability_sensor_poke``: the same with the sensor in poke mode, polling on the worker.

Each job is its own mapped task instance (one per input object), with no retries, so every
task instance's final state is exactly the outcome of its one job.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import DAG, Param, task

from airflow_provider_ci.operators.pic_process import CloudInfinitePicProcessOperator
from airflow_provider_ci.sensors.job import CloudInfiniteJobSensor

#: dag_id -> how it waits: a sensor after a submit-only operator, or the operator itself; deferrable or not.
DAGS = {
    "reliability_operator": {"sensor": False, "deferrable": False},
    "reliability_operator_deferrable": {"sensor": False, "deferrable": True},
    "reliability_sensor_deferrable": {"sensor": True, "deferrable": True},
    "reliability_sensor_poke": {"sensor": True, "deferrable": False},
}
RULE = "imageMogr2/thumbnail/16x16/format/webp"
WAIT_TIMEOUT = timedelta(minutes=5)


def job_id_of(detail: dict[str, Any]) -> str:
    """The JobId of a submitted job's JobsDetail (what the operator returns)."""
    return detail["JobId"]


@task
def plan(params: dict[str, Any] | None = None) -> list[dict[str, str]]:
    """One operator kwargs dict per input object: ``<prefix><i>.png`` to ``<prefix><i>.webp``."""
    prefix, jobs = (params or {})["prefix"], int((params or {})["jobs"])
    return [{"input_object": f"{prefix}{i}.png", "output_object": f"{prefix}{i}.webp"} for i in range(jobs)]


def reliability_dag(dag_id: str, *, sensor: bool, deferrable: bool) -> DAG:
    """plan -> one mapped operator per input (-> one mapped sensor per submitted job)."""
    with DAG(
        dag_id,
        schedule=None,
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=False,
        tags=["reliability", "tencent-ci"],
        params={
            "prefix": Param("reliability/input/", type="string", description="input objects' key prefix"),
            "jobs": Param(3, type="integer", minimum=1, description="how many jobs (mapped task instances)"),
        },
        default_args={"retries": 0},
    ) as dag:
        submit = CloudInfinitePicProcessOperator.partial(
            task_id="submit" if sensor else "process",
            process_rule=RULE,
            wait_for_completion=not sensor,
            deferrable=deferrable,
            timeout=WAIT_TIMEOUT,
        ).expand_kwargs(plan())
        if sensor:
            CloudInfiniteJobSensor.partial(
                task_id="wait",
                deferrable=deferrable,
                mode="poke",  # when not deferrable: the worker slot is held while it polls
                timeout=WAIT_TIMEOUT.total_seconds(),
            ).expand(job_id=submit.output.map(job_id_of))
    return dag


for _dag_id, _how in DAGS.items():
    globals()[_dag_id] = reliability_dag(_dag_id, **_how)

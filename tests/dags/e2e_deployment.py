"""Test-only DAGs for the real-process suite (``tests/deployment``): jobs to crash around.

Needs: the CI emulator behind ``tencent_ci_default`` with PNG images at ``<prefix><n>.png``
for n below ``count``. Retries are 1 because of the upstream deferral race (see the suite);
the suite fails any retry that race does not explain.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Param, dag, task

from airflow_provider_ci.operators.pic_process import CloudInfinitePicProcessOperator

RULE = "imageMogr2/thumbnail/!50p/format/webp"
RETRIES = {"retries": 1, "retry_delay": timedelta(seconds=1)}
PARAMS = {"prefix": Param("e2e/", type="string"), "count": Param(1, type="integer", minimum=1)}


@task
def images(params: dict | None = None) -> list[dict[str, str]]:
    prefix, count = (params or {})["prefix"], (params or {})["count"]
    return [{"input_object": f"{prefix}{n}.png", "output_object": f"{prefix}out/{n}.webp"} for n in range(count)]


@dag(schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False, params=PARAMS)
def e2e_deferred_jobs():
    """``count`` jobs, each awaited by a deferred task in the triggerer."""
    CloudInfinitePicProcessOperator.partial(
        task_id="process", process_rule=RULE, deferrable=True, poll_interval=1, **RETRIES
    ).expand_kwargs(images())


@dag(schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False, params=PARAMS)
def e2e_worker_jobs():
    """``count`` jobs, each awaited on a worker (not deferrable), polling every half second."""
    CloudInfinitePicProcessOperator.partial(
        task_id="process", process_rule=RULE, deferrable=False, poll_interval=0.5, **RETRIES
    ).expand_kwargs(images())


e2e_deferred_jobs()
e2e_worker_jobs()

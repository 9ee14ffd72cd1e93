"""B6's DAG: N tasks that wait for a CI job in the triggerer from their very start.

Each task starts straight in the triggerer (``start_from_trigger``) on the provider's own
``CloudInfiniteJobTrigger``, exactly the trigger the deferrable operator defers on: the
triggerer's load is the same, but 300+ deferrals need no 300 worker starts on a 2-core machine.
The job ids come from the JSON file named by ``B6_JOB_IDS`` (written by bench/b6_triggerer.py).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from airflow.providers.common.compat.sdk import BaseOperator
from airflow.sdk import DAG
from airflow.triggers.base import StartTriggerArgs

DAG_ID = "bench_b6_deferred_waits"


class WaitForCiJob(BaseOperator):
    """Waits for ``job_id`` in the triggerer from the start (no worker until it resumes)."""

    start_from_trigger = True

    def __init__(self, *, job_id: str, poll_interval: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.start_trigger_args = StartTriggerArgs(
            trigger_cls="airflow_provider_ci.triggers.job.CloudInfiniteJobTrigger",
            trigger_kwargs={"job_id": job_id, "poll_interval": poll_interval},
            next_method="execute_complete",
            next_kwargs=None,
            timeout=None,
        )

    def execute_complete(self, context: Any, event: dict[str, Any] | None = None) -> Any:
        return event


_ids_file = os.environ.get("B6_JOB_IDS")
if _ids_file and Path(_ids_file).exists():
    with DAG(DAG_ID, schedule=None, catchup=False, max_active_tasks=100_000) as dag:
        interval = float(os.environ.get("B6_POLL_INTERVAL", "5"))
        for index, job_id in enumerate(json.loads(Path(_ids_file).read_text())):
            WaitForCiJob(task_id=f"wait_{index}", job_id=job_id, poll_interval=interval)

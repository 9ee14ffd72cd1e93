"""B6's DAG: N deferred operator tasks, each waiting for a CI job in the triggerer.

One mapped ``CloudInfiniteJobSensor(deferrable=True)`` over the job ids in the JSON file named
by ``B6_JOB_IDS`` (written by bench/b6_triggerer.py): each task starts on a worker, looks at its
job once, finds it waiting (the emulator's queue is paused) and defers on the provider's
``CloudInfiniteJobTrigger``, exactly as users' sensor and operator tasks do.

(An earlier version started the tasks straight in the triggerer with ``start_from_trigger`` to
spare 300 worker starts. Airflow then ships the whole serialized DAG in every trigger's
workload and deserializes it per trigger: with one DAG of 300 tasks that is quadratic work,
and it alone blocked the triggerer's loop for seconds at start-up.)
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from airflow.sdk import DAG

from airflow_provider_ci.sensors.job import CloudInfiniteJobSensor

DAG_ID = "bench_b6_deferred_waits"

_ids_file = os.environ.get("B6_JOB_IDS")
if _ids_file and Path(_ids_file).exists():
    with DAG(DAG_ID, schedule=None, catchup=False, max_active_tasks=100_000) as dag:
        CloudInfiniteJobSensor.partial(
            task_id="wait",
            deferrable=True,
            poke_interval=float(os.environ.get("B6_POLL_INTERVAL", "5")),
            timeout=3600,
        ).expand(job_id=json.loads(Path(_ids_file).read_text()))

"""Which CI jobs belong to which task instance, so that a retry reattaches instead of billing again.

Each submit of an operator carries its task instance's identity in ``UserData``: a hash of
(dag, task, run, map index), the same for every try, then the batch item's index if any, then
the try number: ``airflow-ti:<hash>:try2`` or ``airflow-ti:<hash>:i17:try2``. A retry lists
the jobs created since its run began and takes, per item, the newest one of its own that has
not failed. Jobs of other task instances never match: their hash differs.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow_provider_ci.states import FAILURE_STATES, JobState

if TYPE_CHECKING:
    from airflow.sdk import Context

IDENTITY_PREFIX = "airflow-ti:"
#: How far before its DAG run started a task instance's jobs are looked for (clock skew).
LOOKBACK = timedelta(minutes=10)


def task_identity(context: Context) -> str:
    """``airflow-ti:<hash>:`` naming this task instance (all tries), for UserData."""
    ti = context["ti"]
    raw = f"{ti.dag_id}\n{ti.task_id}\n{ti.run_id}\n{getattr(ti, 'map_index', -1)}"
    return f"{IDENTITY_PREFIX}{hashlib.sha256(raw.encode()).hexdigest()[:32]}:"


def user_data(context: Context, item: int | None = None) -> str:
    """The UserData of this try's submit (of batch item ``item``)."""
    part = "" if item is None else f"i{item}:"
    return f"{task_identity(context)}{part}try{context['ti'].try_number}"


def jobs_since(context: Context) -> datetime | None:
    """Where a retry starts looking for its earlier jobs: a little before its DAG run began."""
    started = getattr(context.get("dag_run"), "start_date", None)
    return None if started is None else started - LOOKBACK


def own_jobs(context: Context, listed: Iterable[dict[str, Any]]) -> dict[int | None, dict[str, Any]]:
    """This task instance's newest job per item (None: a single-job task) that has not failed."""
    mine = re.compile(rf"^{re.escape(task_identity(context))}(?:i(\d+):)?try\d+$")
    newest: dict[int | None, dict[str, Any]] = {}
    for job in listed:
        match = mine.match(str((job.get("Operation") or {}).get("UserData") or ""))
        if not match or JobState.parse(job.get("State")) in FAILURE_STATES:
            continue
        item = None if match.group(1) is None else int(match.group(1))
        if item not in newest or str(job.get("CreationTime")) > str(newest[item].get("CreationTime")):
            newest[item] = job
    return newest

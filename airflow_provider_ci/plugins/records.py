"""What a task instance recorded about its CI jobs, read from the metadata DB (never written).

Sources, by task:

* ``CloudInfinitePicProcessOperator``: XCom ``job_id`` (pushed right after submitting, so a
  failed task has it too), ``ci_job_link`` (bucket, region) and ``return_value`` (the final
  JobsDetail on success); its rendered fields give the keys, rule and connection id.
* ``CloudInfiniteJobSensor``: its rendered ``job_id`` field and ``return_value`` on success.
* ``CloudInfiniteBatchPicProcessOperator``: XCom ``jobs`` (one entry per item: input, output,
  job id, state at submit) and ``return_value`` (the summary: counts and every failure).

Only job ids and object keys found here belong to the task instance; the views and the
thumbnail route serve nothing else.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

#: XCom keys the provider's tasks push.
XCOM_KEYS = ("job_id", "return_value", "jobs", "ci_job_link")
WAITING_STATES = frozenset({"Submitted", "Running", "Pause"})
DEFAULT_CONN_ID = "tencent_ci_default"
#: Parsed batch job lists kept per XCom row (a 10,000-item list is ~1.5 MB of JSON).
_CACHE_SIZE = 8


class NoSuchTaskInstance(LookupError):
    """The path names no task instance."""


@dataclass(frozen=True)
class RecordedJob:
    """One job as the task recorded it; live state is merged in by the views."""

    job_id: str | None
    input_object: str | None = None
    output_object: str | None = None
    state: str | None = None
    code: str | None = None
    message: str | None = None
    index: int = 0


@dataclass
class TaskRecord:
    """A task instance and everything it recorded about its CI jobs."""

    dag_id: str
    run_id: str
    task_id: str
    map_index: int
    operator: str | None
    ti_state: str | None
    start_date: datetime | None
    end_date: datetime | None
    conn_id: str = DEFAULT_CONN_ID
    bucket: str | None = None
    region: str | None = None
    output_bucket: str | None = None
    output_region: str | None = None
    process_rule: str | None = None
    template_id: str | None = None
    batch: bool = False
    jobs: list[RecordedJob] = field(default_factory=list)
    #: The final JobsDetail of a single job (operator or sensor return value), if any.
    detail: dict[str, Any] | None = None
    #: The batch operator's summary (its return value), if the task got that far.
    summary: dict[str, Any] | None = None
    _by_id: dict[str, RecordedJob] | None = None

    def job(self, job_id: str) -> RecordedJob | None:
        """The recorded job with this id, or None when it is not one of this task instance's."""
        if self._by_id is None:
            self._by_id = {job.job_id: job for job in self.jobs if job.job_id}
        return self._by_id.get(job_id)


def _value(raw: Any) -> Any:
    """An XCom value as stored: JSON text on some versions and paths, a JSON column value on others."""
    if isinstance(raw, str):
        try:
            return json.loads(raw)
        except ValueError:
            return raw
    return raw


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


_batch_cache: OrderedDict[tuple[Any, ...], list[RecordedJob]] = OrderedDict()
_cache_lock = threading.Lock()


def _cached(cache_key: tuple[Any, ...]) -> list[RecordedJob] | None:
    """A batch's parsed items if this very XCom row (same timestamp) was read before."""
    with _cache_lock:
        if cache_key in _batch_cache:
            _batch_cache.move_to_end(cache_key)
            return _batch_cache[cache_key]
    return None


def _parse_batch(cache_key: tuple[Any, ...], raw: Any) -> list[RecordedJob]:
    items = _value(raw)
    jobs = [
        RecordedJob(
            job_id=_text(item.get("job_id")),
            input_object=_text(item.get("input_object")),
            output_object=_text(item.get("output_object")),
            state=_text(item.get("state")),
            code=_text(item.get("code")),
            message=_text(item.get("message")),
            index=index,
        )
        for index, item in enumerate(items if isinstance(items, list) else [])
        if isinstance(item, dict)
    ]
    with _cache_lock:
        _batch_cache[cache_key] = jobs
        while len(_batch_cache) > _CACHE_SIZE:
            _batch_cache.popitem(last=False)
    return jobs


def _with_summary(jobs: list[RecordedJob], summary: dict[str, Any] | None) -> list[RecordedJob]:
    """Final states from the batch summary: its failures, and Success for the rest once nothing waits."""
    if not isinstance(summary, dict) or not isinstance(summary.get("by_state"), dict):
        return jobs
    failures = {f["job_id"]: f for f in summary.get("failures") or [] if isinstance(f, dict) and f.get("job_id")}
    settled = not (set(summary["by_state"]) & WAITING_STATES)
    merged = []
    for job in jobs:
        failure = failures.get(job.job_id)
        if failure is not None:
            job = replace(job, state=failure.get("state"), code=failure.get("code"), message=failure.get("message"))
        elif settled and job.job_id:
            job = replace(job, state="Success")
        merged.append(job)
    return merged


def load(dag_id: str, run_id: str, task_id: str, map_index: int) -> TaskRecord:
    """The task instance's record; raises :class:`NoSuchTaskInstance` when there is none.

    A record with no jobs is a task that ran no CI job (or has not submitted one yet).

    :param dag_id: the DAG id.
    :param run_id: the DAG run id.
    :param task_id: the task id.
    :param map_index: the map index, -1 for a task that is not mapped.
    :return: the task instance, its recorded jobs and the settings its rendered fields name.
    """
    from airflow.models.renderedtifields import RenderedTaskInstanceFields as Rtif
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        ti = session.execute(
            select(TaskInstance.operator, TaskInstance.state, TaskInstance.start_date, TaskInstance.end_date).where(
                TaskInstance.dag_id == dag_id,
                TaskInstance.run_id == run_id,
                TaskInstance.task_id == task_id,
                TaskInstance.map_index == map_index,
            )
        ).first()
        if ti is None:
            raise NoSuchTaskInstance(f"no task instance {dag_id}/{run_id}/{task_id}[{map_index}]")
        of_ti = (
            XComModel.dag_id == dag_id,
            XComModel.run_id == run_id,
            XComModel.task_id == task_id,
            XComModel.map_index == map_index,
        )
        listed = select(XComModel.key, XComModel.timestamp).where(*of_ti, XComModel.key.in_(XCOM_KEYS))
        stamps: dict[str, Any] = {key: stamp for key, stamp in session.execute(listed)}
        jobs_key = (dag_id, run_id, task_id, map_index, str(stamps.get("jobs")))
        cached = _cached(jobs_key) if "jobs" in stamps else None
        wanted = [key for key in stamps if not (key == "jobs" and cached is not None)]  # a batch list is read once
        read = select(XComModel.key, XComModel.value).where(*of_ti, XComModel.key.in_(wanted))
        values: dict[str, Any] = {key: value for key, value in session.execute(read)}
        rendered = session.scalar(
            select(Rtif.rendered_fields).where(
                Rtif.dag_id == dag_id, Rtif.run_id == run_id, Rtif.task_id == task_id, Rtif.map_index == map_index
            )
        )
    fields = _value(rendered) if rendered else {}
    fields = fields if isinstance(fields, dict) else {}
    record = TaskRecord(
        dag_id=dag_id,
        run_id=run_id,
        task_id=task_id,
        map_index=map_index,
        operator=ti.operator,
        ti_state=None if ti.state is None else str(getattr(ti.state, "value", ti.state)),
        start_date=ti.start_date,
        end_date=ti.end_date,
        conn_id=_text(fields.get("tencent_ci_conn_id")) or DEFAULT_CONN_ID,
        bucket=_text(fields.get("bucket")),
        region=_text(fields.get("region")),
        output_bucket=_text(fields.get("output_bucket")),
        output_region=_text(fields.get("output_region")),
        process_rule=_text(fields.get("process_rule")),
        template_id=_text(fields.get("template_id")),
    )
    result = _value(values["return_value"]) if "return_value" in values else None
    if "jobs" in stamps:
        record.batch = True
        record.summary = result if isinstance(result, dict) and "by_state" in result else None
        jobs = cached if cached is not None else _parse_batch(jobs_key, values.get("jobs"))
        record.jobs = _with_summary(jobs, record.summary)
        return record
    link = _value(values["ci_job_link"]) if "ci_job_link" in values else None
    if isinstance(link, dict):
        record.bucket = _text(link.get("bucket")) or record.bucket
        record.region = _text(link.get("region")) or record.region
    detail = result if isinstance(result, dict) and _text(result.get("JobId")) else None
    job_id = _text(_value(values["job_id"])) if "job_id" in values else None
    job_id = job_id or (detail or {}).get("JobId") or _text(fields.get("job_id"))
    if job_id is None or not job_id.isalnum():
        return record
    record.detail = detail if detail and detail.get("JobId") == job_id else None
    record.jobs = [
        RecordedJob(
            job_id=job_id,
            input_object=_text(fields.get("input_object")),
            output_object=_text(fields.get("output_object")),
            state=(record.detail or {}).get("State"),
        )
    ]
    return record

"""The data behind the "Tencent CI" tab and its JSON twin: the record plus live job state.

Live state costs at most ``ceil(rows shown / poll_batch_size)`` coalesced ``GET /jobs/<ids>``
per page view (one for a single job, none when the task recorded its final JobsDetail). Counts
and progress of a batch come from what the task recorded (its final summary once it has one)
overlaid with the live states of the rows shown; nothing is written anywhere.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from airflow_provider_ci.exceptions import CloudInfiniteError, CloudInfiniteJobNotFoundError
from airflow_provider_ci.hooks.ci import CloudInfiniteHook
from airflow_provider_ci.links.job import console_url
from airflow_provider_ci.model import output_info
from airflow_provider_ci.plugins.records import WAITING_STATES, RecordedJob, TaskRecord
from airflow_provider_ci.transport import RetryPolicy

log = logging.getLogger(__name__)

PER_PAGE = 50
MAX_PER_PAGE = 200
#: A page view must not hang on a struggling CI: short timeouts, one retry.
UI_TIMEOUT = (3.0, 10.0)
UI_RETRY = RetryPolicy(max_attempts=2, base_delay=0.2, max_delay=0.5, max_elapsed=5.0)

#: (job id, key) -> the thumbnail path for that object of that job.
PreviewUrl = Callable[[str, str], str]


def ui_hook(conn_id: str) -> CloudInfiniteHook:
    """A hook for page views: the task's own connection, bounded waits."""
    return CloudInfiniteHook(conn_id, timeout=UI_TIMEOUT, retry=UI_RETRY)


@dataclass
class Live:
    """Live JobsDetail by job id, how many requests it took, and why it is partial (if it is)."""

    details: dict[str, dict[str, Any]]
    requests: int = 0
    error: str | None = None


def fetch_live(hook: CloudInfiniteHook, record: TaskRecord, job_ids: Sequence[str]) -> Live:
    """JobsDetail of ``job_ids`` in coalesced requests of the connection's ``poll_batch_size``.

    :param hook: a hook on the task's connection.
    :param record: the task instance's record (bucket and region of its jobs).
    :param job_ids: the jobs to look up.
    :return: what CI answered, the number of requests, and why it is partial if it is (never raises).
    """
    live = Live({})
    ids = list(dict.fromkeys(i for i in job_ids if i))
    if not ids:
        return live
    try:
        size = hook.settings().poll_batch_size
    except Exception as exc:  # a missing or invalid connection: show what was recorded
        live.error = f"live state unavailable: connection {record.conn_id!r}: {type(exc).__name__}"
        log.warning("Tencent CI view: connection %r unusable: %s", record.conn_id, exc)
        return live
    for start in range(0, len(ids), size):
        live.requests += 1
        try:
            live.details.update(hook.get_jobs(ids[start : start + size], bucket=record.bucket, region=record.region))
        except CloudInfiniteJobNotFoundError as exc:
            live.details.update(exc.found)
            live.error = f"CI no longer knows {len(exc.job_ids)} job(s); showing what the task recorded"
        except CloudInfiniteError as exc:  # its message carries Code, Message, request id; never a secret
            live.error = f"live state unavailable: {exc}"
            log.warning("Tencent CI view: %s", exc)
            break
    return live


def _buckets(record: TaskRecord, detail: dict[str, Any], default_bucket: str | None) -> tuple[str | None, ...]:
    """(input bucket, input region, output bucket, output region) of a job: its JobsDetail first."""
    source = detail.get("Input") or {}
    target = (detail.get("Operation") or {}).get("Output") or {}
    in_bucket = source.get("BucketId") or record.bucket or default_bucket
    in_region = source.get("Region") or record.region
    out_bucket = target.get("Bucket") or record.output_bucket or in_bucket
    out_region = target.get("Region") or record.output_region or in_region
    return in_bucket, in_region, out_bucket, out_region


def job_view(job: RecordedJob, detail: dict[str, Any] | None, preview_url: PreviewUrl) -> dict[str, Any]:
    """A job as the JSON twin returns it: the JobsDetail plus the two preview URLs.

    Without a live or recorded JobsDetail (CI forgot the job, or the lookup failed), the
    recorded fields are given in JobsDetail form.
    """
    if detail is None:
        detail = {
            "JobId": job.job_id,
            "State": job.state,
            "Code": job.code,
            "Message": job.message,
            "Input": {"Object": job.input_object} if job.input_object else {},
            "Operation": {"Output": {"Object": job.output_object}} if job.output_object else {},
        }
    input_key = (detail.get("Input") or {}).get("Object") or job.input_object
    output_key = ((detail.get("Operation") or {}).get("Output") or {}).get("Object") or job.output_object
    success = detail.get("State") == "Success"
    return {
        **detail,
        "input_preview_url": preview_url(job.job_id, input_key) if job.job_id and input_key else None,
        "output_preview_url": preview_url(job.job_id, output_key) if job.job_id and output_key and success else None,
    }


def object_location(
    record: TaskRecord, job: RecordedJob, key: str, detail: dict[str, Any] | None, default_bucket: str | None
) -> tuple[str | None, str | None] | None:
    """(bucket, region) of ``key`` if it is this job's input or output key; None otherwise."""
    detail = detail or {}
    in_bucket, in_region, out_bucket, out_region = _buckets(record, detail, default_bucket)
    inputs = {job.input_object, (detail.get("Input") or {}).get("Object")} - {None}
    outputs = {job.output_object, ((detail.get("Operation") or {}).get("Output") or {}).get("Object")} - {None}
    if key in inputs:
        return in_bucket, in_region
    if key in outputs:
        return out_bucket, out_region
    return None


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    if start is None:
        return None
    end = end or datetime.now(UTC)
    return max((end - start).total_seconds(), 0.0)


def progress(counts: Counter[str], total: int, elapsed: float | None, running: bool) -> dict[str, Any]:
    """done/total, rate (jobs/s over the task's run time so far) and the time left at that rate."""
    waiting = sum(counts[state] for state in WAITING_STATES) + counts["None"]
    done = total - waiting
    rate = done / elapsed if elapsed and done else None
    left = (total - done) / rate if rate and running and done < total else (0.0 if done == total else None)
    return {
        "done": done,
        "total": total,
        "percent": round(100.0 * done / total, 1) if total else 100.0,
        "rate_per_s": None if rate is None else round(rate, 2),
        "elapsed_s": None if elapsed is None else round(elapsed, 1),
        "time_left_s": None if left is None else round(left, 1),
    }


def _task(record: TaskRecord) -> dict[str, Any]:
    return {
        "dag_id": record.dag_id,
        "run_id": record.run_id,
        "task_id": record.task_id,
        "map_index": record.map_index,
        "operator": record.operator,
        "state": record.ti_state,
        "start_date": None if record.start_date is None else record.start_date.isoformat(),
        "end_date": None if record.end_date is None else record.end_date.isoformat(),
        "process_rule": record.process_rule,
        "template_id": record.template_id,
    }


def single(record: TaskRecord, preview_url: PreviewUrl, hook: CloudInfiniteHook | None = None) -> dict[str, Any]:
    """One job: the recorded final JobsDetail, else one live lookup.

    :param record: the task instance's record (exactly one job).
    :param preview_url: makes the thumbnail path of a job's object.
    :param hook: the hook to ask CI with (default: one on the task's connection).
    :return: ``{"jobs": [JobsDetail + preview URLs], "summary": {...}}``.
    """
    (job,) = record.jobs
    live = Live({})
    detail = record.detail
    if detail is None or detail.get("State") in WAITING_STATES:
        live = fetch_live(hook or ui_hook(record.conn_id), record, [str(job.job_id)])
        detail = live.details.get(str(job.job_id), detail)
    view = job_view(job, detail, preview_url)
    operation = view.get("Operation") or {}
    source = view.get("Input") or {}
    bucket, region = source.get("BucketId") or record.bucket, source.get("Region") or record.region
    summary = {
        **_task(record),
        "kind": "single",
        "total": 1,
        "by_state": {str(view.get("State")): 1},
        "live_requests": live.requests,
        "live_error": live.error,
        "process_rule": (operation.get("PicProcess") or {}).get("ProcessRule") or record.process_rule,
        "template_id": operation.get("TemplateId") or record.template_id,
        "template_name": operation.get("TemplateName"),
        "result": output_info(view),
        "original": ((operation.get("PicProcessResult") or {}).get("OriginalInfo") or {}).get("ImageInfo"),
        "console_url": console_url(bucket, region) if bucket and region else None,
    }
    return {"jobs": [view], "summary": summary}


def page_numbers(page: int, per_page: int, matched: int) -> dict[str, int]:
    """The page asked for, clamped to the pages that exist, and the paging fields of the summary."""
    pages = max(1, math.ceil(matched / per_page))
    return {"page": min(max(page, 1), pages), "per_page": per_page, "pages": pages, "matched": matched}


def batch(
    record: TaskRecord,
    preview_url: PreviewUrl,
    *,
    page: int = 1,
    per_page: int = PER_PAGE,
    state: str | None = None,
    query: str | None = None,
    hook: CloudInfiniteHook | None = None,
) -> dict[str, Any]:
    """One page of a batch: live state for the rows shown only; counts over every item.

    :param record: the task instance's record (a batch).
    :param preview_url: makes the thumbnail path of a job's object.
    :param page: the page, from 1 (clamped to the pages that exist).
    :param per_page: rows a page, 1 to :data:`MAX_PER_PAGE`.
    :param state: only items in this (recorded) state.
    :param query: only items whose input key contains this, or whose job id is this.
    :param hook: the hook to ask CI with (default: one on the task's connection).
    :return: ``{"jobs": [...], "summary": {...}}`` with counts, progress and paging in the summary.
    """
    per_page = min(max(per_page, 1), MAX_PER_PAGE)
    jobs = record.jobs
    matched = jobs
    if state:
        matched = [job for job in matched if str(job.state) == state]
    if query:
        needle = query.lower()
        matched = [job for job in matched if needle in (job.input_object or "").lower() or needle == job.job_id]
    paging = page_numbers(page, per_page, len(matched))
    start = (paging["page"] - 1) * per_page
    rows = matched[start : start + per_page]
    live = fetch_live(hook or ui_hook(record.conn_id), record, [str(job.job_id) for job in rows if job.job_id])
    views = [job_view(job, live.details.get(str(job.job_id)), preview_url) for job in rows]
    counts = Counter(str(job.state) for job in jobs)
    for job, view in zip(rows, views, strict=True):  # the rows shown, as they are now
        if view.get("State") != job.state:
            counts[str(job.state)] -= 1
            counts[str(view.get("State"))] += 1
    running = record.ti_state in ("running", "deferred", "queued", "scheduled", "up_for_retry")
    summary = {
        **_task(record),
        "kind": "batch",
        "total": len(jobs),
        "by_state": {key: value for key, value in sorted(counts.items()) if value},
        "final": record.summary is not None,
        "progress": progress(counts, len(jobs), _seconds(record.start_date, record.end_date), running),
        "filter": {"state": state, "q": query},
        **paging,
        "live_requests": live.requests,
        "live_error": live.error,
    }
    return {"jobs": views, "summary": summary}

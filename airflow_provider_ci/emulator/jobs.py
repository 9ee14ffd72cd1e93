"""PicProcess jobs: the record of each job, its ``JobsDetail`` rendering, and the job index.

Everything here runs on the server's event loop thread, so there is no locking. Lookups by id
are a dict hit and each job caches its rendered ``<JobsDetail>`` until its next change, which
keeps ``GET /jobs/<id>`` cheap under many concurrent pollers.
"""

from __future__ import annotations

import itertools
import uuid
from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from .xmlio import element, format_time

SUBMITTED, RUNNING, SUCCESS, FAILED, PAUSE, CANCEL = "Submitted", "Running", "Success", "Failed", "Pause", "Cancel"
STATES = (SUBMITTED, RUNNING, SUCCESS, FAILED, PAUSE, CANCEL)
#: States of a job no worker has taken yet; only these can be cancelled.
WAITING = frozenset({SUBMITTED, PAUSE})
TAG = "PicProcess"


@dataclass(frozen=True)
class JobSpec:
    """A validated ``POST /jobs`` request: what to do, plus what to echo back."""

    input_object: str
    output_region: str
    output_bucket: str
    output_object: str
    rule: str
    is_pic_info: bool
    template_id: str | None = None
    template_name: str | None = None
    #: ``(IsPicInfo, ProcessRule)`` as sent in ``Operation/PicProcess``, echoed when present.
    pic_process: tuple[str, str] | None = None
    user_data: str = ""
    job_level: int = 0


@dataclass(eq=False)
class Job:
    job_id: str
    seq: int
    bucket: str
    region: str
    queue_id: str
    spec: JobSpec
    created: float
    state: str = SUBMITTED
    started: float | None = None
    ended: float | None = None
    code: str = "Success"
    message: str = ""
    result: dict[str, Any] | None = None
    #: ``(code, message)`` of a ``job_failed`` fault: the job fails instead of running.
    forced_failure: tuple[str, str] | None = None
    xml: str | None = field(default=None, repr=False)

    def detail(self) -> dict[str, Any]:
        """The ``JobsDetail`` tree, element order as in the service's samples."""
        spec = self.spec
        operation: dict[str, Any] = {
            "Output": {"Bucket": spec.output_bucket, "Object": spec.output_object, "Region": spec.output_region}
        }
        if spec.template_id is not None:
            operation["TemplateId"] = spec.template_id
            operation["TemplateName"] = spec.template_name or ""
        if spec.pic_process is not None:
            operation["PicProcess"] = {"IsPicInfo": spec.pic_process[0], "ProcessRule": spec.pic_process[1]}
        if self.result is not None:
            operation["PicProcessResult"] = self.result
        operation["UserData"] = spec.user_data
        operation["JobLevel"] = str(spec.job_level)
        return {
            "Code": self.code,
            "Message": self.message,
            "JobId": self.job_id,
            "State": self.state,
            "CreationTime": format_time(self.created),
            "EndTime": format_time(self.ended),
            "StartTime": format_time(self.started),
            "QueueId": self.queue_id,
            "Tag": TAG,
            "Input": {"BucketId": self.bucket, "Object": spec.input_object, "Region": self.region},
            "Operation": operation,
        }

    def times(self) -> dict[str, Any]:
        """Id, state and the exact ``time.time()`` of creation, start and end (``None`` if not
        reached): JobsDetail times are whole seconds, too coarse to time a client against."""
        return {
            "JobId": self.job_id,
            "State": self.state,
            "created": self.created,
            "started": self.started,
            "ended": self.ended,
        }

    def detail_xml(self) -> str:
        if self.xml is None:
            self.xml = element("JobsDetail", self.detail())
        return self.xml


@dataclass(frozen=True)
class ListQuery:
    """The filters of ``GET /jobs``, already validated."""

    size: int = 10
    descending: bool = True
    states: frozenset[str] = frozenset(STATES)
    after_seq: int | None = None
    start: int | None = None
    end: int | None = None
    input_object: str | None = None
    queue_id: str | None = None
    #: Only jobs started by a workflow or batch job (``workflowId``/``inventoryTriggerJobId``):
    #: the emulator has none, so such a query matches nothing.
    triggered_only: bool = False

    def matches(self, job: Job) -> bool:
        created = int(job.created)
        return (
            not self.triggered_only
            and job.state in self.states
            and (self.start is None or created >= self.start)
            and (self.end is None or created <= self.end)
            and (self.input_object is None or job.spec.input_object == self.input_object)
            and (self.queue_id is None or job.queue_id == self.queue_id)
        )


def next_token(seq: int) -> str:
    return f"{seq:x}"


def token_seq(token: str) -> int:
    """The position a ``NextToken`` stands for; ``ValueError`` if it is not one of ours."""
    return int(token, 16)


class JobStore:
    """All jobs, by id and per bucket in creation order, with counts per state."""

    def __init__(self) -> None:
        self._by_id: dict[str, Job] = {}
        self._by_bucket: dict[str, list[Job]] = {}
        self._seq = itertools.count(1)
        self.counts: Counter[str] = Counter()

    def create(self, bucket: str, region: str, queue_id: str, spec: JobSpec, now: float) -> Job:
        job = Job(f"c{uuid.uuid4().hex}", next(self._seq), bucket, region, queue_id, spec, now)
        self._by_id[job.job_id] = job
        self._by_bucket.setdefault(bucket, []).append(job)
        self.counts[job.state] += 1
        return job

    def get(self, bucket: str, job_id: str) -> Job | None:
        """The job with this id in this bucket (ids of other buckets' jobs are unknown here)."""
        job = self._by_id.get(job_id)
        return job if job is not None and job.bucket == bucket else None

    def mark(self, job: Job, state: str) -> None:
        """Move ``job`` to ``state``; the single place state changes, so counts stay right."""
        self.counts[job.state] -= 1
        self.counts[state] += 1
        job.state = state
        job.xml = None

    def all(self, bucket: str | None = None) -> list[Job]:
        if bucket is not None:
            return list(self._by_bucket.get(bucket, ()))
        return list(self._by_id.values())

    def page(self, bucket: str, query: ListQuery) -> tuple[list[Job], str | None]:
        """One page of ``GET /jobs``: matching jobs and the token of the next page, if any.

        The token is the sequence number of the last job returned, so pages stay consistent
        while new jobs arrive (a position index would shift under ``orderByTime=Desc``).
        """
        page: list[Job] = []
        for job in self._scan(self._by_bucket.get(bucket, []), query):
            if not query.matches(job):
                continue
            if len(page) == query.size:
                return page, next_token(page[-1].seq)
            page.append(job)
        return page, None

    @staticmethod
    def _scan(jobs: list[Job], query: ListQuery) -> Iterator[Job]:
        after = query.after_seq
        if query.descending:
            stop = len(jobs) if after is None else bisect_left(jobs, after, key=lambda j: j.seq)
            return (jobs[i] for i in range(stop - 1, -1, -1))
        begin = 0 if after is None else bisect_right(jobs, after, key=lambda j: j.seq)
        return (jobs[i] for i in range(begin, len(jobs)))

"""The picture queues and the worker pool that moves jobs through their states.

A job waits ``queue_delay`` seconds (a timer, not a polling loop), then enters a heap ordered
by (highest ``JobLevel``, oldest first). Up to ``workers`` jobs run at once; each runs its
processing in a thread pool and stays ``Running`` for at least ``run_time``. A paused queue
parks its ready jobs instead of starting them and shows its waiting jobs as ``Pause``; jobs
already running are unaffected. Cancelled jobs are skipped lazily when they come up, so a
cancel is O(1).

Everything here runs on the server's event loop thread.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import time
import uuid
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

from . import processing
from .config import EmulatorConfig
from .imaging import ProcessingError
from .jobs import CANCEL, FAILED, PAUSE, RUNNING, SUBMITTED, SUCCESS, WAITING, Job, JobSpec, JobStore
from .storage import Storage
from .xmlio import format_time

log = logging.getLogger(__name__)

ACTIVE, PAUSED = "Active", "Paused"
MAX_SIZE = 10000
NOTIFY_FIELDS = ("Url", "Event", "Type", "State", "ResultFormat")


@dataclass(eq=False)
class PicQueue:
    """The one picture queue of a bucket (what ``POST /picbucket`` creates on the real service)."""

    queue_id: str
    created: float
    updated: float
    name: str = "default"
    state: str = ACTIVE
    notify: dict[str, str] = field(
        default_factory=lambda: {"Url": "", "Event": "TaskFinish", "Type": "Url", "State": "Off", "ResultFormat": "XML"}
    )
    #: Jobs not yet taken by a worker (state Submitted or Pause).
    waiting: set[Job] = field(default_factory=set)
    #: Ready jobs held back while the queue is paused.
    parked: list[Job] = field(default_factory=list)

    def detail(self, max_concurrent: int) -> dict[str, Any]:
        return {
            "QueueId": self.queue_id,
            "Name": self.name,
            "State": self.state,
            "NotifyConfig": dict(self.notify),
            "MaxSize": str(MAX_SIZE),
            "MaxConcurrent": str(max_concurrent),
            "UpdateTime": format_time(self.updated),
            "CreateTime": format_time(self.created),
            "Category": "PicProcessing",
        }


class Scheduler:
    def __init__(self, store: JobStore, storage: Storage, executor: Executor, config: EmulatorConfig) -> None:
        self._store = store
        self._storage = storage
        self._executor = executor
        self._queue_delay = config.queue_delay
        self._run_time = config.run_time
        self.workers = config.workers
        self.queues: dict[str, PicQueue] = {}
        self._ready: list[tuple[int, int, Job]] = []
        self._running = 0
        self._timers: dict[Job, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def queue_for(self, bucket: str) -> PicQueue:
        queue = self.queues.get(bucket)
        if queue is None:
            now = time.time()
            queue = self.queues[bucket] = PicQueue(f"p{uuid.uuid4().hex}", now, now)
        return queue

    def submit(self, bucket: str, region: str, spec: JobSpec, forced_failure: tuple[str, str] | None = None) -> Job:
        """Create a job in ``bucket``'s queue and schedule its start."""
        queue = self.queue_for(bucket)
        job = self._store.create(bucket, region, queue.queue_id, spec, time.time())
        job.forced_failure = forced_failure
        queue.waiting.add(job)
        if queue.state == PAUSED:
            self._store.mark(job, PAUSE)
        loop = asyncio.get_running_loop()
        self._timers[job] = loop.call_later(self._queue_delay, self._make_ready, job)
        return job

    def cancel(self, job: Job) -> bool:
        """Cancel a job no worker has taken; ``False`` (and no change) for any other job."""
        if job.state not in WAITING:
            return False
        self.queues[job.bucket].waiting.discard(job)
        job.ended = time.time()
        self._store.mark(job, CANCEL)
        return True

    def set_queue_state(self, queue: PicQueue, state: str) -> None:
        """``Paused`` holds waiting jobs (shown as ``Pause``); ``Active`` releases them in order."""
        queue.updated = time.time()
        if state == queue.state:
            return
        queue.state = state
        shown = PAUSE if state == PAUSED else SUBMITTED
        for job in queue.waiting:
            self._store.mark(job, shown)
        if state == ACTIVE:
            for job in queue.parked:
                self._push(job)
            queue.parked.clear()
            self._dispatch()

    def close(self) -> None:
        """Stop scheduling: pending timers and running jobs are cancelled (for reset and shutdown)."""
        for handle in self._timers.values():
            handle.cancel()
        for task in self._tasks:
            task.cancel()
        self._timers.clear()
        self._ready.clear()

    def _make_ready(self, job: Job) -> None:
        del self._timers[job]
        self._push(job)
        self._dispatch()

    def _push(self, job: Job) -> None:
        heapq.heappush(self._ready, (-job.spec.job_level, job.seq, job))

    def _dispatch(self) -> None:
        """Start ready jobs while slots are free; cancelled ones are dropped, paused ones parked."""
        while self._running < self.workers and self._ready:
            job = heapq.heappop(self._ready)[2]
            if job.state not in WAITING:
                continue
            queue = self.queues[job.bucket]
            if queue.state == PAUSED:
                queue.parked.append(job)
                continue
            queue.waiting.discard(job)
            self._running += 1
            job.started = time.time()
            self._store.mark(job, RUNNING)
            task = asyncio.get_running_loop().create_task(self._run(job))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run(self, job: Job) -> None:
        loop = asyncio.get_running_loop()
        began = loop.time()
        try:
            failure = job.forced_failure
            result = None
            if failure is None:
                try:
                    result = await loop.run_in_executor(
                        self._executor, processing.execute, self._storage, job.bucket, job.spec
                    )
                except ProcessingError as exc:
                    failure = (exc.code, exc.message)
                except Exception as exc:
                    log.exception("job %s crashed in the emulator", job.job_id)
                    failure = ("InternalError", f"the emulator failed to process the job: {exc}")
            await asyncio.sleep(max(0.0, began + self._run_time - loop.time()))
            job.ended = time.time()
            job.result = result
            if failure is not None:
                job.code, job.message = failure
            self._store.mark(job, SUCCESS if failure is None else FAILED)
        finally:
            self._running -= 1
            self._dispatch()

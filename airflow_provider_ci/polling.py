"""Coalesced polling: every wait on the same connection and interval in one event loop shares one
poller, which asks for the jobs of each bucket with one ``GET /jobs/<id1>,<id2>,...`` per round.

Why: CI allows 100 requests/s per account (50 overseas). A thousand deferred tasks polled one
job per request every 10 s already use all of it; coalesced, they make ``ceil(N / batch)``
requests per round. Triggers keep their kwargs and serialization; only where they get their
answers from changes. A trigger alone is polled exactly as before: one request per interval.

Each subscriber gets its own answer every round: its JobsDetail, or the exception that round
raised for it (a not-found id goes to that id only; a failed request to the ids it carried), so
transient errors, unknown ids, deadlines and cancellation stay per trigger.

Waits are grouped by the endpoint their ``bucket``/``region`` resolve to, through the
connection's own rule (:meth:`ConnectionSettings.endpoint`), at each round: a trigger naming the
connection's region explicitly and one leaving it to the connection share their requests. A job
id is asked for where its first waiter said (job ids are unique to their bucket).

Answers are handed to the waiting triggers at most ``DELIVER_SLICE`` at a time, one slice per
pass of the event loop: ten thousand triggers woken in one pass (each logging its first state)
would hold the loop for a noticeable fraction of a second.

The service's largest batch is undocumented. A batch refused as too large (414, or 400
``InvalidArgument``) is split in two and both halves are asked again at once; the poller then
keeps the smaller size (``batch_limit``) for as long as it lives.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any

from airflow_provider_ci.exceptions import CloudInfiniteJobNotFoundError, CloudInfiniteServiceError
from airflow_provider_ci.hooks.ci import CloudInfiniteHook

log = logging.getLogger(__name__)

#: Pause before the first round, so triggers started together share it.
GATHER_SECONDS = 0.05
#: Requests of one round in flight at once. One httpx client slows down sharply with hundreds
#: of requests queued on it (bench E0/B1), which a small ``poll_batch_size`` would cause.
MAX_IN_FLIGHT = 8
#: Answers handed to waiting triggers per pass of the event loop.
DELIVER_SLICE = 10
Answer = dict[str, Any] | Exception
#: (connection id, poll interval): what a poller is shared by.
PollerKey = tuple[str, float]
#: A wait's own ``bucket`` and ``region`` arguments, before the connection's defaults apply.
Where = tuple[str | None, str | None]

_POLLERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[PollerKey, JobPoller]] = weakref.WeakKeyDictionary()


class JobPoller:
    """Polls the subscribed job ids of one (connection, interval) in rounds, per endpoint."""

    def __init__(self, key: PollerKey, hook: CloudInfiniteHook) -> None:
        self.key = key
        self.hook = hook
        self.rounds = 0
        #: The most ids per request the service accepted after refusing more (None: no refusal yet).
        self.batch_limit: int | None = None
        self._subscribers: dict[str, set[asyncio.Queue[tuple[str, Answer]]]] = {}
        self._where: dict[str, Where] = {}
        self._task: asyncio.Task[None] | None = None
        self._outbox: deque[tuple[str, Answer]] = deque()
        self._pump: asyncio.Task[None] | None = None

    @property
    def interval(self) -> float:
        return self.key[1]

    @contextlib.asynccontextmanager
    async def subscription(
        self, *job_ids: str, bucket: str | None = None, region: str | None = None
    ) -> AsyncIterator[asyncio.Queue[tuple[str, Answer]]]:
        """A queue of ``(job_id, answer)``, one per id each round, for as long as the block runs.

        ``bucket``/``region`` are the wait's own (None: the connection's). :meth:`drop` stops
        asking for an id early (a job that is over).
        """
        queue: asyncio.Queue[tuple[str, Answer]] = asyncio.Queue()
        for job_id in job_ids:
            self._subscribers.setdefault(job_id, set()).add(queue)
            self._where.setdefault(job_id, (bucket, region))
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name=f"ci-poller-{self.key}")
        try:
            yield queue
        finally:
            self.drop(queue, *job_ids)

    def drop(self, queue: asyncio.Queue[tuple[str, Answer]], *job_ids: str) -> None:
        for job_id in job_ids:
            queues = self._subscribers.get(job_id, set())
            queues.discard(queue)
            if not queues:
                self._subscribers.pop(job_id, None)
                self._where.pop(job_id, None)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            await asyncio.sleep(GATHER_SECONDS)
            while self._subscribers:
                started = loop.time()
                await self._round()
                await asyncio.sleep(max(0.0, self.interval - (loop.time() - started)))
        finally:
            if not self._subscribers:
                pollers = _POLLERS.get(loop, {})
                if pollers.get(self.key) is self:
                    del pollers[self.key]
                await self.hook.aclose()

    async def _round(self) -> None:
        ids = list(self._subscribers)
        self.rounds += 1
        try:
            settings = await self.hook.asettings()
        except Exception as exc:  # a bad connection: every waiter hears it, none hangs
            self._deliver(dict.fromkeys(ids, exc))
            return
        size = min(settings.poll_batch_size, self.batch_limit or settings.poll_batch_size)
        groups: dict[Where, list[str]] = {}
        for job_id in ids:
            try:
                endpoint = settings.endpoint(*self._where.get(job_id, (None, None)))
            except Exception as exc:  # no bucket or region to ask: this wait hears why
                self._deliver({job_id: exc})
                continue
            groups.setdefault((endpoint.bucket, endpoint.region), []).append(job_id)
        chunks = iter(
            [(where, group[i : i + size]) for where, group in groups.items() for i in range(0, len(group), size)]
        )

        async def fetch_chunks() -> None:
            for where, chunk in chunks:
                await self._fetch(chunk, where)

        await asyncio.gather(*(fetch_chunks() for _ in range(MAX_IN_FLIGHT)))

    async def _fetch(self, ids: list[str], where: Where) -> None:
        bucket, region = where
        answers: dict[str, Answer]
        try:
            answers = dict(await self.hook.aget_jobs(ids, bucket=bucket, region=region))
        except CloudInfiniteJobNotFoundError as exc:
            answers = {**{job_id: CloudInfiniteJobNotFoundError([job_id]) for job_id in exc.job_ids}, **exc.found}
        except CloudInfiniteServiceError as exc:
            if not (_too_large(exc) and len(ids) > 1):
                answers = dict.fromkeys(ids, exc)
            else:
                half = (len(ids) + 1) // 2
                if self.batch_limit is None or half < self.batch_limit:
                    self.batch_limit = half
                    log.warning(
                        "CI refused %d job ids in one request (%s); asking at most %d at a time",
                        len(ids),
                        exc.code or exc.status,
                        half,
                    )
                await asyncio.gather(self._fetch(ids[:half], where), self._fetch(ids[half:], where))
                return
        except Exception as exc:
            answers = dict.fromkeys(ids, exc)
        self._deliver(answers)

    def _deliver(self, answers: dict[str, Answer]) -> None:
        """Queue ``answers`` for the subscribers; the pump hands them over slice by slice."""
        self._outbox.extend(answers.items())
        if self._pump is None or self._pump.done():
            self._pump = asyncio.get_running_loop().create_task(self._hand_over(), name=f"ci-poller-pump-{self.key}")

    async def _hand_over(self) -> None:
        outbox = self._outbox
        while outbox:
            for _ in range(min(DELIVER_SLICE, len(outbox))):
                job_id, answer = outbox.popleft()
                for queue in self._subscribers.get(job_id, ()):
                    queue.put_nowait((job_id, answer))
            await asyncio.sleep(0)  # the woken triggers run before the next slice


def _too_large(exc: CloudInfiniteServiceError) -> bool:
    """Whether a ``GET /jobs/<ids>`` was refused for naming too many ids (414, or 400 InvalidArgument)."""
    return exc.status == 414 or (exc.status == 400 and exc.code == "InvalidArgument")


def poller_for(conn_id: str, interval: float, hook: Callable[[], CloudInfiniteHook]) -> JobPoller:
    """The running loop's poller for this connection and interval, created (with ``hook()``) on first use."""
    pollers = _POLLERS.setdefault(asyncio.get_running_loop(), {})
    key = (conn_id, float(interval))
    poller = pollers.get(key)
    if poller is None:
        poller = pollers[key] = JobPoller(key, hook())
    return poller

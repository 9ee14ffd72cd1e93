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

A subscriber is anything with ``offer(job_id, answer)``, called on the loop for every answer.
The single-job trigger's subscriber decides in place and wakes its trigger only once, with the
event; the batch trigger subscribes an :class:`AnswerQueue`. No wait gets a Future, a timer or
a task per round: with ten thousand waits, per-round objects that live until the next round are
promoted to the garbage collector's oldest generation, and its collections scan the whole
triggerer (docs/scaling.md).

Answers are handed over in slices of at most ``DELIVER_SLICE`` answers and ``SLICE_SECONDS`` of
the loop's time, one slice per pass of the event loop: ten thousand answers handed over in one
pass (each first state logged) would hold the loop for a noticeable fraction of a second, and a
count alone does not bound a slice whose log lines are slow to write (B6 saw ten take 130 ms).

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
from typing import Any, Protocol

from airflow_provider_ci.exceptions import CloudInfiniteJobNotFoundError, CloudInfiniteServiceError
from airflow_provider_ci.hooks.ci import CloudInfiniteHook

log = logging.getLogger(__name__)

#: Pause before the first round, so triggers started together share it.
GATHER_SECONDS = 0.05
#: Requests of one round in flight at once. One httpx client slows down sharply with hundreds
#: of requests queued on it (bench E0/B1), which a small ``poll_batch_size`` would cause.
MAX_IN_FLIGHT = 8
#: Answers handed to waiting triggers per pass of the event loop, and the loop time one pass may take.
DELIVER_SLICE = 10
SLICE_SECONDS = 0.005
Answer = dict[str, Any] | Exception
#: (connection id, poll interval): what a poller is shared by.
PollerKey = tuple[str, float]
#: A wait's own ``bucket`` and ``region`` arguments, before the connection's defaults apply.
Where = tuple[str | None, str | None]


class Subscriber(Protocol):
    """What the poller hands answers to, on the loop; it must not block or raise."""

    def offer(self, job_id: str, answer: Answer, /) -> None: ...


class AnswerQueue(asyncio.Queue[tuple[str, Answer]]):
    """A subscriber that queues ``(job_id, answer)`` for a consumer that awaits them one by one."""

    def offer(self, job_id: str, answer: Answer, /) -> None:
        self.put_nowait((job_id, answer))


_POLLERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[PollerKey, JobPoller]] = weakref.WeakKeyDictionary()


class JobPoller:
    """Polls the subscribed job ids of one (connection, interval) in rounds, per endpoint."""

    def __init__(self, key: PollerKey, hook: CloudInfiniteHook) -> None:
        self.key = key
        self.hook = hook
        self.rounds = 0
        #: The most ids per request the service accepted after refusing more (None: no refusal yet).
        self.batch_limit: int | None = None
        #: job id -> its subscriber, or a tuple of them when several wait for it (rare: one
        #: object fewer per wait, of ten thousand).
        self._subscribers: dict[str, Subscriber | tuple[Subscriber, ...]] = {}
        self._where: dict[str, Where] = {}
        self._task: asyncio.Task[None] | None = None
        self._outbox: deque[tuple[str, Answer]] = deque()
        self._pump: asyncio.Task[None] | None = None

    @property
    def interval(self) -> float:
        return self.key[1]

    def subscribe(
        self, subscriber: Subscriber, *job_ids: str, bucket: str | None = None, region: str | None = None
    ) -> None:
        """Hand ``subscriber`` an answer for each of ``job_ids`` every round, until :meth:`drop`.

        ``bucket``/``region`` are the wait's own (None: the connection's).
        """
        for job_id in job_ids:
            others = self._subscribers_of(job_id)
            if any(other is subscriber for other in others):
                continue  # once per id, however often it is named
            self._subscribers[job_id] = (*others, subscriber) if others else subscriber
            self._where.setdefault(job_id, (bucket, region))
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name=f"ci-poller-{self.key}")

    @contextlib.asynccontextmanager
    async def subscription(
        self, *job_ids: str, bucket: str | None = None, region: str | None = None
    ) -> AsyncIterator[AnswerQueue]:
        """A queue of ``(job_id, answer)``, one per id each round, for as long as the block runs.

        ``bucket``/``region`` are the wait's own (None: the connection's). :meth:`drop` stops
        asking for an id early (a job that is over).
        """
        queue = AnswerQueue()
        self.subscribe(queue, *job_ids, bucket=bucket, region=region)
        try:
            yield queue
        finally:
            self.drop(queue, *job_ids)

    def drop(self, subscriber: Subscriber, *job_ids: str) -> None:
        """Stop handing ``subscriber`` answers for ``job_ids``; an id nobody waits for is no longer asked."""
        for job_id in job_ids:
            rest = tuple(other for other in self._subscribers_of(job_id) if other is not subscriber)
            if rest:
                self._subscribers[job_id] = rest if len(rest) > 1 else rest[0]
            else:
                self._subscribers.pop(job_id, None)
                self._where.pop(job_id, None)

    def _subscribers_of(self, job_id: str) -> tuple[Subscriber, ...]:
        found = self._subscribers.get(job_id, ())
        return found if isinstance(found, tuple) else (found,)

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
        unreachable: dict[str, Answer] = {}
        resolved: dict[Where, Where | Exception] = {}  # a few distinct (bucket, region) among many waits
        for job_id in ids:
            where = self._where.get(job_id, (None, None))
            target = resolved.get(where)
            if target is None:
                try:
                    endpoint = settings.endpoint(*where)
                    target = resolved[where] = (endpoint.bucket, endpoint.region)
                except Exception as exc:  # no bucket or region to ask: these waits hear why
                    target = resolved[where] = exc
            if isinstance(target, Exception):
                unreachable[job_id] = target
            else:
                groups.setdefault(target, []).append(job_id)
        if unreachable:
            self._deliver(unreachable)
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
        clock = asyncio.get_running_loop().time
        while outbox:
            until = clock() + SLICE_SECONDS
            for _ in range(min(DELIVER_SLICE, len(outbox))):
                job_id, answer = outbox.popleft()
                for subscriber in self._subscribers_of(job_id):
                    subscriber.offer(job_id, answer)
                if clock() >= until:
                    break
            await asyncio.sleep(0)  # what the slice woke runs before the next one


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

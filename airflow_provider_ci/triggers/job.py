"""CloudInfiniteJobTrigger: wait for a CI job in the triggerer, without holding a worker slot.

Decisions worth knowing:

* Only async I/O: answers come from the loop's shared poller (:mod:`airflow_provider_ci.polling`),
  which asks for every waiting job of this connection and bucket in one request per round, on
  one httpx client, after reading the connection with ``aget_connection``. Nothing here may
  block the triggerer's loop.
* The deadline is wall-clock (``end_time``, Unix seconds), not monotonic: the trigger is
  serialized to the metadata DB and may resume in another triggerer process.
* A transient failure (5xx, 429, timeout, reset) never ends the wait by itself; only
  ``max_consecutive_failures`` failed polls in a row do, with the last error in the event
  (the hook already retries each request). Ending the wait on a blip would fail the task,
  and a retry would bill a second job.
* The trigger sleeps once for its whole wait: the poller hands each round's answer to a
  :class:`_JobWait`, which decides on the loop and wakes the trigger only with its event. A
  Queue, a Future and a timer per round and per wait are what made ten thousand waits slow
  (garbage collections of the whole triggerer, docs/scaling.md).
* Every outcome is an event, never an exception: an exception resumes the task through
  ``__fail__`` without calling ``execute_complete``, which then cannot cancel or explain.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_ci.exceptions import CloudInfiniteJobNotFoundError
from airflow_provider_ci.hooks.ci import CloudInfiniteHook
from airflow_provider_ci.polling import Answer, poller_for
from airflow_provider_ci.waiting import (
    DEFAULT_MAX_CONSECUTIVE_FAILURES,
    FAILURE,
    SUCCESS,
    JobWatch,
    failure_fields,
    timeout_fields,
)

#: Seconds on_kill waits for the task's state, then for the cancel. Generous: the work is
#: shielded and off the triggerer's path, and on a loaded deployment the state query (through
#: the supervisor to the API server) took over 20 s, which left a job running that should stop.
CANCEL_ON_KILL_TIMEOUT = 60.0
#: Shielded on_kill work still running; a strong reference, as the event loop keeps only weak ones.
_UNFINISHED: set[asyncio.Future[None]] = set()


class CloudInfiniteJobTrigger(BaseTrigger):
    """Poll ``job_id`` every ``poll_interval`` seconds until it ends or ``end_time`` passes.

    Emits exactly one event: ``success`` (with the final JobsDetail), ``error`` (job Failed or
    Cancel with its Code and Message, an unknown job id, or too many failed polls), or
    ``timeout``. With ``cancel_on_kill``, a user marking the deferred task failed or clearing
    it (Airflow 3.3+ calls :meth:`on_kill`) cancels the job if it has not started yet.

    :param job_id: the CI job to wait for.
    :param tencent_ci_conn_id: the ``tencent_ci`` connection to use.
    :param bucket: the job's bucket; default the connection's ``bucket`` extra.
    :param region: the bucket's region; default the connection's ``region`` extra.
    :param poll_interval: seconds between two polls (default 10).
    :param end_time: when to stop waiting, as Unix seconds (wall clock, so it survives a move
        to another triggerer); ``None`` waits without a deadline.
    :param cancel_on_kill: cancel the job on :meth:`on_kill` if the task is no longer deferred.
    :param max_consecutive_failures: failed polls in a row (after the hook's own retries) that
        end the wait with an ``error`` event (default 5).
    """

    def __init__(
        self,
        *,
        job_id: str,
        tencent_ci_conn_id: str = CloudInfiniteHook.default_conn_name,
        bucket: str | None = None,
        region: str | None = None,
        poll_interval: float = 10.0,
        end_time: float | None = None,
        cancel_on_kill: bool = True,
        max_consecutive_failures: int = DEFAULT_MAX_CONSECUTIVE_FAILURES,
    ) -> None:
        super().__init__()
        self.job_id = job_id
        self.tencent_ci_conn_id = tencent_ci_conn_id
        self.bucket = bucket
        self.region = region
        self.poll_interval = float(poll_interval)
        self.end_time = None if end_time is None else float(end_time)
        self.cancel_on_kill = bool(cancel_on_kill)
        self.max_consecutive_failures = int(max_consecutive_failures)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "job_id": self.job_id,
                "tencent_ci_conn_id": self.tencent_ci_conn_id,
                "bucket": self.bucket,
                "region": self.region,
                "poll_interval": self.poll_interval,
                "end_time": self.end_time,
                "cancel_on_kill": self.cancel_on_kill,
                "max_consecutive_failures": self.max_consecutive_failures,
            },
        )

    def _hook(self) -> CloudInfiniteHook:
        return CloudInfiniteHook(self.tencent_ci_conn_id)

    def _event(self, status: str, **fields: Any) -> TriggerEvent:
        return TriggerEvent({"status": status, **fields, "job_id": self.job_id})

    async def run(self) -> AsyncIterator[TriggerEvent]:
        loop = asyncio.get_running_loop()
        poller = poller_for(self.tencent_ci_conn_id, self.poll_interval, self._hook)
        # The wait judges answers (and logs) in the poller's task: under this task's context, which
        # carries what the triggerer bound for this trigger (its lines go to its task's log by it).
        wait = _JobWait(self, loop.create_future(), contextvars.copy_context())
        poller.subscribe(wait, self.job_id, bucket=self.bucket, region=self.region)
        try:
            if self.end_time is None:
                event = await wait.event
            else:
                try:
                    # Once per wait, not per round; the deadline is wall clock, read now.
                    async with asyncio.timeout(max(0.0, self.end_time - time.time())):
                        event = await wait.event
                except TimeoutError:
                    last = wait.last
                    event = self._event("timeout", **timeout_fields(self.job_id, last), detail=last)
        finally:
            poller.drop(wait, self.job_id)
        yield event

    async def on_kill(self) -> None:
        """Cancel the job when a user fails or clears the deferred task (Airflow 3.3+); best effort.

        Airflow 3.3 also calls this when the trigger moves to another triggerer (one that saw
        this one's heartbeat go stale reassigns it, and this one then drops it), so the task
        instance's state decides: while it is still deferred, another triggerer waits for this
        job and it must live. When the state cannot be read, the job is left alone too: a job
        left running costs one job, a wrong cancel fails a task someone is waiting for.
        The triggerer may cancel this call again while it runs (it re-sends the drop each
        round), so the work runs shielded and finishes regardless.
        """
        if not self.cancel_on_kill:
            return
        work = asyncio.ensure_future(self._cancel_unless_still_deferred())
        _UNFINISHED.add(work)
        work.add_done_callback(_UNFINISHED.discard)
        await asyncio.shield(work)

    async def _cancel_unless_still_deferred(self) -> None:
        if await self._task_still_deferred():
            return
        hook = self._hook()
        try:
            await asyncio.wait_for(
                hook.acancel_job(self.job_id, bucket=self.bucket, region=self.region), CANCEL_ON_KILL_TIMEOUT
            )
            self.log.info("Cancelled CI job %s", self.job_id)
        except Exception as exc:
            self.log.warning("Could not cancel CI job %s (only jobs not yet started can be): %s", self.job_id, exc)
        finally:
            await hook.aclose()

    async def _task_still_deferred(self) -> bool:
        ti = self.task_instance
        if ti is None:  # not run by a triggerer (a test, or a direct call): nothing to ask
            return False
        try:
            from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance
            from asgiref.sync import sync_to_async

            count = sync_to_async(RuntimeTaskInstance.get_ti_count)(
                dag_id=ti.dag_id,
                map_index=ti.map_index,
                task_ids=[ti.task_id],
                run_ids=[ti.run_id],
                states=["deferred"],
            )
            waiting = await asyncio.wait_for(count, CANCEL_ON_KILL_TIMEOUT)
        except Exception as exc:
            self.log.warning("Not cancelling CI job %s: could not read its task's state: %s", self.job_id, exc)
            return True
        if waiting:
            self.log.info(
                "Not cancelling CI job %s: its task is still deferred (moved to another triggerer)", self.job_id
            )
        return bool(waiting)


class _JobWait(JobWatch):
    """One trigger's wait as the poller's subscriber: each answer is judged here, on the loop,
    and the trigger is woken once, with its event (a Future set exactly once).

    :param trigger: the waiting trigger (its job id, failure budget and events).
    :param event: the Future its ``run()`` awaits; set with the one event, or the error that
        judging an answer raised.
    :param context: the trigger task's context, which every answer is judged (and logged) in:
        the triggerer routes a log line to its trigger's task log by what it bound there.
    """

    __slots__ = ("context", "event", "trigger")

    def __init__(
        self, trigger: CloudInfiniteJobTrigger, event: asyncio.Future[TriggerEvent], context: contextvars.Context
    ) -> None:
        # The class's logger (same name as ``trigger.log``), not one built per trigger: each
        # would hold half a dozen objects for as long as its wait lasts. The triggerer routes
        # a line to its task's log by the context it binds per trigger, not by logger object.
        super().__init__(trigger.job_id, type(trigger).logger(), trigger.max_consecutive_failures)
        self.trigger = trigger
        self.event = event
        self.context = context

    def offer(self, job_id: str, answer: Answer, /) -> None:
        if not self.event.done():
            self.context.run(self._offer, answer)

    def _offer(self, answer: Answer) -> None:
        try:
            event = self._judge(answer)
        except Exception as exc:  # a bug here must reach the trigger, not stall the poller
            self.event.set_exception(exc)
            return
        if event is not None:
            self.event.set_result(event)

    def _judge(self, answer: Answer) -> TriggerEvent | None:
        """The event this answer ends the wait with, or None while it goes on."""
        trigger = self.trigger
        if isinstance(answer, CloudInfiniteJobNotFoundError):
            return trigger._event("error", code="NoSuchJob", message=f"CI does not know job {self.job_id}")
        if isinstance(answer, Exception):
            if self.failed_poll(answer):
                fields = {**failure_fields(answer), "message": self.failures.describe(answer)}
                return trigger._event("error", **fields, detail=self.last)
            return None
        outcome = self.observe(answer)
        if outcome == SUCCESS:
            return trigger._event("success", detail=answer)
        if outcome == FAILURE:
            return trigger._event("error", **failure_fields(answer), detail=answer)
        return None

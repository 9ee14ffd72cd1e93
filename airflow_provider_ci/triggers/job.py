"""CloudInfiniteJobTrigger: wait for a CI job in the triggerer, without holding a worker slot.

Decisions worth knowing:

* Only async I/O: the hook's ``a``-methods on one httpx client for the whole wait, and the
  connection read with ``aget_connection``. Nothing here may block the triggerer's loop.
* The deadline is wall-clock (``end_time``, Unix seconds), not monotonic: the trigger is
  serialized to the metadata DB and may resume in another triggerer process.
* A transient failure (5xx, 429, timeout, reset) never ends the wait by itself; only
  ``max_consecutive_failures`` failed polls in a row do, with the last error in the event
  (the hook already retries each request). Ending the wait on a blip would fail the task,
  and a retry would bill a second job.
* Every outcome is an event, never an exception: an exception resumes the task through
  ``__fail__`` without calling ``execute_complete``, which then cannot cancel or explain.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_ci.exceptions import CloudInfiniteJobNotFoundError
from airflow_provider_ci.hooks.ci import CloudInfiniteHook
from airflow_provider_ci.waiting import FAILURE, SUCCESS, JobWatch

#: Event statuses; ``execute_complete`` rejects anything else.
EVENT_STATUSES = ("success", "error", "timeout")
CANCEL_ON_KILL_TIMEOUT = 20.0


class CloudInfiniteJobTrigger(BaseTrigger):
    """Poll ``job_id`` every ``poll_interval`` seconds until it ends or ``end_time`` passes.

    Emits exactly one event: ``success`` (with the final JobsDetail), ``error`` (job Failed or
    Cancel with its Code and Message, an unknown job id, or too many failed polls), or
    ``timeout``. With ``cancel_on_kill``, a user marking the deferred task failed or clearing
    it (Airflow 3.3+ calls :meth:`on_kill`) cancels the job if it has not started yet.
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
        max_consecutive_failures: int = 5,
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
        return TriggerEvent({"status": status, "job_id": self.job_id, **fields})

    async def run(self) -> AsyncIterator[TriggerEvent]:
        hook = self._hook()
        try:
            yield await self._wait(hook)
        finally:
            await hook.aclose()

    async def _wait(self, hook: CloudInfiniteHook) -> TriggerEvent:
        watch = JobWatch(self.job_id, self.log, self.max_consecutive_failures)
        while True:
            try:
                outcome = watch.observe(await hook.aget_job(self.job_id, bucket=self.bucket, region=self.region))
            except CloudInfiniteJobNotFoundError:
                return self._event("error", code="NoSuchJob", message=f"CI does not know job {self.job_id}")
            except Exception as exc:
                if watch.failed_poll(exc):
                    message = f"{watch.failures} polls in a row failed; last: {exc}" if watch.failures else str(exc)
                    return self._event("error", code=getattr(exc, "code", None), message=message, detail=watch.last)
            else:
                if outcome == SUCCESS:
                    return self._event("success", detail=watch.last)
                if outcome == FAILURE:
                    detail = watch.last or {}
                    return self._event(
                        "error",
                        state=detail.get("State"),
                        code=detail.get("Code"),
                        message=detail.get("Message"),
                        request_id=detail.get("RequestId"),
                        detail=detail,
                    )
            if self.end_time is not None and time.time() >= self.end_time:
                return self._event("timeout", message=f"CI job {self.job_id} did not finish in time", detail=watch.last)
            await asyncio.sleep(self._sleep_for())

    def _sleep_for(self) -> float:
        if self.end_time is None:
            return self.poll_interval
        return max(0.0, min(self.poll_interval, self.end_time - time.time()))

    async def on_kill(self) -> None:
        """Cancel the job when a user fails or clears the deferred task (Airflow 3.3+); best effort."""
        if not self.cancel_on_kill:
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

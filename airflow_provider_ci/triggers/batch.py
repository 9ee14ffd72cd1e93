"""CloudInfiniteBatchJobTrigger: wait for many CI jobs in one deferral.

It subscribes every id to the loop's shared poller (:mod:`airflow_provider_ci.polling`), so
ten thousand jobs cost ``ceil(10000 / batch)`` requests a round, and stops asking for a job
once it is over. It logs progress (done/total, rate) every ``log_every`` seconds, never a line
per job. Per-job outcomes are kept compact so the event stays small: the ids that succeeded,
and state/code/message/request_id (:func:`~airflow_provider_ci.waiting.failure_fields`) for
the rest. Failed polls count per job with the same policy as every other wait
(:class:`~airflow_provider_ci.waiting.PollFailures`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_ci.batch import Progress
from airflow_provider_ci.exceptions import CloudInfiniteJobNotFoundError
from airflow_provider_ci.hooks.ci import CloudInfiniteHook
from airflow_provider_ci.polling import poller_for
from airflow_provider_ci.waiting import (
    DEFAULT_MAX_CONSECUTIVE_FAILURES,
    SUCCESS,
    WAITING,
    PollFailures,
    classify,
    failure_fields,
)


class CloudInfiniteBatchJobTrigger(BaseTrigger):
    """Poll ``job_ids`` until every one is over, or ``end_time`` passes.

    Emits ``success`` (every job ended; some may have failed: the operator judges), or
    ``timeout`` with the ids still waiting. A job whose polls keep failing (a permanent error,
    or ``max_consecutive_failures`` transient ones in a row) ends as failed with that error.

    :param job_ids: the CI jobs to wait for.
    :param tencent_ci_conn_id: the ``tencent_ci`` connection to use.
    :param bucket: the jobs' bucket; default the connection's ``bucket`` extra.
    :param region: the bucket's region; default the connection's ``region`` extra.
    :param poll_interval: seconds between two poll rounds (default 10).
    :param end_time: when to stop waiting, as Unix seconds (wall clock); ``None`` waits
        without a deadline.
    :param max_consecutive_failures: failed polls of one job in a row that end it as failed
        (default 5).
    :param log_every: seconds between two progress lines (done/total, rate; default 30).
    """

    def __init__(
        self,
        *,
        job_ids: list[str],
        tencent_ci_conn_id: str = CloudInfiniteHook.default_conn_name,
        bucket: str | None = None,
        region: str | None = None,
        poll_interval: float = 10.0,
        end_time: float | None = None,
        max_consecutive_failures: int = DEFAULT_MAX_CONSECUTIVE_FAILURES,
        log_every: float = 30.0,
    ) -> None:
        super().__init__()
        self.job_ids = list(job_ids)
        self.tencent_ci_conn_id = tencent_ci_conn_id
        self.bucket = bucket
        self.region = region
        self.poll_interval = float(poll_interval)
        self.end_time = None if end_time is None else float(end_time)
        self.max_consecutive_failures = int(max_consecutive_failures)
        self.log_every = float(log_every)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "job_ids": self.job_ids,
                "tencent_ci_conn_id": self.tencent_ci_conn_id,
                "bucket": self.bucket,
                "region": self.region,
                "poll_interval": self.poll_interval,
                "end_time": self.end_time,
                "max_consecutive_failures": self.max_consecutive_failures,
                "log_every": self.log_every,
            },
        )

    def _hook(self) -> CloudInfiniteHook:
        return CloudInfiniteHook(self.tencent_ci_conn_id)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        poller = poller_for(self.tencent_ci_conn_id, self.poll_interval, self._hook)
        succeeded: list[str] = []
        failed: dict[str, dict[str, Any]] = {}
        failures: dict[str, PollFailures] = {}
        pending = set(self.job_ids)
        progress = Progress(len(pending), "CI jobs over", every=self.log_every)
        loop = asyncio.get_running_loop()
        # One deadline for the whole wait (wall clock, read now), not a timer and a task per answer.
        deadline = None if self.end_time is None else loop.time() + max(0.0, self.end_time - time.time())
        async with poller.subscription(*pending, bucket=self.bucket, region=self.region) as answers:
            try:
                async with asyncio.timeout_at(deadline):
                    while pending:
                        job_id, answer = await answers.get()
                        if job_id not in pending:
                            continue
                        outcome = self._outcome(job_id, answer, failures)
                        if outcome is None:
                            continue
                        pending.discard(job_id)
                        poller.drop(answers, job_id)
                        progress.step()
                        if isinstance(outcome, dict):
                            failed[job_id] = outcome
                        else:
                            succeeded.append(job_id)
            except TimeoutError:
                yield TriggerEvent(
                    {"status": "timeout", "succeeded": succeeded, "failed": failed, "pending": sorted(pending)}
                )
                return
        yield TriggerEvent({"status": "success", "succeeded": succeeded, "failed": failed, "pending": []})

    def _outcome(self, job_id: str, answer: Any, failures: dict[str, PollFailures]) -> str | dict[str, Any] | None:
        """SUCCESS, a failure record, or None while the job is still waiting."""
        if isinstance(answer, CloudInfiniteJobNotFoundError):
            return {**failure_fields(answer), "code": "NoSuchJob", "message": f"CI does not know job {job_id}"}
        if isinstance(answer, Exception):
            policy = failures.setdefault(job_id, PollFailures(self.max_consecutive_failures))
            if not policy.record(answer):
                return None
            return {**failure_fields(answer), "message": policy.describe(answer)}
        failures.pop(job_id, None)
        verdict = classify(answer)
        if verdict == WAITING:
            return None
        if verdict == SUCCESS:
            return SUCCESS
        return failure_fields(answer)

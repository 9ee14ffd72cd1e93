"""CloudInfiniteJobSensor: wait for an existing job (typically the operator's XCom ``job_id``).

Poke mode and deferrable mode share the state logic and the failure policy of
:mod:`airflow_provider_ci.waiting`: a poke whose request fails (after the hook's own retries)
logs a warning and returns False, until ``max_consecutive_failures`` pokes in a row have
failed, exactly as the trigger counts its polls. Deferrable mode pokes once and, if the job is
still waiting, defers on the same trigger the operator uses. A Failed or Cancel job fails the
sensor (or skips it with ``soft_fail``) instead of returning False until the timeout, and
never counts as success.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, NoReturn

from airflow.providers.common.compat.sdk import (
    AirflowSensorTimeout,
    AirflowSkipException,
    BaseSensorOperator,
    conf,
)

from airflow_provider_ci import validation as check
from airflow_provider_ci.exceptions import CloudInfiniteError
from airflow_provider_ci.hooks.ci import CloudInfiniteHook
from airflow_provider_ci.waiting import (
    DEFAULT_MAX_CONSECUTIVE_FAILURES,
    FAILURE,
    SUCCESS,
    JobWatch,
    deferral_timeout,
    describe_result,
    event_error,
    job_error,
    read_event,
    wait_limit,
)

if TYPE_CHECKING:
    from airflow.sdk import Context


class CloudInfiniteJobSensor(BaseSensorOperator):
    """Succeeds when ``job_id`` is Success (returns its JobsDetail); fails on Failed and Cancel.

    Keeps waiting on Submitted, Running and Pause (a paused queue). ``poke_interval`` is also
    the deferred poll interval; mind CI's request rate limit when many sensors wait at once.
    Failed and Cancel raise :class:`CloudInfiniteJobError` (or skip the task with ``soft_fail``).
    The other sensor arguments (``timeout``, ``mode``, ``soft_fail``...) are Airflow's own.

    :param job_id: the CI job to wait for, e.g. the operator's XCom ``job_id`` (templated).
    :param bucket: the job's bucket as ``name-APPID``; default the connection's ``bucket``
        extra (templated).
    :param region: the bucket's region; default the connection's ``region`` extra (templated).
    :param deferrable: wait in the triggerer after the first poke; default
        ``[operators] default_deferrable``.
    :param tencent_ci_conn_id: the ``tencent_ci`` connection to use (templated).
    :param poke_interval: seconds (or a ``timedelta``) between two looks at the job (default 10).
    :param max_consecutive_failures: pokes in a row whose request failed (after the hook's own
        retries) before the sensor fails; until then such a poke logs a warning and returns
        False. A permanent error (4xx) fails it at once. In ``reschedule`` mode the count starts
        anew with each reschedule (default 5).
    """

    template_fields: Sequence[str] = ("job_id", "bucket", "region", "tencent_ci_conn_id")
    ui_color = "#dff1ff"

    def __init__(
        self,
        *,
        job_id: str,
        bucket: str | None = None,
        region: str | None = None,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        tencent_ci_conn_id: str = CloudInfiniteHook.default_conn_name,
        poke_interval: float | timedelta = 10.0,
        max_consecutive_failures: int = DEFAULT_MAX_CONSECUTIVE_FAILURES,
        **kwargs: Any,
    ) -> None:
        super().__init__(poke_interval=poke_interval, **kwargs)
        self.job_id = job_id
        self.bucket = bucket
        self.region = region
        self.deferrable = deferrable
        self.tencent_ci_conn_id = tencent_ci_conn_id
        self.max_consecutive_failures = check.failure_budget(max_consecutive_failures)
        self._detail: dict[str, Any] | None = None
        self._watch: JobWatch | None = None

    def _fail(self, error: Exception) -> NoReturn:
        if self.soft_fail:
            raise AirflowSkipException(str(error))
        raise error

    def poke(self, context: Context) -> bool:
        if self._watch is None or self._watch.job_id != self.job_id:
            self._watch = JobWatch(self.job_id, self.log, self.max_consecutive_failures)
        try:
            detail = CloudInfiniteHook(self.tencent_ci_conn_id).get_job(
                self.job_id, bucket=self.bucket, region=self.region
            )
        except CloudInfiniteError as exc:
            if self._watch.failed_poll(exc):
                raise
            return False
        outcome = self._watch.observe(detail)
        if outcome == FAILURE:
            self._fail(job_error(detail))
        if outcome == SUCCESS:
            self._detail = detail
            self.log.info(describe_result(detail))
            return True
        return False

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            super().execute(context)
            return self._detail
        if self.poke(context):
            return self._detail
        from airflow_provider_ci.triggers.job import CloudInfiniteJobTrigger  # only when deferring: cheap parse

        limit = wait_limit(self.timeout, self.execution_timeout)
        self.defer(
            trigger=CloudInfiniteJobTrigger(
                job_id=self.job_id,
                tencent_ci_conn_id=self.tencent_ci_conn_id,
                bucket=self.bucket,
                region=self.region,
                poll_interval=self.poke_interval,
                end_time=time.time() + limit,
                cancel_on_kill=False,  # the sensor did not start this job; stopping it is not its call
                max_consecutive_failures=self.max_consecutive_failures,
            ),
            method_name="execute_complete",
            timeout=deferral_timeout(limit, self.poke_interval),
        )

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """Resume after the trigger (a fresh instance: everything comes from ``event``)."""
        event = read_event(event)
        if event["status"] == "success":
            self.log.info(describe_result(event["detail"]))
            return event["detail"]
        if event["status"] == "timeout":  # as in poke mode: a sensor timeout is not retried
            self._fail(AirflowSensorTimeout(f"{event.get('message')} (sensor timeout {self.timeout:.0f} s)"))
        self._fail(event_error(event, self.job_id))

"""What "waiting for a job" means, once, for the trigger, the operator's sync wait and the sensor.

:class:`JobWatch` is fed each poll's outcome and answers whether the wait is over; it logs a
state the first time it is seen (not every poll), and counts failed polls in a row so that a
transient blip never ends a wait but a persistent failure does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from airflow_provider_ci.exceptions import CloudInfiniteJobError, CloudInfiniteThrottledError
from airflow_provider_ci.model import output_info
from airflow_provider_ci.states import FAILURE_STATES, WAITING_STATES, JobState
from airflow_provider_ci.transport import is_retryable

SUCCESS = "success"
FAILURE = "failure"
WAITING = "waiting"
#: Statuses of the single-job trigger's events; ``execute_complete`` rejects anything else.
EVENT_STATUSES = ("success", "error", "timeout")


def classify(detail: dict[str, Any]) -> str:
    """``success``, ``failure`` or ``waiting`` for a JobsDetail; unknown states keep waiting."""
    state = JobState.parse(detail.get("State"))
    if state is JobState.SUCCESS:
        return SUCCESS
    if state in FAILURE_STATES:
        return FAILURE
    return WAITING


def job_error(detail: dict[str, Any]) -> CloudInfiniteJobError:
    return CloudInfiniteJobError.from_detail(detail, detail.get("RequestId"))


def describe_result(detail: dict[str, Any]) -> str:
    info = output_info(detail)
    if not info:
        return f"CI job {detail.get('JobId')} succeeded"
    return (
        f"CI job {detail.get('JobId')} succeeded: {info['Object']} "
        f"({info['Format']}, {info['Width']}x{info['Height']}, {info['Size']} bytes)"
    )


class Log(Protocol):
    """What JobWatch needs of a logger: stdlib and Airflow's structlog loggers both fit."""

    def info(self, msg: Any, /, *args: Any) -> Any: ...
    def warning(self, msg: Any, /, *args: Any) -> Any: ...


@dataclass
class JobWatch:
    job_id: str
    log: Log
    max_consecutive_failures: int = 5
    failures: int = 0
    throttled: int = 0
    last: dict[str, Any] | None = None
    _seen: set[str | None] = field(default_factory=set)

    def observe(self, detail: dict[str, Any]) -> str:
        """Record a successful poll; return :func:`classify` of it."""
        self.failures = 0
        self.last = detail
        state = detail.get("State")
        if state not in self._seen:
            self._seen.add(state)
            self._log_state(state)
        return classify(detail)

    def failed_poll(self, exc: Exception) -> bool:
        """Record a failed poll; True when the wait should end on it.

        Permanent errors (4xx, bad settings) end it at once; transient ones only after
        ``max_consecutive_failures`` in a row. A throttle never ends it and does not count:
        the account is busy, the job and the service are fine, and the limiter slows down.
        """
        if isinstance(exc, CloudInfiniteThrottledError):
            self.throttled += 1
            return False
        if not is_retryable(exc):
            return True
        self.failures += 1
        self.log.warning("Polling CI job %s failed (%d in a row): %s", self.job_id, self.failures, exc)
        return self.failures >= self.max_consecutive_failures

    def _log_state(self, state: str | None) -> None:
        parsed = JobState.parse(state)
        if parsed is JobState.PAUSE:
            self.log.info("CI job %s is Pause: its queue is paused; waiting for it to resume", self.job_id)
        elif parsed in WAITING_STATES:
            self.log.info("CI job %s is %s", self.job_id, state)
        elif parsed is None:
            self.log.warning("CI job %s is in state %r, unknown to this provider; still waiting", self.job_id, state)
        else:
            self.log.info("CI job %s ended %s", self.job_id, state)

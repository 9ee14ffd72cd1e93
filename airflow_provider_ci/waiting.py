"""What "waiting for a job" means, once, for the triggers, the operators' sync waits and the sensor.

* :func:`classify` turns a JobsDetail into ``success``, ``failure`` or ``waiting``.
* :class:`PollFailures` is the one failure policy: a permanent error (4xx, bad settings) ends a
  wait at once, a transient one (5xx, timeouts) only after ``max_consecutive`` failed polls
  in a row, and a throttle never (the account is busy, not the job or the service). Ending
  a wait on a blip would fail the task, and a retry of it would bill a second job. The
  trigger, the batch trigger and the poke-mode sensor all count with it.
* :class:`JobWatch` feeds one job's polls through both, and logs a state the first time it is
  seen (not every poll). It keeps the last JobsDetail as bytes, not as the nested dicts: a
  triggerer holding ten thousand waits would otherwise keep ten thousand detail trees alive
  from one round to the next, every one of them promoted to the garbage collector's oldest
  generation, which then scans the whole process (docs/scaling.md).
* :func:`failure_fields` and :func:`event_error` are the one mapping from a failed poll or a
  trigger's event to what the task raises, so operator, sensor and batch operator agree.
* :func:`wait_limit` is the one deadline rule: the wait never outlives ``execution_timeout``,
  which Airflow does not apply to a deferred task by itself.
"""

from __future__ import annotations

import marshal
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Protocol

from airflow_provider_ci.exceptions import CloudInfiniteError, CloudInfiniteJobError, CloudInfiniteThrottledError
from airflow_provider_ci.model import output_info
from airflow_provider_ci.states import FAILURE_STATES, WAITING_STATES, JobState
from airflow_provider_ci.transport import is_retryable

SUCCESS = "success"
FAILURE = "failure"
WAITING = "waiting"
#: Statuses of the single-job trigger's events; ``execute_complete`` rejects anything else.
EVENT_STATUSES = ("success", "error", "timeout")
#: Statuses of the batch trigger's events.
BATCH_EVENT_STATUSES = ("success", "timeout")
#: The ``Code`` of a wait that ran out of time (not a service code).
WAIT_TIMEOUT = "WaitTimeout"
#: Failed polls in a row that end a wait (each poll already retried by the hook).
DEFAULT_MAX_CONSECUTIVE_FAILURES = 5
#: How far the deferral's own timeout trails the trigger's deadline: only a backstop.
BACKSTOP_SECONDS = 60.0


def classify(detail: dict[str, Any]) -> str:
    """``success``, ``failure`` or ``waiting`` for a JobsDetail; unknown states keep waiting."""
    state = JobState.parse(detail.get("State"))
    if state is JobState.SUCCESS:
        return SUCCESS
    if state in FAILURE_STATES:
        return FAILURE
    return WAITING


def failure_fields(answer: dict[str, Any] | Exception) -> dict[str, Any]:
    """``state``/``code``/``message``/``request_id`` of a failed job or a failed poll.

    The single trigger puts these in its error event, the batch trigger one record per job;
    :func:`event_error` and the batch summary read them back.
    """
    if isinstance(answer, Exception):
        return {
            "state": None,
            "code": getattr(answer, "code", None),
            "message": str(answer),
            "request_id": getattr(answer, "request_id", None),
        }
    return {
        "state": answer.get("State"),
        "code": answer.get("Code"),
        "message": answer.get("Message"),
        "request_id": answer.get("RequestId"),
    }


def job_error(detail: dict[str, Any]) -> CloudInfiniteJobError:
    """The error a Failed or Cancel JobsDetail raises."""
    return event_error({"job_id": detail.get("JobId"), **failure_fields(detail)})


def event_error(event: dict[str, Any], job_id: str | None = None) -> CloudInfiniteJobError:
    """The error an ``error`` or ``timeout`` event (or a :func:`failure_fields` record) raises."""
    return CloudInfiniteJobError(
        job_id=str(event.get("job_id") or job_id),
        state=event.get("state"),
        code=event.get("code"),
        message=event.get("message"),
        request_id=event.get("request_id"),
    )


def timeout_fields(job_id: str, detail: dict[str, Any] | None, seconds: float | None = None) -> dict[str, Any]:
    """The event fields of a wait that ran out of time, from the trigger or the sync wait alike."""
    when = "by its deadline" if seconds is None else f"after {seconds:.0f} s"
    return {
        "job_id": job_id,
        "state": (detail or {}).get("State"),
        "code": WAIT_TIMEOUT,
        "message": f"CI job {job_id} not finished {when}",
        "request_id": (detail or {}).get("RequestId"),
    }


def read_event(event: Any, statuses: tuple[str, ...] = EVENT_STATUSES) -> dict[str, Any]:
    """``event`` if it is a trigger event of this shape; else the task fails saying what came."""
    if not isinstance(event, dict) or event.get("status") not in statuses:
        raise CloudInfiniteError(f"Unexpected trigger event: {event!r}")
    return event


def wait_limit(timeout: float, execution_timeout: timedelta | None) -> float:
    """Seconds a wait may last: ``timeout``, cut to the task's ``execution_timeout``.

    Airflow applies ``execution_timeout`` to a running task, not to a deferred one; the
    trigger's deadline enforces it instead, so the task still ends on our terms (cancel, clear
    error) rather than waiting for a day-long default.
    """
    if execution_timeout is None:
        return timeout
    return min(timeout, execution_timeout.total_seconds())


def deferral_timeout(limit: float, poll_interval: float) -> timedelta:
    """The deferral's own timeout: a backstop behind the trigger's deadline, which fires first."""
    return timedelta(seconds=limit + poll_interval + BACKSTOP_SECONDS)


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

    def debug(self, msg: Any, /, *args: Any) -> Any: ...
    def info(self, msg: Any, /, *args: Any) -> Any: ...
    def warning(self, msg: Any, /, *args: Any) -> Any: ...


@dataclass(slots=True)
class PollFailures:
    """Failed polls in a row of one wait; see the module docstring for the policy."""

    max_consecutive: int = DEFAULT_MAX_CONSECUTIVE_FAILURES
    count: int = 0
    throttled: int = 0

    def record(self, exc: BaseException) -> bool:
        """Count a failed poll; True when the wait should end on it.

        A throttle (:class:`~airflow_provider_ci.exceptions.CloudInfiniteThrottledError`)
        neither ends the wait nor counts: the account is busy, the job and the service are
        fine, and the shared rate limiter slows down. It is counted in ``throttled``.
        """
        if isinstance(exc, CloudInfiniteThrottledError):
            self.throttled += 1
            return False
        if not is_retryable(exc):
            return True
        self.count += 1
        return self.count >= self.max_consecutive

    def reset(self) -> None:
        self.count = 0

    def describe(self, exc: BaseException) -> str:
        """Why the wait ended, for its error event."""
        return f"{self.count} polls in a row failed; last: {exc}" if self.count else str(exc)


@dataclass(slots=True)
class JobWatch:
    """One job's polls: the failure policy, the states seen (each logged once), the last detail."""

    job_id: str
    log: Log
    max_consecutive_failures: int = DEFAULT_MAX_CONSECUTIVE_FAILURES
    #: Made at the first failed poll: most waits never have one.
    _failures: PollFailures | None = field(default=None, init=False)
    #: The last JobsDetail, marshalled: bytes are not tracked by the garbage collector.
    _last: bytes | dict[str, Any] | None = field(default=None, init=False)
    #: States seen so far; a tuple of strings, which the garbage collector stops tracking.
    _seen: tuple[str | None, ...] = field(default=(), init=False)

    @property
    def failures(self) -> PollFailures:
        """The failure policy's count of this wait's failed polls."""
        if self._failures is None:
            self._failures = PollFailures(self.max_consecutive_failures)
        return self._failures

    @property
    def last(self) -> dict[str, Any] | None:
        """The last JobsDetail observed (a fresh copy), or None before the first."""
        if isinstance(self._last, bytes):
            detail: dict[str, Any] = marshal.loads(self._last)
            return detail
        return self._last

    def observe(self, detail: dict[str, Any]) -> str:
        """Record a successful poll; return :func:`classify` of it."""
        if self._failures is not None:
            self._failures.reset()
        self._last = _compact(detail)
        state = detail.get("State")
        if state not in self._seen:
            self._seen = (*self._seen, state)
            self._log_state(state)
        return classify(detail)

    def failed_poll(self, exc: BaseException) -> bool:
        """Record a failed poll, logging it; True when the wait should end on it.

        A throttle is logged at DEBUG only: it never ends the wait (see :class:`PollFailures`),
        and the shared rate limiter already warns when it slows down.
        """
        give_up = self.failures.record(exc)
        if isinstance(exc, CloudInfiniteThrottledError):
            self.log.debug("Polling CI job %s was throttled; the wait goes on: %s", self.job_id, exc)
        elif not give_up:
            self.log.warning(
                "Polling CI job %s failed (%d in a row, at most %d): %s",
                self.job_id,
                self.failures.count,
                self.failures.max_consecutive,
                exc,
            )
        return give_up

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


def _compact(detail: dict[str, Any]) -> bytes | dict[str, Any]:
    """``detail`` as marshal bytes (decoded answers are only dicts, lists, strings, numbers,
    booleans and None); anything marshal refuses is kept as it is."""
    try:
        return marshal.dumps(detail)
    except ValueError:
        return detail

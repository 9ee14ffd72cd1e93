"""Errors raised by the provider.

Each carries what a user needs to act (field and rule, or the service's Code, Message and
request id) and never a secret: messages are built only from fields named here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from airflow.sdk.exceptions import AirflowException


class CloudInfiniteError(AirflowException):
    """Base class of every error this provider raises."""


class CloudInfiniteValidationError(CloudInfiniteError, ValueError):
    """Bad input, found before any request was sent."""

    def __init__(self, field: str, rule: str) -> None:
        super().__init__(f"{field}: {rule}")
        self.field = field
        self.rule = rule


class CloudInfiniteServiceError(CloudInfiniteError):
    """The service answered with an error (an ``<Error>`` body, or a business error in a 200)."""

    def __init__(
        self,
        *,
        status: int,
        code: str | None,
        message: str | None,
        request_id: str | None,
        trace_id: str | None = None,
        operation: str = "",
    ) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.request_id = request_id
        self.trace_id = trace_id
        self.operation = operation
        where = f"{operation} " if operation else ""
        super().__init__(
            f"CI {where}failed: HTTP {status} {code or 'UnknownError'}: {message or '(no message)'} "
            f"(request id {request_id or 'unknown'})"
        )

    @property
    def retryable(self) -> bool:
        return self.status == 429 or self.status >= 500


class CloudInfiniteThrottledError(CloudInfiniteServiceError):
    """The account's request rate limit was hit (503 ``SlowDown``, 429, ``RequestLimitExceeded``).

    The request was refused before it was processed (a throttled submit created no job), so it
    is retried as is; the shared rate limiter slows down (:mod:`airflow_provider_ci.ratelimit`),
    and a throttled poll never counts against a wait.
    """

    #: Codes that mean "too many requests" in the CI/COS and wider Tencent Cloud API families.
    CODES = frozenset({"SlowDown", "RequestLimitExceeded"})

    @classmethod
    def matches(cls, status: int, code: str | None) -> bool:
        """Whether an error answer is a throttle: 429, or a throttling code with any status."""
        return status == 429 or code in cls.CODES or (code or "").startswith("RequestLimitExceeded.")

    @property
    def retryable(self) -> bool:
        return True


class CloudInfiniteTransportError(CloudInfiniteError):
    """No usable answer: the service was unreachable, timed out, reset, or sent an unreadable body.

    ``maybe_sent`` tells whether the service may have acted on the request anyway; only a
    connection that was never made proves it did not.
    """

    def __init__(self, message: str, *, maybe_sent: bool) -> None:
        super().__init__(message)
        self.maybe_sent = maybe_sent


class CloudInfiniteSubmitUncertainError(CloudInfiniteError):
    """A submit may or may not have created a job, and which job could not be told apart.

    Raised instead of re-sending, because a second POST would risk a second billed job.
    """

    def __init__(self, message: str, candidate_job_ids: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.candidate_job_ids = list(candidate_job_ids)


class CloudInfiniteJobNotFoundError(CloudInfiniteError):
    """The service does not know one or more job ids (``NonExistJobIds``)."""

    def __init__(self, job_ids: Sequence[str], found: Mapping[str, dict[str, Any]] | None = None) -> None:
        super().__init__(f"CI does not know job id(s): {', '.join(job_ids)}")
        self.job_ids = list(job_ids)
        self.found = dict(found or {})


class CloudInfiniteJobError(CloudInfiniteError):
    """A job ended Failed or Cancel (or could not be waited for)."""

    def __init__(
        self,
        *,
        job_id: str,
        state: str | None,
        code: str | None,
        message: str | None,
        request_id: str | None = None,
    ) -> None:
        self.job_id = job_id
        self.state = state
        self.code = code
        self.message = message
        self.request_id = request_id
        super().__init__(
            f"CI job {job_id} ended {state or 'unknown'}: {code or 'UnknownError'}: "
            f"{message or '(no message)'} (request id {request_id or 'unknown'})"
        )

    @classmethod
    def from_detail(cls, detail: Mapping[str, Any], request_id: str | None = None) -> CloudInfiniteJobError:
        return cls(
            job_id=str(detail.get("JobId")),
            state=detail.get("State"),
            code=detail.get("Code"),
            message=detail.get("Message"),
            request_id=request_id,
        )

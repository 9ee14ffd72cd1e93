"""Injected failures, so clients can be tested against the ways a real service misbehaves.

A fault affects the next ``count`` requests that match its optional ``method`` and ``path``
prefix (``job_failed`` instead affects the next ``count`` jobs created). Faults are taken in the
order they were added and at most one applies to a request. Kinds:

``status``
    Answer ``status`` (default 500) with the CI error body; nothing is processed.
``reset_before``
    Abort the TCP connection (RST) before anything is processed.
``reset_after``
    Process the request fully (a ``POST /jobs`` creates its job), then abort instead of
    answering: the case where a client cannot know whether its submit went through.
``latency``
    Sleep ``seconds`` before processing the request normally.
``slow_answer``
    Process the request fully, then sleep ``seconds`` before answering: a client that times
    out meanwhile cannot know that its submit created a job.
``malformed``
    Process normally, then answer 200 with a truncated body.
``business_error``
    Answer HTTP 200 with ``<Response><Code/><Message/><State>Failed</State></Response>``,
    the CI shape of an error that is not an HTTP error; nothing is processed.
``job_failed``
    The next ``count`` jobs created end ``Failed`` with ``code``/``message`` without running.

The set is shared between the server's event loop and test threads, hence the lock.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

KINDS = (
    "status",
    "reset_before",
    "reset_after",
    "latency",
    "slow_answer",
    "malformed",
    "business_error",
    "job_failed",
)

_DEFAULT_CODES = {"status": "InternalError", "business_error": "InvalidArgument", "job_failed": "InternalError"}
_STATUS_CODES = {429: "SlowDown", 503: "SlowDown"}


@dataclass
class Fault:
    """One injected failure; ``count`` is how many more requests (or jobs) it affects."""

    kind: str
    count: int = 1
    method: str | None = None
    path: str | None = None
    status: int = 500
    code: str | None = None
    message: str | None = None
    seconds: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"fault kind {self.kind!r} is not one of {', '.join(KINDS)}")
        if not isinstance(self.count, int) or self.count < 1:
            raise ValueError(f"fault count must be a positive integer, got {self.count!r}")
        if not isinstance(self.status, int) or not 400 <= self.status <= 599:
            raise ValueError(f"fault status must be an HTTP error status 400-599, got {self.status!r}")
        if not isinstance(self.seconds, int | float) or self.seconds < 0:
            raise ValueError(f"fault seconds must be a non-negative number, got {self.seconds!r}")
        if self.path is not None and not self.path.startswith("/"):
            raise ValueError(f"fault path must be a path prefix starting with '/', got {self.path!r}")
        self.method = self.method.upper() if self.method else None
        if self.code is None and self.kind in _DEFAULT_CODES:
            default = _DEFAULT_CODES[self.kind]
            self.code = _STATUS_CODES.get(self.status, default) if self.kind == "status" else default
        if self.message is None:
            self.message = f"injected {self.kind} fault"

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and (self.path is None or path.startswith(self.path))

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class Faults:
    """The active faults of one emulator."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def add(
        self,
        kind: str,
        *,
        count: int = 1,
        method: str | None = None,
        path: str | None = None,
        status: int = 500,
        code: str | None = None,
        message: str | None = None,
        seconds: float = 0.0,
    ) -> Fault:
        """Arm a fault (see the module docstring); returns it so a test can read ``count`` later."""
        fault = Fault(kind, count, method, path, status, code, message, seconds)
        with self._lock:
            self._faults.append(fault)
        return fault

    def add_json(self, payload: Any) -> list[Fault]:
        """Arm faults from ``POST /_emulator/faults``: one object or a list, same fields as :meth:`add`."""
        items = payload if isinstance(payload, list) else [payload]
        if not all(isinstance(item, dict) for item in items):
            raise ValueError("faults must be a JSON object or a list of objects")
        try:
            faults = [Fault(**item) for item in items]
        except TypeError as exc:
            raise ValueError(f"bad fault fields: {exc}") from None
        with self._lock:
            self._faults.extend(faults)
        return faults

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def active(self) -> list[Fault]:
        with self._lock:
            return list(self._faults)

    def __bool__(self) -> bool:
        """Lock-free emptiness check for the per-request fast path (a list read is atomic)."""
        return bool(self._faults)

    def take(self, method: str, path: str) -> Fault | None:
        """Consume one use of the first request fault matching ``method`` and ``path``."""
        return self._take(lambda f: f.kind != "job_failed" and f.matches(method, path))

    def take_job_failure(self) -> Fault | None:
        """Consume one use of the first ``job_failed`` fault, for a job being created."""
        return self._take(lambda f: f.kind == "job_failed")

    def _take(self, wanted: Callable[[Fault], bool]) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if wanted(fault):
                    fault.count -= 1
                    if fault.count == 0:
                        self._faults.remove(fault)
                    return fault
        return None

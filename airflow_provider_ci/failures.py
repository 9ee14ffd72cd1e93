"""Failed polls in a row: a transient blip never ends a wait, a persistent failure does.

The one rule every wait of this provider follows (job waits through
:class:`airflow_provider_ci.waiting.JobWatch`, key waits here): a poll whose request failed
after the hook's own retries logs a warning and the wait goes on, until
``max_consecutive_failures`` polls in a row have failed. Permanent errors (4xx, bad settings)
end the wait at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from airflow_provider_ci.transport import is_retryable

DEFAULT_MAX_CONSECUTIVE_FAILURES = 5


class Log(Protocol):
    """What the counter needs of a logger: stdlib and Airflow's structlog loggers both fit."""

    def warning(self, msg: Any, /, *args: Any) -> Any: ...


@dataclass
class ConsecutiveFailures:
    """Counts failed polls of ``what`` in a row; :meth:`succeeded` starts the count again."""

    what: str
    log: Log
    limit: int = DEFAULT_MAX_CONSECUTIVE_FAILURES
    count: int = 0

    def succeeded(self) -> None:
        self.count = 0

    def failed(self, exc: Exception) -> bool:
        """Record a failed poll; True when the wait must end on it."""
        if not is_retryable(exc):
            return True
        self.count += 1
        self.log.warning("Polling %s failed (%d in a row, limit %d): %s", self.what, self.count, self.limit, exc)
        return self.count >= self.limit

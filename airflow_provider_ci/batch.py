"""Many submits at once: bounded concurrency, and progress logged at a steady pace.

The rate is not decided here: every request goes through the account's shared limiter in the
transport (:mod:`airflow_provider_ci.ratelimit`); the worker count bounds how many are in flight.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from airflow_provider_ci.exceptions import CloudInfiniteError

log = logging.getLogger(__name__)


@dataclass
class Progress:
    """Logs ``done/total`` and the rate every ``every`` seconds, never one line per job."""

    total: int
    what: str
    every: float = 10.0
    done: int = 0
    _started: float = 0.0
    _last: float = 0.0

    def __post_init__(self) -> None:
        self._started = self._last = time.monotonic()

    def step(self, count: int = 1) -> None:
        self.done += count
        now = time.monotonic()
        if now - self._last >= self.every or self.done == self.total:
            self._last = now
            rate = self.done / max(now - self._started, 1e-9)
            log.info("%s %d/%d (%.1f/s)", self.what, self.done, self.total, rate)


async def submit_all(
    submit: Callable[..., Any],
    specs: Sequence[dict[str, Any]],
    *,
    concurrency: int,
    progress: Progress | None = None,
) -> list[dict[str, Any] | CloudInfiniteError]:
    """``await submit(**spec)`` for every spec with at most ``concurrency`` in flight.

    Results keep the order of ``specs``: a JobsDetail, or the error that spec ended with (after
    the hook's own retries), so one bad item never hides the others.
    """
    results: list[dict[str, Any] | CloudInfiniteError] = [CloudInfiniteError("not submitted")] * len(specs)
    indexes = iter(range(len(specs)))

    async def worker() -> None:
        for index in indexes:
            try:
                results[index] = await submit(**specs[index])
            except CloudInfiniteError as exc:
                results[index] = exc
            if progress is not None:
                progress.step()

    await asyncio.gather(*(worker() for _ in range(max(1, min(concurrency, len(specs))))))
    return results

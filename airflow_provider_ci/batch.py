"""Many submits at once: bounded concurrency under a client-side request rate limit.

CI allows 100 requests/s per account for asynchronous processing (50 overseas); a burst over
it earns 429s, which are retried but waste time and quota. The limiter spaces requests so the
cap is never crossed, and the worker count bounds how many are in flight.
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

#: Requests are spaced this much wider than 1/rate, so that scheduling jitter of a few ms can
#: never put rate + 1 requests in one second, while the achieved rate stays within 1 % of it.
SPACING_MARGIN = 1.01


class RateLimiter:
    """At most ``rate`` acquisitions per second, evenly spaced: no bursts, first come first served."""

    def __init__(self, rate: float) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.spacing = SPACING_MARGIN / rate
        self._next = 0.0
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        async with self._lock:
            loop = asyncio.get_running_loop()
            wait = self._next - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            self._next = loop.time() + self.spacing


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

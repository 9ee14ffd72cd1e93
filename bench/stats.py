"""Small statistics: percentiles, the busiest sliding window, and an event-loop lateness probe."""

from __future__ import annotations

import asyncio
import gc
import math
import time
from collections.abc import Sequence


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0-100): always a value that was actually observed."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def max_in_window(times: Sequence[float], width: float) -> int:
    """Most events in any half-open window ``[t, t + width)``: what a rate limiter must bound."""
    ordered = sorted(times)
    best, start = 0, 0
    for end, t in enumerate(ordered):
        while t - ordered[start] >= width:
            start += 1
        best = max(best, end - start + 1)
    return best


class LoopProbe:
    """Sleeps ``period`` in a loop and records how late each wake-up is, and when.

    Lateness is what any other coroutine on the loop (a triggerer's heartbeat, another
    trigger) would suffer: the longest stretch the loop spent without coming back to it.
    Each sample also records the loop thread's own CPU time over that stretch: a late wake-up
    with little of it was the thread waiting (for a core, or for the GIL), not working.
    """

    def __init__(self, period: float = 0.005) -> None:
        self.period = period
        self.samples: list[tuple[float, float]] = []
        #: Loop-thread CPU seconds over each sample's stretch, in the order of ``samples``.
        self.cpu: list[float] = []
        #: The whole process's CPU seconds (every thread) over each sample's stretch.
        self.process_cpu: list[float] = []
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before, cpu, process_cpu = loop.time(), time.thread_time(), time.process_time()
            await asyncio.sleep(self.period)
            self.samples.append((before, loop.time() - before - self.period))
            self.cpu.append(time.thread_time() - cpu)
            self.process_cpu.append(time.process_time() - process_cpu)

    def worst(self, after: float = -math.inf) -> float:
        """Worst lateness of the wake-ups that started sleeping at ``loop.time() >= after``."""
        return max((late for at, late in self.samples if at >= after), default=math.nan)

    def worst_apart_from(self, spans: Sequence[tuple[float, float]], longer_than: float = 0.005) -> float:
        """Worst lateness of the wake-ups whose sleep overlapped no span (start, seconds) longer
        than ``longer_than``: what the loop's own work cost, garbage collections aside."""
        stalls = [(start, start + took) for start, took in spans if took > longer_than]
        return max(
            (
                late
                for at, late in self.samples
                if not any(start < at + self.period + late and end > at for start, end in stalls)
            ),
            default=math.nan,
        )

    def worst_apart_from_cpu(
        self, spans: Sequence[tuple[float, float]], longer_than: float = 0.005
    ) -> tuple[float, float]:
        """(loop thread, whole process) CPU seconds during the wake-up :meth:`worst_apart_from` reports."""
        stalls = [(start, start + took) for start, took in spans if took > longer_than]
        candidates = [
            (late, cpu, process_cpu)
            for (at, late), cpu, process_cpu in zip(self.samples, self.cpu, self.process_cpu, strict=True)
            if not any(start < at + self.period + late and end > at for start, end in stalls)
        ]
        _, cpu, process_cpu = max(candidates, default=(math.nan, math.nan, math.nan))
        return cpu, process_cpu

    def worst_at(self) -> float:
        """``loop.time()`` at which the worst wake-up started sleeping."""
        return max(self.samples, key=lambda sample: sample[1], default=(math.nan, 0.0))[0]

    def percentile(self, q: float) -> float:
        return percentile([late for _, late in self.samples], q)


class GcWatch:
    """Records how long each garbage collection takes: a full collection of a process that has
    imported Airflow can stall the loop on its own, whatever the code on it does."""

    def __init__(self) -> None:
        self.pauses: list[tuple[int, float]] = []
        #: (``time.monotonic()`` at the start, seconds) of each collection, to tell GC stalls apart.
        self.spans: list[tuple[float, float]] = []
        self._started = 0.0
        self._started_at = 0.0

    def __enter__(self) -> GcWatch:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            self._started_at = time.monotonic()
        else:
            took = time.perf_counter() - self._started
            self.pauses.append((info["generation"], took))
            self.spans.append((self._started_at, took))

    def longest(self) -> tuple[int, float]:
        """(generation, seconds) of the longest collection."""
        return max(self.pauses, key=lambda pause: pause[1], default=(-1, 0.0))

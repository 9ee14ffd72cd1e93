"""One adaptive request-rate limiter per account and region per process, shared by every call.

CI allows 100 requests/s per account (50 overseas), and every hook, trigger and task of one
account shares it: a batch task's submits, a triggerer's polls, a sensor's pokes, in several
processes that know nothing of each other. Each process therefore keeps one limiter per
(SecretId, region) that every request goes through, sync or async, and that adapts:

* it starts at ``max_qps`` (the ceiling is known, unlike botocore's adaptive mode, which starts
  disabled until the first throttle) and spaces requests evenly, so no burst ever crosses it;
* a throttled answer (503 ``SlowDown``, 429, ``RequestLimitExceeded``) cuts the rate to
  ``BETA`` (0.8) of what was being sent (the measured send rate, if lower than the pace),
  once per congestion event: answers to requests that were sent before the last cut, or
  that had their send slot before it (several callers wait on slots reserved at the old
  pace), are the same event and do not cut again; for ``RECOVERY_CAP`` seconds after a cut the pace never runs ahead
  of twice the measured send rate (botocore caps it so for good, which would stretch a
  poller's bursty rounds forever): without it the cubic curve, steep once past ``K``, lets
  every process leap back to ``max_qps`` at once and storm the account again;
* after a cut the rate recovers along botocore's CUBIC curve,
  ``rate = SCALE * (t - t_cut - K)^3 + W_max`` with ``K = cbrt(W_max * (1 - BETA) / SCALE)``:
  fast while far below the rate that was throttled, slow near it, probing beyond it later.

So several uncoordinated processes each back off when the account's limit is hit and creep
back up, converging on a fair share of it instead of storming it (see docs/scaling.md).

The limiter hands out send times (a schedule, so sleeping late never loosens it; slots missed
in the last ``CATCH_UP`` seconds may be used late, spread out) and also
keeps the actual send times of the last ``max_qps`` requests: no window of ``WINDOW_GUARD``
seconds ever holds more than ``max_qps``, which leaves room for network jitter between here
and the service's own 1 s window. Its state is guarded by a ``threading.Lock`` held for
microseconds, so worker threads and an event loop can share it; waiting happens outside the
lock, in ``time.sleep`` or ``asyncio.sleep``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable

log = logging.getLogger(__name__)

#: Multiplicative decrease on a throttle (botocore's ``_BETA`` is 0.7: processes throttled together
#: cut together, and 0.7 left four of them at 88 % of the account's limit in B5; 0.8, 94 %).
BETA = 0.8
#: CUBIC scale constant (botocore's ``_SCALE_CONSTANT``).
SCALE = 0.4
#: The rate never drops below this many requests per second (botocore's minimum fill rate).
MIN_RATE = 0.5
#: Requests are paced this much below the current rate, and ``max_qps`` requests must span at
#: least this many seconds: the service counts arrivals, which network jitter can bunch up.
PACE_MARGIN = 1.015
WINDOW_GUARD = 1.015
#: Slots missed while every caller was busy (all requests in flight, a loaded machine) may be
#: used late, up to this many seconds' worth: otherwise a few ms of lateness per request would
#: be lost for good and the achieved rate would sag well below the rate paced at. They are
#: caught up at ``1 / CATCH_UP_SPACING`` times the pace, never back to back, and a limiter
#: that sat idle starts afresh: a burst is not only bunched at the service when it is sent, it
#: comes back through the window guard one second later, and every second after that (B2 saw
#: ten submits bunched at every hundredth, and the service refusing one).
CATCH_UP = 0.1
CATCH_UP_SPACING = 0.5
#: At most one "rate cut" warning per account and region in this many seconds.
LOG_EVERY = 30.0
#: The send rate actually achieved is measured over the sends of the last ``MEASURE_WINDOW``
#: seconds since the last pause longer than ``MEASURE_GAP``, once there are at least
#: ``MEASURE_MIN_SENDS`` of them: a cut must start from what was really sent, not from a
#: ceiling a busy or slow process never reached, or it would cut nothing. (botocore smooths
#: half-second buckets instead; a bucket that straddles an idle stretch and the start of a
#: burst reads a few requests per second, and a cut from there starved every process of B5
#: for seconds.) Recomputed at most every ``MEASURE_EVERY`` s.
MEASURE_WINDOW = 1.0
MEASURE_GAP = 0.25
MEASURE_MIN_SENDS = 10
MEASURE_EVERY = 0.05
#: Seconds after a cut during which the pace stays within twice the measured send rate.
RECOVERY_CAP = 30.0


class AdaptiveRateLimiter:
    """Paced token bucket with multiplicative decrease and CUBIC recovery; see the module docstring.

    :param max_qps: the ceiling, in requests per second; the rate starts there.
    :param name: what the limiter is for, in log lines (e.g. ``AKIDabcd…/ap-chongqing``).
    :param clock: monotonic seconds; tests may pass a fake one.
    """

    def __init__(self, max_qps: float, name: str = "", clock: Callable[[], float] = time.monotonic) -> None:
        if not max_qps > 0:
            raise ValueError(f"max_qps must be positive, got {max_qps!r}")
        self.name = name
        self.clock = clock
        self._lock = threading.Lock()
        self.max_qps = float(max_qps)
        self._rate = self.max_qps
        self._w_max = self.max_qps
        self._t_cut = -math.inf
        #: Requests sent up to here had their slot before the last cut: the same congestion event.
        self._event_until = -math.inf
        self._k = 0.0
        self._next = -math.inf
        #: When the last slot handed out comes, or came (late slots are spaced from it).
        self._last_slot = -math.inf
        self._sent: deque[float] = deque(maxlen=self._window_cap())
        self._last_warning = -math.inf
        self._measured: float | None = None
        self._measured_at = -math.inf
        #: Throttled answers seen, and how many of them cut the rate.
        self.throttles = 0
        self.cuts = 0
        #: Send times handed out (every request that went through), for tests and benchmarks.
        self.granted = 0

    def _window_cap(self) -> int:
        return max(1, math.floor(self.max_qps))

    # -- configuration -------------------------------------------------------------------------

    def set_max_qps(self, max_qps: float) -> None:
        """Change the ceiling (the latest caller's ``max_qps`` holds for the whole process)."""
        if not max_qps > 0:
            raise ValueError(f"max_qps must be positive, got {max_qps!r}")
        with self._lock:
            if max_qps == self.max_qps:
                return
            self.max_qps = float(max_qps)
            self._rate = min(self._rate, self.max_qps)
            self._w_max = min(self._w_max, self.max_qps)
            self._sent = deque(self._sent, maxlen=self._window_cap())

    @property
    def rate(self) -> float:
        """The rate requests are paced at now (after recovery so far), requests per second."""
        with self._lock:
            return self._current_rate(self.clock())

    # -- sending -------------------------------------------------------------------------------

    def acquire(self) -> float:
        """Block until a request may be sent; returns its send time (pass it to :meth:`throttled`)."""
        time.sleep(self._reserve())
        while True:
            wait, sent_at = self._release()
            if wait <= 0:
                return sent_at
            time.sleep(wait)

    async def aacquire(self) -> float:
        """:meth:`acquire` for coroutines: waits with ``asyncio.sleep``, never blocking the loop."""
        wait = self._reserve()
        if wait > 0:
            await asyncio.sleep(wait)
        while True:
            wait, sent_at = self._release()
            if wait <= 0:
                return sent_at
            await asyncio.sleep(wait)

    def _reserve(self) -> float:
        """Take the next slot of the schedule; seconds until it comes.

        Slots are handed out first come, first served, spaced at the current rate, so waiters
        never all wake at once and a caller that oversleeps does not push the others back;
        slots nobody took in the last ``CATCH_UP`` seconds may still be taken, at most
        ``CATCH_UP_SPACING`` of a slot apart (the window guard of :meth:`_release` still bounds
        every second).
        """
        with self._lock:
            now = self.clock()
            interval = PACE_MARGIN / self._current_rate(now)
            scheduled = self._next if self._next >= now - CATCH_UP else now  # idle: start afresh
            self._next = scheduled + interval
            slot = max(scheduled, self._last_slot + CATCH_UP_SPACING * interval, now)
            self._last_slot = slot
            return slot - now

    def _release(self) -> tuple[float, float]:
        """``(0, now)`` and the send recorded, unless ``max_qps`` sends already fall within
        ``WINDOW_GUARD`` seconds: then ``(seconds until the oldest leaves it, 0)``."""
        with self._lock:
            now = self.clock()
            if len(self._sent) == self._sent.maxlen and now - self._sent[0] < WINDOW_GUARD:
                return self._sent[0] + WINDOW_GUARD - now, 0.0
            self._sent.append(now)
            self.granted += 1
            return 0.0, now

    def _sent_rate(self, now: float) -> float | None:
        """Requests per second really sent over the last ``MEASURE_WINDOW`` s; None with too few to tell."""
        if now - self._measured_at >= MEASURE_EVERY:
            self._measured_at = now
            recent = 0
            first = last = now
            for sent in reversed(self._sent):
                if now - sent > MEASURE_WINDOW or first - sent > MEASURE_GAP:
                    break  # older than the window, or before a pause: idleness, not a send rate
                last = last if recent else sent
                first = sent
                recent += 1
            enough = recent >= MEASURE_MIN_SENDS and last > first
            self._measured = (recent - 1) / (last - first) if enough else None
        return self._measured

    # -- feedback ------------------------------------------------------------------------------

    def throttled(self, sent_at: float) -> None:
        """A request sent at ``sent_at`` was throttled: cut the rate, once per congestion event."""
        with self._lock:
            self.throttles += 1
            if sent_at < self._t_cut or sent_at <= self._event_until:
                return  # sent, or scheduled, before the last cut: the same event, already answered
            now = self.clock()
            rate = self._current_rate(now)
            self._measured_at = -math.inf  # measure now, not up to MEASURE_EVERY ago
            measured = self._sent_rate(now)
            if measured is not None:
                rate = min(rate, measured)
            self._w_max = rate
            self._rate = max(MIN_RATE, rate * BETA)
            self._t_cut = now
            self._k = (self._w_max * (1 - BETA) / SCALE) ** (1 / 3)
            self._event_until = max(self._next, now)  # slots already handed out at the old pace
            self._next = max(self._next, now + PACE_MARGIN / self._rate)  # no catching up right after a cut
            self.cuts += 1
            warn = now - self._last_warning >= LOG_EVERY
            if warn:
                self._last_warning = now
        if warn:
            log.warning(
                "CI throttled requests of %s: pacing them at %.1f/s (was %.1f/s), recovering gradually",
                self.name or "this account",
                self._rate,
                rate,
            )

    def _current_rate(self, now: float) -> float:
        """The CUBIC curve since the last cut, within [MIN_RATE, max_qps]."""
        if self._t_cut == -math.inf:
            return self._rate
        recovered = SCALE * (now - self._t_cut - self._k) ** 3 + self._w_max
        ceiling = self.max_qps
        if now - self._t_cut < RECOVERY_CAP:
            measured = self._sent_rate(now)
            if measured is not None:
                ceiling = min(ceiling, max(2 * measured, MIN_RATE))
        return min(ceiling, max(MIN_RATE, self._rate, recovered))


_LIMITERS: dict[tuple[str, str], AdaptiveRateLimiter] = {}
_REGISTRY_LOCK = threading.Lock()


def limiter_for(secret_id: str, region: str, max_qps: float) -> AdaptiveRateLimiter:
    """This process's limiter for ``(secret_id, region)``, created on first use at ``max_qps``.

    Every hook, trigger and task of the account in this process gets the same one; a caller
    asking for another ``max_qps`` changes its ceiling (one account, one region, one limit).
    """
    key = (secret_id, region)
    limiter = _LIMITERS.get(key)
    if limiter is None:
        with _REGISTRY_LOCK:
            limiter = _LIMITERS.get(key)
            if limiter is None:
                limiter = _LIMITERS[key] = AdaptiveRateLimiter(max_qps, f"{secret_id[:8]}…/{region}")
    if limiter.max_qps != max_qps:
        limiter.set_max_qps(max_qps)
    return limiter


def reset_limiters() -> None:
    """Forget every limiter of this process (tests, or after changing credentials)."""
    with _REGISTRY_LOCK:
        _LIMITERS.clear()

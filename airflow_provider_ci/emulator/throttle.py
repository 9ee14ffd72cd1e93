"""CI's per-account request rate limit, enforced the way the service does.

CI allows 100 requests/s per account for asynchronous processing (50 overseas; ci_api.md §6
and §12). The emulator keeps, per SecretId, the arrival times of the CI requests it admitted in
the last second (a sliding window, not fixed one-second buckets, so a client cannot squeeze
``2 × limit`` across a second boundary). A request over the limit is answered 503
``SlowDown`` (CI's documented frequency-control code; the status is the COS SDKs' reading of
it) before anything is looked at, so it changes nothing, and it does not use up quota itself:
a client that backs off gets the next free slot, however hard others hammer.

Only CI hosts are limited: COS object calls have their own, much higher limits.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Callable

from .errors import ApiError

#: The service's limit for mainland public-cloud regions (requests per second per account).
DEFAULT_QPS_LIMIT = 100
#: Seconds the sliding window spans.
WINDOW = 1.0
SLOW_DOWN = "SlowDown"


def slow_down(limit: int) -> ApiError:
    """503 ``SlowDown``, CI's answer to a request over the account's rate limit."""
    return ApiError(503, SLOW_DOWN, f"Please reduce your request rate: this account allows {limit} requests/s")


def check_limit(limit: object) -> int:
    """``limit`` as a request rate (0 = no limit); ``ValueError`` naming the rule otherwise."""
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise ValueError(f"qps_limit must be an integer >= 0 (0 turns the limit off), got {limit!r}")
    return limit


class AccountThrottle:
    """Admits at most ``limit`` requests per SecretId in any sliding window of one second.

    ``limit`` 0 admits everything. ``refused`` counts what was refused, per SecretId. ``clock``
    gives seconds (monotonic); tests may replace it to count without timing. Called on the
    server's event loop; the lock only guards a reset from another thread.
    """

    def __init__(self, limit: int = DEFAULT_QPS_LIMIT, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = check_limit(limit)
        self.clock = clock
        self._lock = threading.Lock()
        self._admitted: dict[str, deque[float]] = {}
        self.refused: Counter[str] = Counter()

    def set_limit(self, limit: int) -> None:
        """Change the limit at runtime; windows already filled count against the new one."""
        self.limit = check_limit(limit)

    def admit(self, account: str) -> None:
        """Record one request of ``account``, or raise 503 ``SlowDown`` if it is over the limit."""
        limit = self.limit
        if not limit:
            return
        now = self.clock()
        with self._lock:
            window = self._admitted.setdefault(account, deque())
            while window and now - window[0] >= WINDOW:
                window.popleft()
            if len(window) >= limit:
                self.refused[account] += 1
                raise slow_down(limit)
            window.append(now)

    @property
    def refused_total(self) -> int:
        return sum(self.refused.values())

    def clear_counts(self) -> None:
        """Forget the refusal counts (the windows stay: they are the service's memory of load)."""
        with self._lock:
            self.refused.clear()

    def reset(self) -> None:
        """Forget the counts and every account's window."""
        with self._lock:
            self.refused.clear()
            self._admitted.clear()

"""Everything one emulator knows, and the operations the HTTP control API and the Python
harness share (so ``POST /_emulator/reset`` and ``Emulator.reset()`` cannot drift apart).

Owned by the event loop thread; the harness marshals its calls onto that loop. The exception is
``faults``, which has its own lock so tests can arm faults without a round trip.
"""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

from .config import EmulatorConfig, check_ids_cap
from .faults import Faults
from .jobs import STATES, JobStore
from .scheduler import ACTIVE, PAUSED, Scheduler
from .storage import Storage
from .templates import TemplateStore
from .throttle import AccountThrottle

#: The request log keeps (at least) the most recent this many requests, so a long benchmark
#: cannot exhaust memory; the per-route counters in ``stats()`` count everything.
REQUEST_LOG_SIZE = 100_000


@dataclass(frozen=True)
class RequestRecord:
    """One request as the emulator saw it. ``status`` is ``None`` when the connection was
    aborted by a ``reset_before``/``reset_after`` fault (no answer was sent); ``fault`` names
    the fault that applied, if any; ``received`` is when it arrived (``time.time()``);
    ``user_agent`` tells which client sent it (who cancelled that job?)."""

    method: str
    host: str
    path: str
    query: dict[str, str]
    status: int | None
    route: str
    fault: str | None = None
    received: float = 0.0
    user_agent: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class EmulatorState:
    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.storage = Storage(config.data_dir)
        for bucket in config.buckets:
            self.storage.create_bucket(bucket)
        self.faults = Faults()
        #: CI's per-account request rate limit (``qps_limit``), and what it refused.
        self.throttle = AccountThrottle(config.qps_limit)
        #: Most job ids one ``GET /jobs/<ids>`` may name (0 = no cap).
        self.max_ids_per_get = config.max_ids_per_get
        #: A plain list, handed out live by ``Emulator.requests`` so tests can ``clear()`` it;
        #: appending and clearing a list are atomic under the GIL.
        self.requests: list[RequestRecord] = []
        self.request_counts: Counter[str] = Counter()
        #: Buckets whose asynchronous image processing was switched off (all others are on).
        self.pic_disabled: set[str] = set()
        self.executor = ThreadPoolExecutor(config.workers, thread_name_prefix="ci-emulator-job")
        self._fresh_jobs()

    def _fresh_jobs(self) -> None:
        self.jobs = JobStore()
        self.templates = TemplateStore()
        self.scheduler = Scheduler(self.jobs, self.storage, self.executor, self.config)

    def record(self, record: RequestRecord) -> None:
        self.requests.append(record)
        self.request_counts[record.route] += 1
        if len(self.requests) > 2 * REQUEST_LOG_SIZE:
            del self.requests[:REQUEST_LOG_SIZE]

    def clear_requests(self) -> None:
        """Empty the request log, the per-route counters and the count of throttled requests."""
        self.requests.clear()
        self.request_counts.clear()
        self.throttle.clear_counts()

    def set_limits(self, qps_limit: int | None = None, max_ids_per_get: int | None = None) -> None:
        """Change the per-account rate limit and/or the cap on ids per ``GET /jobs/<ids>``."""
        if max_ids_per_get is not None:
            self.max_ids_per_get = check_ids_cap(max_ids_per_get)
        if qps_limit is not None:
            self.throttle.set_limit(qps_limit)

    def limits(self) -> dict[str, int]:
        return {"qps_limit": self.throttle.limit, "max_ids_per_get": self.max_ids_per_get}

    def reset(self) -> None:
        """Forget jobs, templates, queues, faults, the request log and ``disable_pic_processing``
        switches; keep buckets and objects (they are the data directory, not emulator state)."""
        self.scheduler.close()
        self.faults.clear()
        self.clear_requests()
        self.throttle.reset()
        self.pic_disabled.clear()
        self._fresh_jobs()

    def set_queues_state(self, state: str, bucket: str | None = None) -> None:
        """Pause or resume the queue of ``bucket``, or of every bucket."""
        if state not in (ACTIVE, PAUSED):
            raise ValueError(f"queue state must be {ACTIVE} or {PAUSED}, got {state!r}")
        buckets = [bucket] if bucket is not None else list(self.storage.buckets())
        for name in buckets:
            if not self.storage.has_bucket(name):
                raise ValueError(f"no such bucket {name!r}")
            self.scheduler.set_queue_state(self.scheduler.queue_for(name), state)

    def set_pic_processing(self, bucket: str, enabled: bool) -> None:
        if not self.storage.has_bucket(bucket):
            raise ValueError(f"no such bucket {bucket!r}")
        if enabled:
            self.pic_disabled.discard(bucket)
        else:
            self.pic_disabled.add(bucket)

    def job_details(self, bucket: str | None = None) -> list[dict[str, Any]]:
        return [job.detail() for job in self.jobs.all(bucket)]

    def job_times(self, bucket: str | None = None) -> list[dict[str, Any]]:
        return [job.times() for job in self.jobs.all(bucket)]

    def stats(self) -> dict[str, Any]:
        return {
            "requests": dict(sorted(self.request_counts.items())),
            "jobs": {state: self.jobs.counts[state] for state in STATES},
            "buckets": list(self.storage.buckets()),
            "faults": [fault.to_json() for fault in self.faults.active()],
            "limits": self.limits(),
            "throttled": {"total": self.throttle.refused_total, "by_account": dict(self.throttle.refused)},
        }

    def close(self) -> None:
        self.scheduler.close()
        self.executor.shutdown(wait=False, cancel_futures=True)

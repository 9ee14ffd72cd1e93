"""The faults of the matrix: how each is armed on the emulator, and which jobs it should end badly.

Request faults come in bounded ``count`` bursts, so a run's delay is bounded too, and every
armed use must be consumed by the run (else the fault never reached the client and the run
proves nothing). Submit faults are armed before the run. Poll faults are armed when the run's
first wait begins: at once when the waits poll on the worker (the operator after its submit,
the sensor in poke mode), and when the first trigger starts in deferrable modes, so they reach
the triggerer rather than the one status check a task makes before deferring.

Queue faults run a background thread during the run: one resumes a paused queue a while after
the first wait on it begins, the other cancels jobs through the real signed API while tasks
wait on them in the paused queue, then resumes it. A sensor mode holds the queue paused until
its first wait begins, whatever the fault, so that the sensors have a job to wait for.

A fault that ends jobs badly names them (``targets``) from what the emulator or the canceller
did, never from what Airflow reported, so task outcomes are checked against an independent record.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_ci.emulator.control import Emulator

#: Seconds a paused queue stays paused after the first wait on it begins.
PAUSE_SECONDS = 1.0
#: A background action gives up (and resumes the queue) after this long, so no run hangs.
GIVE_UP_SECONDS = 60.0
INJECTED_CODE = "ReliabilityInjected"
#: The account's limit in the throttled row: a run's submits come back to back and each wait
#: polls every 0.2 s, so the client asks more than this of the service in every mode.
THROTTLED_QPS = 2


def run_jobs(emulator: Emulator, prefix: str) -> list[dict[str, Any]]:
    """The emulator's jobs whose input object is under ``prefix`` (one run's), in creation order."""
    return [job for job in emulator.jobs() if str((job.get("Input") or {}).get("Object", "")).startswith(prefix)]


@dataclass(frozen=True)
class Scenario:
    """One fault of the matrix.

    ``submit_faults`` / ``poll_faults``: keyword arguments of ``emulator.faults.add``.
    ``queue_action``: pauses the queue for the run, and runs in a thread to resume it.
    ``ends``: the final state of the jobs the fault hits (``Failed``, ``Cancel``), with the
    ``code`` the task's error must name; None when every job should succeed.
    ``qps_limit``: the account's rate limit on the emulator during the run (0: left as it is).
    ``hold_queue``: keep the queue paused until the run's first wait begins, in every mode.
    """

    key: str
    title: str
    submit_faults: tuple[dict[str, Any], ...] = ()
    poll_faults: tuple[dict[str, Any], ...] = ()
    queue_action: Callable[[FaultRun, threading.Event], None] | None = None
    ends: str | None = None
    code: str | None = None
    qps_limit: int = 0
    hold_queue: bool = False

    def hits(self, jobs: int) -> int:
        """How many of ``jobs`` this fault should end badly."""
        return max(1, jobs // 3) if self.ends else 0


@dataclass
class FaultRun:
    """One scenario applied to one DAG run: arms the faults, follows the waits, records the effect.

    ``deferrable``: waits happen in triggers (``on_defer`` is called as each starts).
    ``hold_queue``: keep the queue paused until the first wait begins, so there is a job to
    wait for (see ``tests.reliability.dag_runs.Mode``).
    """

    scenario: Scenario
    emulator: Emulator
    prefix: str
    jobs: int
    deferrable: bool
    hold_queue: bool = False
    #: Job ids the fault should end badly (their task instances must fail).
    targets: list[str] = field(default_factory=list)
    #: Why the fault did not fire as intended; empty when it did.
    misses: list[str] = field(default_factory=list)
    deferrals: int = 0
    #: Requests the emulator refused with 503 SlowDown during the run (a ``qps_limit`` scenario).
    throttled: int = 0
    _armed: list[Any] = field(default_factory=list)
    _waits: queue.Queue[str] = field(default_factory=queue.Queue)
    _seen: set[str] = field(default_factory=set)
    _polled: list[str] = field(default_factory=list)
    _scanned: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _limit_before: int = 0
    _throttled_before: int = 0

    def __post_init__(self) -> None:
        self.hold_queue = self.hold_queue or self.scenario.hold_queue

    @property
    def hits(self) -> int:
        return self.scenario.hits(self.jobs)

    def start(self) -> None:
        if self.scenario.qps_limit:
            self._limit(self.scenario.qps_limit)
        self._arm(self.scenario.submit_faults)
        if self.scenario.ends == "Failed":  # the emulator fails the next ``hits`` jobs created
            self._armed.append(self.emulator.faults.add("job_failed", count=self.hits, code=self.scenario.code))
        if not self.deferrable:  # the worker polls right after its submit
            self._arm(self.scenario.poll_faults)
        action = self.scenario.queue_action
        if action is None and self.hold_queue and not self.deferrable:
            # Waits on the worker: held until the first poll has seen its job waiting.
            action = resume_after_first_wait
        if action is not None or self.hold_queue:
            self.emulator.pause_queue()
        if action is not None:
            self._thread = threading.Thread(
                target=self._background, args=(action,), name=f"reliability-{self.scenario.key}", daemon=True
            )
            self._thread.start()

    def on_defer(self, job_id: str) -> None:
        """A trigger is about to wait for ``job_id`` (called on the test's thread)."""
        self.deferrals += 1
        if self.deferrals == 1:
            self._arm(self.scenario.poll_faults)
            if self.hold_queue and self.scenario.queue_action is None:
                self.emulator.resume_queue()
        self._waits.put(job_id)

    def next_wait(self, stop: threading.Event) -> str | None:
        """The job the next wait is for, once it begins; None if none begins in time.

        In a trigger, when it starts; on the worker (the operator polling after its submit,
        or a sensor poking), at the first answered poll of the job while the queue holds it
        (so that poll saw it waiting, and the task had to keep polling).
        """
        deadline = time.monotonic() + GIVE_UP_SECONDS
        while not stop.is_set() and time.monotonic() < deadline:
            if self.deferrable:
                try:
                    return self._waits.get(timeout=0.05)
                except queue.Empty:
                    continue
            for job_id in self._polled_while_paused():
                if job_id not in self._seen:
                    self._seen.add(job_id)
                    return job_id
            time.sleep(0.05)
        return None

    def _polled_while_paused(self) -> list[str]:
        """The run's jobs that a worker has polled (a clean 200 answer) and that are still paused."""
        records = list(self.emulator.requests)
        if len(records) < self._scanned:  # the request log was cleared
            self._scanned = 0
        new, self._scanned = records[self._scanned :], len(records)
        paused = {job["JobId"] for job in run_jobs(self.emulator, self.prefix) if job["State"] == "Pause"}
        for record in new:
            answered = record.status == 200 and record.fault is None
            if answered and record.method == "GET" and record.path.startswith(POLL["path"]):
                self._polled += record.path[len(POLL["path"]) :].split(",")
        return [job_id for job_id in self._polled if job_id in paused]

    def finish(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(GIVE_UP_SECONDS)
        self.emulator.resume_queue()
        if self.scenario.qps_limit:
            self._unlimit()
        left = [f"{fault.kind} x{fault.count}" for fault in self._armed if fault.count > 0]  # a used-up one is at 0
        if left:
            self.misses.append(f"armed faults never reached the client: {', '.join(left)}")
        if self.deferrable and not self.deferrals:
            self.misses.append("no task deferred: the triggerer's path (and its poll faults) went untested")
        if self.scenario.ends == "Failed":
            self.targets = [job["JobId"] for job in run_jobs(self.emulator, self.prefix)[: self.hits]]
        if len(self.targets) != self.hits:
            self.misses.append(f"the fault hit {len(self.targets)} jobs, expected {self.hits}")

    def _limit(self, qps: int) -> None:
        """Throttle the account at ``qps`` requests/s, counting refusals from now.

        The client's limiters start afresh, as in a new task or triggerer process: in
        ``dag.test()`` every task shares this process's limiter, and one that an earlier run
        slowed down would keep this run from reaching the limit at all.
        """
        from airflow_provider_ci.ratelimit import reset_limiters

        reset_limiters()
        self._limit_before, self._throttled_before = self.emulator.qps_limit, self.emulator.throttled
        self.emulator.qps_limit = qps

    def _unlimit(self) -> None:
        from airflow_provider_ci.ratelimit import reset_limiters

        self.throttled = self.emulator.throttled - self._throttled_before
        self.emulator.qps_limit = self._limit_before
        reset_limiters()  # the next run starts unthrottled, not from this run's cut rate
        if not self.throttled:
            self.misses.append(f"the account limit ({self.scenario.qps_limit}/s) never throttled a request")

    def _arm(self, faults: tuple[dict[str, Any], ...]) -> None:
        self._armed += [self.emulator.faults.add(**spec) for spec in faults]

    def _background(self, action: Callable[[FaultRun, threading.Event], None]) -> None:
        try:
            action(self, self._stop)
        except Exception as exc:
            self.misses.append(f"background action failed: {exc!r}")
        finally:
            self.emulator.resume_queue()


def resume_after_first_wait(run: FaultRun, stop: threading.Event) -> None:
    """Resume the paused queue ``PAUSE_SECONDS`` after the run's first wait on it begins."""
    if run.next_wait(stop) is None:
        run.misses.append("no task ever waited on the paused queue")
        return
    stop.wait(PAUSE_SECONDS)


def cancel_waited_jobs(run: FaultRun, stop: threading.Event) -> None:
    """Cancel, through the signed API, the jobs of the run's first ``hits`` waits, then resume.

    Each is cancelled while its task waits on it in the paused queue: on the worker, or in
    the triggerer for a deferred task.
    """
    from airflow_provider_ci.hooks.ci import CloudInfiniteHook

    hook = CloudInfiniteHook()
    try:
        while len(run.targets) < run.hits:
            job_id = run.next_wait(stop)
            if job_id is None:
                run.misses.append(f"only {len(run.targets)} of {run.hits} waits began before giving up")
                return
            hook.cancel_job(job_id)
            run.targets.append(job_id)
    finally:
        hook.close()


SUBMIT = {"method": "POST", "path": "/jobs"}
POLL = {"method": "GET", "path": "/jobs/"}  # GET /jobs/<ids>, not the listing a submit recovery uses

SCENARIOS = (
    Scenario(
        "5xx-burst",
        "5xx burst (2× 503 ServiceUnavailable on submit, 2× 500 on poll)",
        # Not SlowDown (the emulator's default 503 code): a 503 that may have created the job.
        submit_faults=({"kind": "status", "status": 503, "code": "ServiceUnavailable", "count": 2, **SUBMIT},),
        poll_faults=({"kind": "status", "status": 500, "count": 2, **POLL},),
    ),
    Scenario(
        "429-burst",
        "429 burst (2× on submit, 2× on poll)",
        submit_faults=({"kind": "status", "status": 429, "count": 2, **SUBMIT},),
        poll_faults=({"kind": "status", "status": 429, "count": 2, **POLL},),
    ),
    Scenario(
        "reset-before-record",
        "connection reset before the job is recorded (2× on submit)",
        submit_faults=({"kind": "reset_before", "count": 2, **SUBMIT},),
    ),
    Scenario(
        "reset-after-record",
        "connection reset after the job is recorded (2× on submit)",
        submit_faults=({"kind": "reset_after", "count": 2, **SUBMIT},),
    ),
    Scenario(
        "latency-5s",
        "5 s latency (1 submit, 1 poll)",
        submit_faults=({"kind": "latency", "seconds": 5.0, **SUBMIT},),
        poll_faults=({"kind": "latency", "seconds": 5.0, **POLL},),
    ),
    Scenario(
        "malformed-xml",
        "malformed XML answer (1 submit, 1 poll)",
        submit_faults=({"kind": "malformed", **SUBMIT},),
        poll_faults=({"kind": "malformed", **POLL},),
    ),
    Scenario("job-failed", "job Failed (a third of the jobs)", ends="Failed", code=INJECTED_CODE),
    Scenario("queue-paused", "queue paused, then resumed", queue_action=resume_after_first_wait),
    Scenario(
        "cancelled-remotely",
        "job cancelled remotely while queued (a third of the jobs)",
        queue_action=cancel_waited_jobs,
        ends="Cancel",
    ),
    Scenario(
        "account-throttled",
        f"account throttled (emulator limit {THROTTLED_QPS} requests/s, below the run's load: 503 SlowDown)",
        qps_limit=THROTTLED_QPS,
        # The throttled client is slow enough that a deferrable operator's one check before
        # deferring would find its job already over: the triggers would never wait at all.
        hold_queue=True,
    ),
)

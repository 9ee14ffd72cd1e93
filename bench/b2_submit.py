"""B2 batch submit: ``submit_all`` through the hook vs a raw httpx loop, and the ``max_qps`` limiter.

The throughput part lifts the shared limiter's ceiling out of the way (``max_qps`` far above
what one client can send: its bookkeeping still runs and counts as client cost); the rate part
runs at ``max_qps=100`` against the emulator enforcing the service's 100/s.

The hook validates, builds XML, signs and parses every submit; the raw loop replays one
pre-signed request. Both use one httpx client at the same concurrency against the same
emulator process, in ABBA order so drift on a noisy machine hits both alike.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airflow_provider_ci.batch import submit_all
from airflow_provider_ci.hooks.ci import CloudInfiniteHook
from airflow_provider_ci.ratelimit import AdaptiveRateLimiter, reset_limiters
from bench.emulator import CONN_ENV, INPUT_KEY, CpuMeter, EmulatorProcess, Knobs
from bench.rawload import RULE, replay_httpx, signed, submit_request
from bench.report import Goal, Section, Table, num, ratio
from bench.stats import max_in_window, percentile

SUBMITS = 10_000
#: httpx is fastest at about this many requests in flight on one client (see E0).
CONCURRENCY = 8
#: Alternating runs, an equal share of the submits each, so drift hits both clients alike.
ORDER = ("raw", "hook", "hook", "raw") * 5
RATE_SUBMITS = 1_000
#: The batch operator's default ``max_concurrency``, for the rate part (a batch task as users run it).
OPERATOR_CONCURRENCY = 16
MAX_QPS = 100.0
#: Achieved rate the issue asks of one batch task at ``max_qps=100`` (today's was 92/s).
RATE_TARGET = 97.0
#: A ceiling no single client reaches: the throughput part measures cost, not the limit.
UNLIMITED_QPS = 1_000_000.0
#: Submitted jobs never start: only the submit path is measured.
KNOBS = Knobs(queue_delay=86400, run_time=0, workers=1)


def _specs(count: int, tag: str) -> list[dict[str, Any]]:
    return [
        {"input_object": INPUT_KEY, "output_object": f"output/{tag}/{i}.png", "process_rule": RULE}
        for i in range(count)
    ]


async def _hook_submits(
    specs: list[dict[str, Any]], max_qps: float, concurrency: int = CONCURRENCY
) -> tuple[float, int]:
    """(seconds, failed submits) for ``submit_all`` through a fresh hook, as a batch task would."""
    hook = CloudInfiniteHook(max_qps=max_qps)
    try:
        started = time.perf_counter()
        results = await submit_all(hook.asubmit_pic_process_job, specs, concurrency=concurrency)
        return time.perf_counter() - started, sum(not isinstance(r, dict) for r in results)
    finally:
        await hook.aclose()


@dataclass(frozen=True)
class Segment:
    client: str
    submits: int
    seconds: float
    cpu: float
    errors: int
    emulator_cpu: float

    @property
    def rate(self) -> float:
        return self.submits / self.seconds


def _throughput(emulator: EmulatorProcess) -> list[Segment]:
    """Raw and hook submits in ``ORDER``, an equal share each time."""
    prepared = signed(emulator.url, submit_request())
    share = SUBMITS // ORDER.count("raw")
    segments = []
    for step, client in enumerate(ORDER):
        meter, cpu = CpuMeter(emulator), time.process_time()
        if client == "raw":
            load = asyncio.run(replay_httpx(prepared, concurrency=CONCURRENCY, total=share))
            seconds, errors = load.seconds, load.errors
        else:
            seconds, errors = asyncio.run(_hook_submits(_specs(share, f"b2-{step}"), UNLIMITED_QPS))
        segments.append(Segment(client, share, seconds, time.process_time() - cpu, errors, meter.share()))
    return segments


def _pair_ratios(segments: list[Segment]) -> list[float]:
    """Hook ÷ raw throughput of each adjacent (raw, hook) pair: drift between pairs cancels."""
    ratios = []
    for first, second in zip(segments[0::2], segments[1::2], strict=True):
        by_client = {first.client: first, second.client: second}
        ratios.append(by_client["hook"].rate / by_client["raw"].rate)
    return ratios


def _row(label: str, segments: list[Segment]) -> tuple[str, ...]:
    submits = sum(s.submits for s in segments)
    seconds = sum(s.seconds for s in segments)
    return (
        label,
        f"{submits:,}",
        num(seconds),
        num(submits / seconds, 0),
        num(sum(s.cpu for s in segments) / submits * 1e6, 0),
        f"{sum(s.emulator_cpu * s.seconds for s in segments) / seconds:.0%}",
        str(sum(s.errors for s in segments)),
    )


def _rate_limited(emulator: EmulatorProcess) -> tuple[list[float], list[float], float, int, int]:
    """Arrival times at the emulator (enforcing 100/s) of ``RATE_SUBMITS`` submits under ``max_qps``,
    the times the limiter let each one go (wall clock, to compare), the client's seconds and
    failures, and the emulator's refusals."""
    reset_limiters()
    # Forget the throughput part's 10,000 jobs and request records: a Python server holding them
    # pauses for its garbage collections, queues what arrives meanwhile and then stamps it all
    # at once, which bunches arrivals the client spaced (release -> arrival tails of 100+ ms).
    emulator.reset()
    emulator.set_limits(qps_limit=int(MAX_QPS))
    released: list[float] = []
    acquire = AdaptiveRateLimiter.aacquire

    async def recorded(self: AdaptiveRateLimiter) -> float:
        sent_at = await acquire(self)
        released.append(time.time())
        return sent_at

    AdaptiveRateLimiter.aacquire = recorded  # type: ignore[method-assign]
    try:
        seconds, errors = asyncio.run(_hook_submits(_specs(RATE_SUBMITS, "b2-qps"), MAX_QPS, OPERATOR_CONCURRENCY))
        requests = [r for r in emulator.requests() if r["method"] == "POST" and r["path"] == "/jobs"]
        throttled = emulator.throttled()
    finally:
        AdaptiveRateLimiter.aacquire = acquire  # type: ignore[method-assign]
        emulator.set_limits(qps_limit=0)
    arrivals = sorted(r["received"] for r in requests)
    return arrivals, sorted(released), seconds, errors, throttled


def _rate_report(
    arrivals: list[float], released: list[float], seconds: float, errors: int, throttled: int
) -> tuple[list[tuple[str, str]], list[Goal]]:
    achieved = (len(arrivals) - 1) / (arrivals[-1] - arrivals[0]) if len(arrivals) > 1 else 0.0
    busiest = max_in_window(arrivals, 1.0)
    # The n-th release against the n-th arrival: how far apart the client's limiter and the
    # emulator's clock see the same traffic (scheduling of both processes, the network stack).
    offsets = [(a - r) * 1000 for a, r in zip(arrivals, released, strict=False)]
    rows = [
        ("most requests the limiter let go in any 1 s window", str(max_in_window(released, 1.0))),
        (
            "release → arrival at the emulator, ms: p50 / p99 / max",
            f"{percentile(offsets, 50):.1f} / {percentile(offsets, 99):.1f} / {max(offsets, default=0):.1f}",
        ),
        ("submits arrived at the emulator", f"{len(arrivals):,} (failed: {errors})"),
        ("refused by the emulator's 100/s limit (503 SlowDown)", str(throttled)),
        ("client wall time, s", num(seconds)),
        ("achieved rate at the emulator, requests/s", num(achieved, 2)),
        ("most requests in any 1 s window", str(busiest)),
    ]
    goals = [
        Goal(
            f"achieved rate, max_qps={MAX_QPS:g}",
            f"≥ {RATE_TARGET:g}/s",
            f"{achieved:.2f}/s",
            achieved >= RATE_TARGET,
        ),
        Goal("most requests in any 1 s window", f"≤ {MAX_QPS:g}", str(busiest), busiest <= MAX_QPS),
    ]
    return rows, goals


def run() -> Section:
    with tempfile.TemporaryDirectory(prefix="bench-b2-") as tmp, EmulatorProcess(Path(tmp) / "data", KNOBS) as emu:
        os.environ[CONN_ENV] = emu.connection()
        reset_limiters()
        segments = _throughput(emu)
        arrivals, released, qps_seconds, qps_errors, qps_throttled = _rate_limited(emu)
    ratios = _pair_ratios(segments)
    median = statistics.median(ratios)
    rows = [
        _row("raw httpx, pre-signed", [s for s in segments if s.client == "raw"]),
        _row("`submit_all` + `CloudInfiniteHook()`", [s for s in segments if s.client == "hook"]),
    ]
    qps_rows, qps_goals = _rate_report(arrivals, released, qps_seconds, qps_errors, qps_throttled)
    total = (sum(s.rate for s in segments if s.client == "hook")) / sum(s.rate for s in segments if s.client == "raw")
    goals = [Goal("hook throughput ÷ raw (median of pairs)", "≥ 0.8", ratio(median), median >= 0.8), *qps_goals]
    return Section(
        "b2",
        "Batch submit",
        f"{SUBMITS:,} `POST /jobs`, {CONCURRENCY} in flight on one httpx client, against one emulator process "
        f"({KNOBS}): `airflow_provider_ci.batch.submit_all(hook.asubmit_pic_process_job, specs, "
        f"concurrency={CONCURRENCY})` with `CloudInfiniteHook(max_qps={UNLIMITED_QPS:g})` (the shared "
        "limiter's ceiling out of reach, its bookkeeping still paid), vs a raw `httpx.AsyncClient` "
        "POST loop replaying the same XML body with one `Authorization` computed once by "
        "`airflow_provider_ci.transport.prepare` (the signature covers method, path and headers, not the body, "
        f"and stays valid 15 min). Run as (raw, hook, hook, raw) × {len(ORDER) // 4}, "
        f"{SUBMITS // ORDER.count('raw'):,} submits each time; the goal uses the median "
        "of the hook ÷ raw ratios of adjacent pairs, so a noisy stretch skews one pair, not the figure. Client CPU "
        "is this process's `time.process_time`. Then "
        f"{RATE_SUBMITS:,} submits through `CloudInfiniteHook(max_qps={MAX_QPS:g})`, {OPERATOR_CONCURRENCY} in flight "
        "(the batch operator's default), against the emulator "
        f"enforcing the service's {MAX_QPS:g}/s (`--qps-limit`), timed by the emulator's arrival times.",
        [
            Table(
                ("client", "submits", "seconds", "submits/s", "client CPU µs/submit", "emulator CPU", "errors"),
                rows,
                "throughput",
            ),
            Table(("", ""), qps_rows, f"max_qps={MAX_QPS:g}"),
        ],
        goals,
        notes=[
            f"Hook ÷ raw throughput of each adjacent pair: {', '.join(f'{r:.2f}' for r in ratios)} "
            f"(of the mean rates: {total:.2f}).",
            f"Concurrency {CONCURRENCY}: one httpx client is fastest at about that many in flight and slows "
            "down beyond (E0); both sides use the same.",
            "Rate part: the limiter never lets more than max_qps go in any 1.015 s; the emulator counts arrivals "
            "by its own clock, after both processes have been scheduled. Where the release → arrival offset's tail "
            "exceeds that 15 ms margin (a loaded machine), the emulator sees bunched arrivals, throttles some, and the "
            "limiter cuts its rate: what the achieved rate then loses is this machine's scheduling, not pacing.",
        ],
    )

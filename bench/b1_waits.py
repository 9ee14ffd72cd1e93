"""B1 many waits: 1,000 and 10,000 deferred-job waits in one event loop, coalesced vs one request per job.

Every mode runs the real ``CloudInfiniteJobTrigger`` in a fresh client process against the same
emulator process; at 1,000 waits only the connection's ``poll_batch_size`` differs (50, the
default, vs 1, what a provider without coalescing does: one request per job per round). At
10,000 only the coalesced mode runs (one request per job would take 100 s a round at CI's 100/s).
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from airflow_provider_ci.batch import submit_all
from airflow_provider_ci.hooks.ci import CloudInfiniteHook
from airflow_provider_ci.model import jobs_page
from airflow_provider_ci.ratelimit import reset_limiters
from airflow_provider_ci.transport import ApiRequest, ApiResponse, read_response
from bench.b1_client import MARK
from bench.emulator import CONN_ENV, INPUT_KEY, CpuMeter, EmulatorProcess, Knobs
from bench.rawload import RULE, signed
from bench.report import Section

INTERVAL = 2.0
#: 500 jobs run at a time for 1 s each: 1,000 jobs end within ~2 s, 10,000 over about 20 s.
KNOBS = Knobs(queue_delay=0.05, run_time=1.0, workers=500)
#: Label -> (waits, connection extra, gc.freeze() at start-up). The last mode is not the provider
#: as users run it: it shows what a deployment-level ``gc.freeze()`` in the triggerer adds.
MODES: dict[str, tuple[int, dict[str, Any], bool]] = {
    "1,000 coalesced (batch 50)": (1_000, {}, False),
    "1,000 one request per job (batch 1)": (1_000, {"poll_batch_size": 1}, False),
    "10,000 coalesced (batch 50)": (10_000, {}, False),
    "10,000 coalesced, deployment gc.freeze() (not the goal)": (10_000, {}, True),
}
#: Waits still open this long after the start are given up on.
CAP = 60.0
CHILD_TIMEOUT = CAP + 240.0
#: Set-up submits (not measured) skip the client-side limit; the emulator enforces none here.
SETUP_QPS = 1_000_000.0


@dataclass
class ModeResult:
    """What one mode's client reported, plus what the emulator saw meanwhile."""

    waits: int
    child: dict[str, Any]
    gets: int
    ids_asked: int
    latencies: list[float]
    emulator_cpu: float

    @property
    def per_round(self) -> float:
        return self.gets / max(self.child["rounds"], 1)

    @property
    def wall(self) -> float:
        return float(self.child["ended"] - self.child["started"])

    @property
    def rss_per_wait_kb(self) -> float:
        return max(0, self.child["rss_peak_kb"] - self.child["rss_before_kb"]) / self.waits

    @property
    def successes(self) -> int:
        return sum(status == "success" for _, status, _ in self.child["events"])


def _submit(count: int, prefix: str) -> list[str]:
    specs = [
        {"input_object": INPUT_KEY, "output_object": f"output/{prefix}/{i}.png", "process_rule": RULE}
        for i in range(count)
    ]

    async def go() -> list[str]:
        hook = CloudInfiniteHook(max_qps=SETUP_QPS)
        try:
            results = await submit_all(hook.asubmit_pic_process_job, specs, concurrency=8)
        finally:
            await hook.aclose()
        return [result["JobId"] for result in results if isinstance(result, dict)]

    reset_limiters()
    ids = asyncio.run(go())
    if len(ids) != count:
        raise RuntimeError(f"only {len(ids)} of {count} submits succeeded")
    return ids


def _wait_until_over(emulator: EmulatorProcess, job_id: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while emulator.job_times()[job_id]["ended"] is None:
        if time.monotonic() > deadline:
            raise TimeoutError(f"warm-up job {job_id} did not end")
        time.sleep(0.05)


def _run_client(
    emulator: EmulatorProcess, tmp: Path, extra: dict[str, Any], ids: list[str], warm: str, freeze: bool
) -> dict[str, Any]:
    """Start the client, release the queue once it waits, return its result; always reaped."""
    (tmp / "ids.json").write_text(json.dumps(ids))
    env = {**os.environ, CONN_ENV: emulator.connection(**extra)}
    cmd = [sys.executable, "-m", "bench.b1_client", "--ids", str(tmp / "ids.json"), "--warm", warm]
    cmd += ["--interval", str(INTERVAL), "--cap", str(CAP), *(["--freeze"] if freeze else [])]
    log = tmp / "client.log"
    with log.open("wb") as stderr:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=stderr, env=env, text=True)
    watchdog = threading.Timer(CHILD_TIMEOUT, proc.kill)
    watchdog.start()
    try:
        assert proc.stdout is not None
        messages = (json.loads(line[len(MARK) :]) for line in proc.stdout if line.startswith(MARK))
        if "ready" in next(messages, {}):
            emulator.set_queue("Active")
            result: dict[str, Any] = next(messages, {})
            if "events" in result:
                return result
        raise RuntimeError(f"the B1 client failed: {log.read_text(errors='replace')[-3000:]}")
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def _decode_ms(emulator: EmulatorProcess, ids: list[str]) -> float:
    """CPU ms to decode one answer to ``GET /jobs/<50 ids>``: what a poll round does on the loop per batch."""
    prepared = signed(emulator.url, ApiRequest("GET", f"/jobs/{','.join(ids[:50])}", "get jobs"))
    raw = httpx.get(prepared.url, headers=prepared.headers)
    response = ApiResponse(raw.status_code, dict(raw.headers), raw.content)
    best = math.inf
    for _ in range(20):
        began = time.process_time()
        jobs_page(read_response(response, "get jobs").data)
        best = min(best, time.process_time() - began)
    return best * 1000


def _run_mode(
    emulator: EmulatorProcess, tmp: Path, tag: str, waits: int, extra: dict[str, Any], freeze: bool
) -> ModeResult:
    emulator.reset()
    (warm,) = _submit(1, f"{tag}-warm")
    _wait_until_over(emulator, warm)
    emulator.set_queue("Paused")
    ids = _submit(waits, tag)
    emulator.clear_requests()
    meter = CpuMeter(emulator)
    child = _run_client(emulator, tmp, extra, ids, warm, freeze)
    cpu = meter.share()
    ended = {job_id: times["ended"] for job_id, times in emulator.job_times().items()}
    polls = [
        r["path"].removeprefix("/jobs/").split(",")
        for r in emulator.requests()
        if r["method"] == "GET" and r["path"].startswith("/jobs/") and r["received"] >= child["started"]
    ]
    latencies = [at - ended[job_id] for job_id, _, at in child["events"]]
    latencies += [math.inf] * (waits - len(latencies))  # never detected within the cap
    child["decode_ms"] = _decode_ms(emulator, ids)
    return ModeResult(waits, child, len(polls), sum(map(len, polls)), latencies, cpu)


def run() -> Section:
    from bench.b1_report import section

    with tempfile.TemporaryDirectory(prefix="bench-b1-") as tmp, EmulatorProcess(Path(tmp) / "data", KNOBS) as emu:
        os.environ[CONN_ENV] = emu.connection()
        results = {
            name: _run_mode(emu, Path(tmp), f"mode{i}", waits, extra, freeze)
            for i, (name, (waits, extra, freeze)) in enumerate(MODES.items())
        }
        return section(results, str(KNOBS))

"""B5 shared limit: several uncoordinated processes of one account against the service's 100/s.

Four client processes (``bench/b5_client.py``) each submit 2,500 jobs through the batch path
(``submit_all`` + ``CloudInfiniteHook(max_qps=100)``, 16 in flight) at the same moment, against
one emulator enforcing ``--qps-limit 100``: together they ask four times what the account
allows. Run twice: with the adaptive limiter, and with a fixed one (paced at 100/s per process,
never slowing down) as the baseline. Every job is counted at the emulator by its output key.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.b5_client import MARK
from bench.emulator import CONN_ENV, CpuMeter, EmulatorProcess, Knobs
from bench.report import Goal, Section, Table, num
from bench.stats import max_in_window

PROCESSES = 4
SUBMITS = 2_500
LIMIT = 100
#: Jobs never start: only submits are measured. The emulator enforces the service's limit.
KNOBS = Knobs(queue_delay=86400, run_time=0, workers=1, qps_limit=LIMIT)
#: Seconds the clients get to import Airflow before they all start at once.
START_DELAY = 20.0
CHILD_TIMEOUT = 900.0
MODES = {"adaptive (shared limiter)": [], "fixed 100/s per process (baseline)": ["--fixed"]}


@dataclass
class ModeResult:
    clients: list[dict[str, Any]]
    posts: int
    throttled: int
    created: int
    distinct: int
    busiest: int
    seconds: float
    emulator_cpu: float

    @property
    def ok(self) -> int:
        return sum(c["ok"] for c in self.clients)

    @property
    def goodput(self) -> float:
        return self.created / self.seconds if self.seconds else 0.0

    @property
    def throttled_share(self) -> float:
        return self.throttled / self.posts if self.posts else 0.0

    @property
    def lost(self) -> int:
        return PROCESSES * SUBMITS - self.distinct

    @property
    def duplicated(self) -> int:
        return self.created - self.distinct


def _run_mode(emulator: EmulatorProcess, flags: list[str], scratch: Path) -> ModeResult:
    emulator.reset()
    start_at = time.time() + START_DELAY
    procs = []
    for index in range(PROCESSES):
        out = (scratch / f"b5-{index}.out").open("w+")
        command = [sys.executable, "-m", "bench.b5_client", "--index", str(index), "--count", str(SUBMITS)]
        command += ["--start-at", str(start_at), *flags]
        procs.append((subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=os.environ.copy()), out))
    meter = None
    clients = []
    try:
        time.sleep(max(0.0, start_at - time.time()))
        meter = CpuMeter(emulator)
        for proc, out in procs:
            proc.wait(CHILD_TIMEOUT)
            out.seek(0)
            lines = [line for line in out.read().splitlines() if line.startswith(MARK)]
            if not lines:
                out.seek(0)
                raise RuntimeError(f"a B5 client printed no result: {out.read()[-2000:]}")
            clients.append(json.loads(lines[-1][len(MARK) :]))
    finally:
        for proc, out in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
            out.close()
    emulator_cpu = meter.share() if meter else 0.0
    posts = [r for r in emulator.requests() if r["method"] == "POST" and r["path"] == "/jobs"]
    admitted = sorted(r["received"] for r in posts if r["status"] == 200)
    outputs = [j["Operation"]["Output"]["Object"] for j in emulator.control("GET", "jobs")["jobs"]]
    return ModeResult(
        clients=clients,
        posts=len(posts),
        throttled=emulator.throttled(),
        created=len(outputs),
        distinct=len(set(outputs)),
        busiest=max_in_window(admitted, 1.0),
        seconds=admitted[-1] - min(r["received"] for r in posts) if admitted else 0.0,
        emulator_cpu=emulator_cpu,
    )


def _rows(label: str, result: ModeResult) -> tuple[str, ...]:
    return (
        label,
        f"{result.created:,}",
        num(result.seconds),
        num(result.goodput, 1),
        f"{result.posts:,}",
        f"{result.throttled:,} ({result.throttled_share:.1%})",
        str(result.lost),
        str(result.duplicated),
        str(result.busiest),
        f"{result.emulator_cpu:.0%}",
    )


def _client_rows(label: str, result: ModeResult) -> list[tuple[str, ...]]:
    rows = []
    for client in sorted(result.clients, key=lambda c: c["index"]):
        seconds = client["ended"] - client["started"]
        failed = ", ".join(f"{code} {n}" for code, n in client["failures"].items()) or "0"
        rows.append(
            (
                label,
                str(client["index"]),
                f"{client['ok']:,}",
                failed,
                num(seconds),
                num(client["ok"] / seconds if seconds else 0.0, 1),
                f"{client['throttles']:,}",
                str(client["cuts"]),
            )
        )
    return rows


def run() -> Section:
    results: dict[str, ModeResult] = {}
    with tempfile.TemporaryDirectory(prefix="bench-b5-") as tmp, EmulatorProcess(Path(tmp) / "data", KNOBS) as emu:
        os.environ[CONN_ENV] = emu.connection()
        for label, flags in MODES.items():
            print(f"  b5: {label} ...", flush=True)
            results[label] = _run_mode(emu, flags, Path(tmp))
    adaptive, fixed = results.values()
    goals = [
        Goal("aggregate goodput, 4 processes, adaptive", "≥ 90/s", f"{adaptive.goodput:.1f}/s", adaptive.goodput >= 90),
        Goal(
            "share of requests throttled, adaptive",
            "≤ 5 %",
            f"{adaptive.throttled_share:.1%} (fixed: {fixed.throttled_share:.1%})",
            adaptive.throttled_share <= 0.05,
        ),
        Goal(
            "jobs lost / duplicated, adaptive",
            "0 / 0",
            f"{adaptive.lost} / {adaptive.duplicated} (fixed: {fixed.lost} / {fixed.duplicated})",
            adaptive.lost == 0 and adaptive.duplicated == 0,
        ),
    ]
    return Section(
        "b5",
        "Shared rate limit",
        f"{PROCESSES} client processes × {SUBMITS:,} submits each through the batch path (`submit_all` + "
        f"`CloudInfiniteHook(max_qps=100)`, 16 in flight, as the batch operator sends them), started at the "
        f"same moment and not coordinated, against one emulator process enforcing the service's limit "
        f"(`--qps-limit {LIMIT}`; {KNOBS}). Adaptive: the shared limiter of `airflow_provider_ci.ratelimit`. "
        "Fixed (baseline): the same limiter with its throttle feedback switched off, i.e. every process paced "
        "at 100/s whatever the service answers. Goodput = jobs created ÷ seconds from the first request to the "
        "last one admitted; lost = submits that never created a job; duplicated = jobs beyond one per submit "
        "(both counted at the emulator by output key).",
        [
            Table(
                (
                    "limiter",
                    "jobs created",
                    "seconds",
                    "goodput/s",
                    "POST /jobs sent",
                    "throttled (503 SlowDown)",
                    "lost",
                    "duplicated",
                    "busiest 1 s admitted",
                    "emulator CPU",
                ),
                [_rows(label, result) for label, result in results.items()],
                "all four processes",
            ),
            Table(
                ("limiter", "process", "submitted", "failed", "seconds", "submits/s", "throttles seen", "rate cuts"),
                [row for label, result in results.items() for row in _client_rows(label, result)],
                "per process",
            ),
        ],
        goals,
        notes=[
            "A throttled submit is retried (it created nothing, so no lookup is needed); with the fixed limiter a "
            "submit that is throttled more than `RetryPolicy.max_throttled` (30) times in a row gives up, which "
            "is how the baseline loses jobs.",
        ],
    )

"""The CI emulator as a subprocess, driven over HTTP: the thing benchmarks talk to, never measure.

A subprocess, not ``Emulator`` in a thread, so the server never shares the client's GIL or its
CPU-time accounting; its own CPU use is read from ``/proc`` to show it was not the bottleneck.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
from PIL import Image

from airflow_provider_ci.emulator.config import DEFAULT_SECRET_ID, DEFAULT_SECRET_KEY

BUCKET = "examplebucket-1250000000"
REGION = "ap-chongqing"
INPUT_KEY = "input/x.png"
CONN_ENV = "AIRFLOW_CONN_TENCENT_CI_DEFAULT"
STARTUP_TIMEOUT = 60.0
_LISTENING = re.compile(r"listening on (http://\S+)")


def tiny_png() -> bytes:
    """An 8x6 PNG: real enough for the emulator to process, cheap enough not to load it."""
    buffer = io.BytesIO()
    Image.new("RGB", (8, 6), (200, 30, 30)).save(buffer, "PNG")
    return buffer.getvalue()


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process (all its threads) has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Knobs:
    """How fast the emulator's jobs move (seconds Submitted, seconds Running, jobs at once) and
    its per-account rate limit: off unless a benchmark is about the limit, since the others
    measure what the client and the emulator can do."""

    queue_delay: float
    run_time: float
    workers: int
    qps_limit: int = 0

    def __str__(self) -> str:
        limit = f", qps-limit {self.qps_limit}" if self.qps_limit else ""
        return f"queue-delay {self.queue_delay:g} s, run-time {self.run_time:g} s, workers {self.workers}{limit}"


class EmulatorProcess:
    """``python -m airflow_provider_ci.emulator`` on a free port, stopped by PID on exit."""

    def __init__(self, data_dir: Path, knobs: Knobs) -> None:
        self.data_dir = data_dir
        self.knobs = knobs
        self.command = [sys.executable, "-m", "airflow_provider_ci.emulator", "--port", "0"]
        self.command += ["--data-dir", str(data_dir), "--bucket", BUCKET, "--queue-delay", str(knobs.queue_delay)]
        self.command += ["--run-time", str(knobs.run_time), "--workers", str(knobs.workers)]
        self.command += ["--qps-limit", str(knobs.qps_limit)]
        self.url = ""
        self._proc: subprocess.Popen[bytes] | None = None
        self._http = httpx.Client(timeout=60)

    def __enter__(self) -> EmulatorProcess:
        (self.data_dir / BUCKET / INPUT_KEY).parent.mkdir(parents=True, exist_ok=True)
        (self.data_dir / BUCKET / INPUT_KEY).write_bytes(tiny_png())
        out = self.data_dir.parent / f"{self.data_dir.name}.out"
        with out.open("wb") as sink:
            self._proc = subprocess.Popen(self.command, stdout=sink, stderr=subprocess.STDOUT)
        try:
            self.url = self._wait_for_url(out)
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _wait_for_url(self, out: Path) -> str:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            match = _LISTENING.search(out.read_text(errors="replace"))
            if match:
                return match.group(1)
            if self._proc is not None and self._proc.poll() is not None:
                raise RuntimeError(f"the emulator exited at start: {out.read_text(errors='replace')[-2000:]}")
            time.sleep(0.05)
        raise TimeoutError(f"the emulator did not start within {STARTUP_TIMEOUT:.0f} s")

    def stop(self) -> None:
        """SIGTERM (it shuts down cleanly), then SIGKILL if it lingers; only our own PID."""
        self._http.close()
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise RuntimeError("the emulator is not running")
        return self._proc.pid

    def cpu(self) -> float:
        return cpu_seconds(self.pid)

    def control(self, method: str, name: str, body: Any = None, **params: str) -> Any:
        """Call ``/_emulator/<name>`` and return its JSON."""
        response = self._http.request(method, f"{self.url}/_emulator/{name}", json=body, params=params or None)
        response.raise_for_status()
        return response.json()

    def reset(self) -> None:
        self.control("POST", "reset")

    def set_queue(self, state: str) -> None:
        self.control("PUT", "queue", {"state": state})

    def job_times(self) -> dict[str, dict[str, Any]]:
        return {job["JobId"]: job for job in self.control("GET", "job_times")["jobs"]}

    def requests(self) -> list[dict[str, Any]]:
        return list(self.control("GET", "requests")["requests"])

    def clear_requests(self) -> None:
        self.control("DELETE", "requests")

    def set_limits(self, **limits: int) -> dict[str, int]:
        """``qps_limit`` and/or ``max_ids_per_get`` while serving."""
        return dict(self.control("PUT", "limits", limits))

    def throttled(self) -> int:
        """Requests refused with 503 SlowDown since the last reset or ``clear_requests``."""
        return int(self.control("GET", "stats")["throttled"]["total"])

    def connection(self, **extra: Any) -> str:
        """A ``tencent_ci`` connection to this emulator as JSON, for ``AIRFLOW_CONN_<ID>``."""
        return json.dumps(
            {
                "conn_type": "tencent_ci",
                "login": DEFAULT_SECRET_ID,
                "password": DEFAULT_SECRET_KEY,
                "extra": {"region": REGION, "bucket": BUCKET, "endpoint_url": self.url, **extra},
            }
        )


class CpuMeter:
    """Emulator CPU over a stretch of wall time, as a share of one core (100 % = saturated loop)."""

    def __init__(self, emulator: EmulatorProcess) -> None:
        self.emulator = emulator
        self.cpu = emulator.cpu()
        self.wall = time.monotonic()

    def share(self) -> float:
        return (self.emulator.cpu() - self.cpu) / max(time.monotonic() - self.wall, 1e-9)

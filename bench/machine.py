"""What the figures were measured on: CPU, cores, RAM, load, Python, Airflow, date."""

from __future__ import annotations

import os
import platform
import sys
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from bench.report import Table


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _ram_gib() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024**2:.1f} GiB"
    except OSError:
        pass
    return "unknown"


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def describe() -> Table:
    """The machine as a two-column table; load average shows how noisy it was at the start."""
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    rows = [
        ("date", datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")),
        ("CPU", _cpu_model()),
        ("cores", f"{os.cpu_count()} ({len(os.sched_getaffinity(0))} usable)"),
        ("RAM", _ram_gib()),
        ("load average at start", load),
        ("OS", platform.platform()),
        ("Python", sys.version.split()[0]),
        ("apache-airflow", _version("apache-airflow")),
        ("httpx / aiohttp", f"{_version('httpx')} / {_version('aiohttp')}"),
        ("cos-python-sdk-v5", _version("cos-python-sdk-v5")),
    ]
    return Table(("machine", ""), rows)

"""B4 DAG parse cost: what the provider adds to every DAG file parse, in fresh interpreters.

The dag-processor re-imports DAG files all the time, so provider import time is paid on every
parse, and a connection lookup at parse time would be a DB or secrets-backend round trip per
file per parse. Each run is a new process: a warm ``sys.modules`` would hide the import cost.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.b4_probe import MARK, PROVIDER_MODULES
from bench.report import Goal, Section, Table, num

RUNS = 5
COLD_RUNS = 3
DAGS = Path(__file__).resolve().parent.parent / "dags"
TIMEOUT = 180.0
_IMPORTTIME = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)")


def bytecode_env(cache: Path, *, write: bool) -> dict[str, str]:
    """Environment for a probe: byte-code cache in ``cache`` only, written there or not."""
    env = {**os.environ, "PYTHONPYCACHEPREFIX": str(cache)}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if not write:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def _probe(env: dict[str, str], *args: str, importtime: bool = False) -> tuple[dict[str, Any], str]:
    cmd = [sys.executable, *(["-X", "importtime"] if importtime else []), "-m", "bench.b4_probe", *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT, env=env, check=False)
    for line in done.stdout.splitlines():
        if line.startswith(MARK):
            return json.loads(line[len(MARK) :]), done.stderr
    raise RuntimeError(f"the B4 probe failed: {done.stderr[-3000:]}")


def _heaviest(stderr: str, count: int = 5) -> list[tuple[str, float]]:
    """Modules with the most self time among those the provider import loaded (``-X importtime``)."""
    _, _, after = stderr.partition("B4PROBE-IMPORTS-START")
    rows = [(m.group(4), int(m.group(1)) / 1000) for m in _IMPORTTIME.finditer(after)]
    return sorted(rows, key=lambda row: -row[1])[:count]


def run() -> Section:
    with tempfile.TemporaryDirectory(prefix="bench-b4-") as tmp:
        cold_env = bytecode_env(Path(tmp) / "empty", write=False)
        warm_env = bytecode_env(Path(tmp) / "cache", write=True)
        cold = [_probe(cold_env)[0] for _ in range(COLD_RUNS)]
        _probe(warm_env)  # writes the byte-code cache the warm runs read
        runs = [_probe(warm_env, str(DAGS))[0] for _ in range(RUNS)]
        _, stderr = _probe(warm_env, importtime=True)
    ms = [r["seconds"] * 1000 for r in runs]
    median = statistics.median(ms)
    cold_median = statistics.median(r["seconds"] * 1000 for r in cold)
    lookups = max(len(r["lookups"]) for r in runs)
    first = runs[0]
    rows = [
        ("`import airflow.sdk` (not counted), median s", num(statistics.median(r["sdk_seconds"] for r in runs), 2)),
        ("provider import beyond it, median ms", num(median)),
        ("… each run, ms", ", ".join(num(x) for x in ms)),
        ("… CPU, median ms", num(statistics.median(r["cpu"] * 1000 for r in runs))),
        (f"… with no byte-code cache (compiling), median of {COLD_RUNS}, ms", num(cold_median)),
        ("modules it adds", str(first["modules"])),
        ("top-level packages it adds", ", ".join(f"`{p}`" for p in first["packages"])),
        ("DAGs parsed by DagBag / import errors", f"{first['dags']} / {first['import_errors']}"),
        ("DagBag parse of `dags/`, median ms", num(statistics.median(r["parse_seconds"] * 1000 for r in runs))),
        ("connection lookups while parsing (max over runs)", str(lookups)),
    ]
    heavy = [(name, num(self_ms)) for name, self_ms in _heaviest(stderr)]
    return Section(
        "b4",
        "DAG parse cost",
        f"{RUNS} fresh interpreters with a warm byte-code cache (as after `pip install`), each: "
        "`import airflow.sdk`, then time `import "
        f"{', '.join(PROVIDER_MODULES)}` (wall clock), then `DagBag(dag_folder='dags/')` "
        "(`airflow.dag_processing.dagbag`) with `BaseHook.get_connection` and `aget_connection` patched "
        "to count calls. `AIRFLOW_HOME` is a throwaway directory, `AIRFLOW__CORE__LOAD_EXAMPLES=False`; "
        "no metadata DB is created or migrated (parsing needs none). This machine sets "
        "`PYTHONDONTWRITEBYTECODE=1`, so the probes keep their byte-code in a throwaway `PYTHONPYCACHEPREFIX`; "
        "the cold row is without any cache.",
        [
            Table(("", ""), rows),
            Table(
                ("module", "self ms"),
                heavy,
                "Largest self import times in the provider import (one extra run, `-X importtime`)",
            ),
        ],
        [
            Goal("provider import beyond airflow.sdk (median)", "≤ 30 ms", f"{median:.1f} ms", median <= 30),
            Goal("connection lookups while parsing dags/", "0", str(lookups), lookups == 0),
        ],
    )

"""B6 a real ``airflow triggerer`` under load: N deferred operator tasks waiting on CI jobs.

A real Airflow 3 deployment (the harness of ``tests/deployment``: api-server, scheduler,
dag-processor and one triggerer, each its own process, LocalExecutor) runs N mapped deferrable
sensor tasks that all defer to the triggerer on ``CloudInfiniteJobTrigger``
(``bench/b6_dag.py``), against an emulator process
enforcing the service's 100/s, with the jobs held in a paused queue so every wait stays open.
Once every job id has been polled, it measures for ``WINDOW`` seconds: requests per poll round
(at the emulator), the triggerer's CPU (its process tree, from ``/proc``), and the triggerer's
own "async thread was blocked" warnings, during start-up (the DAG run until every job has been
polled) and during the window. Then a second triggerer, started with ``PYTHONASYNCIODEBUG=1`` as
the warning suggests, adopts the same waits: asyncio names every callback that held its loop
over 100 ms, which tells this provider's code from Airflow's own start-up work. (Debug mode
slows the loop itself, so the goal counts the first triggerer's warnings.)
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import re
import shutil
import tempfile
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

import psutil

from airflow_provider_ci.batch import submit_all
from airflow_provider_ci.hooks.ci import CloudInfiniteHook
from airflow_provider_ci.ratelimit import reset_limiters
from bench.b6_dag import DAG_ID
from bench.emulator import CONN_ENV, INPUT_KEY, EmulatorProcess, Knobs
from bench.rawload import RULE
from bench.report import Goal, Section, Table, num
from tests.deployment.airflow_deployment import Deployment, wait_for

#: Deferred tasks (``B6_WAITS`` overrides: how many this machine holds is worth trying).
WAITS = int(os.environ.get("B6_WAITS", "300"))
#: Workers running tasks at once: each task starts, looks at its job once and defers.
PARALLELISM = 16
#: Seconds for every task to start and defer (300 task starts on 2 cores).
DEFER_TIMEOUT = 900
INTERVAL = 5.0
WINDOW = 60.0
BATCH = 50
#: The service's limit is switched on once the set-up submits are in.
KNOBS = Knobs(queue_delay=0.05, run_time=0, workers=4)
LIMIT = 100
BLOCKED = "Triggerer's async thread was blocked"
#: asyncio debug mode's report of a slow callback: ``Executing <Task ... coro=<name() ...> took 0.123 seconds``.
SLOW = re.compile(
    r"Executing <(?:Task|Handle)[^>]*?(?:coro=<(?P<coro>[\w.]+)|(?P<handle>[\w.]+)\()[^\n]*? took (?P<s>[\d.]+) seconds"
)


def _at(line: str) -> float:
    """Unix time of a structlog line (``2026-12-01T20:39:21.902709Z [info ...``)."""
    try:
        return datetime.fromisoformat(line[:27].replace("Z", "+00:00")).timestamp()
    except ValueError:
        return math.nan


def _slow_callbacks(log: str) -> list[tuple[str, int, float]]:
    """(coroutine or handle, times, worst seconds) of the callbacks asyncio reported as slow."""
    counts: Counter[str] = Counter()
    worst: dict[str, float] = {}
    for match in SLOW.finditer(log):
        name = match["coro"] or match["handle"] or "?"
        counts[name] += 1
        worst[name] = max(worst.get(name, 0.0), float(match["s"]))
    return [(name, count, worst[name]) for name, count in counts.most_common()]


#: Slow callbacks that may have run this provider's code: a trigger's own task (Airflow wraps
#: each in ``run_trigger``, whose steps asyncio names ``greenback_shim`` once it has entered
#: greenback's portal: Airflow's per-trigger set-up and the trigger's own steps alike; only
#: CloudInfiniteJobTriggers run here) or the shared poller's tasks. Counted against the goal.
OURS = ("run_trigger", "greenback_shim", "JobPoller", "fetch_chunks", "CloudInfinite", "AsyncTransport")


def _submit(count: int) -> list[str]:
    specs = [
        {"input_object": INPUT_KEY, "output_object": f"output/b6/{i}.png", "process_rule": RULE} for i in range(count)
    ]

    async def go() -> list[str]:
        hook = CloudInfiniteHook(max_qps=1_000_000)
        try:
            results = await submit_all(hook.asubmit_pic_process_job, specs, concurrency=8)
        finally:
            await hook.aclose()
        return [r["JobId"] for r in results if isinstance(r, dict)]

    reset_limiters()
    ids = asyncio.run(go())
    if len(ids) != count:
        raise RuntimeError(f"only {len(ids)} of {count} submits succeeded")
    return ids


def _tree_cpu(pid: int) -> float:
    """User + system CPU seconds of a process and its children so far."""
    total = 0.0
    try:
        root = psutil.Process(pid)
        for proc in [root, *root.children(recursive=True)]:
            try:
                times = proc.cpu_times()
                total += times.user + times.system
            except psutil.NoSuchProcess:
                pass
    except psutil.NoSuchProcess:
        pass
    return total


def _asked(emulator: EmulatorProcess, since: float) -> list[list[str]]:
    return [
        r["path"].removeprefix("/jobs/").split(",")
        for r in emulator.requests()
        if r["method"] == "GET" and r["path"].startswith("/jobs/") and r["received"] >= since
    ]


def run() -> Section:
    began = time.time()
    with tempfile.TemporaryDirectory(prefix="bench-b6-") as tmp, EmulatorProcess(Path(tmp) / "data", KNOBS) as emu:
        scratch = Path(tmp)
        emu.set_queue("Paused")
        os.environ[CONN_ENV] = emu.connection()
        ids = _submit(WAITS)
        emu.set_limits(qps_limit=LIMIT)
        (scratch / "ids.json").write_text(json.dumps(ids))
        dags = scratch / "dags"
        dags.mkdir()
        shutil.copy(Path(__file__).with_name("b6_dag.py"), dags / "b6_dag.py")
        env = {CONN_ENV: emu.connection(), "B6_JOB_IDS": str(scratch / "ids.json"), "B6_POLL_INTERVAL": str(INTERVAL)}
        airflow = Deployment(home=scratch / "home", dags=dags, env=env, parallelism=PARALLELISM)
        airflow.airflow("db", "migrate", timeout=600)
        try:
            for name in ("api-server", "scheduler", "dag-processor"):
                airflow.start(name, name)
            airflow.start("triggerer", "triggerer")
            wait_for("the api-server and scheduler to be healthy", airflow.healthy, timeout=300)
            airflow.wait_for_dags([DAG_ID], timeout=300)
            started = time.time()
            run_id = airflow.trigger(DAG_ID)
            airflow.wait_for_states(DAG_ID, run_id, {"deferred"}, WAITS, timeout=DEFER_TIMEOUT)
            all_deferred = time.time()
            wanted = set(ids)
            wait_for(  # every job asked for once more after the last deferral: by the triggerer
                f"the triggerer to poll all {WAITS} jobs",
                lambda: wanted <= {i for batch in _asked(emu, all_deferred) for i in batch},
                timeout=300,
                interval=2,
            )
            all_polled = time.time() - started
            triggerer = airflow.components["triggerer"]
            cpu_before, window_start = _tree_cpu(triggerer.pid), time.time()
            time.sleep(WINDOW)
            cpu = _tree_cpu(triggerer.pid) - cpu_before
            window = time.time() - window_start
            polls = _asked(emu, window_start)
            throttled = emu.throttled()
            log = airflow.log("triggerer")
            # The same start-up again in asyncio debug mode, which names every callback that held
            # the loop over 100 ms but slows the loop itself: for attribution only, not the goal.
            airflow.stop("triggerer")
            restarted = time.time()
            airflow.start("triggerer-debug", "triggerer", env={"PYTHONASYNCIODEBUG": "1"})
            wait_for(
                f"the debug-mode triggerer to poll all {WAITS} jobs",
                lambda: wanted <= {i for batch in _asked(emu, restarted) for i in batch},
                timeout=300,
                interval=2,
            )
            debug_log = airflow.log("triggerer-debug")
        finally:
            airflow.stop_all()
    blocked = [_at(line) for line in log.splitlines() if BLOCKED in line]
    in_window = [at for at in blocked if at >= window_start]
    debug_blocked = debug_log.count(BLOCKED)
    slow = _slow_callbacks(debug_log)
    ours = sum(count for name, count, _ in slow if any(marker in name for marker in OURS))
    rounds = sum(map(len, polls)) / WAITS
    per_round = len(polls) / rounds if rounds else math.nan
    rows = [
        ("deferred tasks waiting in one triggerer", f"{WAITS:,}"),
        (f"seconds from the DAG run to every task deferred ({PARALLELISM} workers)", num(all_deferred - started)),
        ("… to every job polled by the triggerer", num(all_polled)),
        (f"GET /jobs requests in {window:.0f} s", f"{len(polls):,}"),
        ("poll rounds (ids asked ÷ waits)", num(rounds)),
        ("requests per round", num(per_round)),
        ("triggerer CPU, share of one core", f"{cpu / window:.0%}"),
        ("requests throttled by the emulator's 100/s", str(throttled)),
        ("triggerer's 'async thread was blocked' warnings, start-up", str(len(blocked) - len(in_window))),
        (f"… in the {window:.0f} s window", str(len(in_window))),
        ("restarted in asyncio debug mode: its start-up's 'blocked' warnings", str(debug_blocked)),
        *(
            (f"… slow callback (> 100 ms): `{name}`", f"{count}×, worst {worst:.2f} s")
            for name, count, worst in slow[:6]
        ),
    ]
    expected = math.ceil(WAITS / BATCH)
    goals = [
        Goal(
            f"requests per round, {WAITS} waits",
            f"{expected} (ceil({WAITS} / {BATCH}))",
            num(per_round),
            per_round <= expected + 0.5,
        ),
        Goal("slow callbacks (> 100 ms) in the provider's triggers or poller", "0", str(ours), ours == 0),
        Goal(
            "triggerer 'blocked main thread' warnings (start-up / window)",
            "0",
            f"{len(blocked) - len(in_window)} / {len(in_window)}",
            not blocked,
        ),
    ]
    notes = [
        f"Whole B6 run, deployment start-up included: {time.time() - began:.0f} s.",
        "Start-up = from the DAG run until every job has been polled by the triggerer: workers start the tasks, "
        "each looks at its job once and defers, and the triggerer creates their triggers one by one (Airflow's "
        "`create_triggers`), while the workers, api-server, scheduler and dag-processor compete for the same 2 cores.",
        "The goal rows come from the triggerer as users run it. Asyncio's debug mode names the callbacks that held "
        "the loop, but tracks every coroutine's origin and slows the loop itself; so the triggerer is then stopped "
        "and a second one started with `PYTHONASYNCIODEBUG=1`, which adopts the same waits: its start-up is "
        "reported apart, for attribution, and the provider's-callbacks goal counts its slow callbacks.",
    ]
    return Section(
        "b6",
        "A real triggerer under load",
        f"A real Airflow deployment (`tests/deployment/airflow_deployment.py`: api-server, scheduler, dag-processor, "
        f"one `airflow triggerer`, LocalExecutor) runs {WAITS} deferred operator tasks: one mapped "
        f"`CloudInfiniteJobSensor(deferrable=True, poke_interval={INTERVAL:g})` (`bench/b6_dag.py`), each task "
        "started by a worker, looking at its job once and deferring on `CloudInfiniteJobTrigger`, "
        f"against an emulator process ({KNOBS}, `--qps-limit {LIMIT}`) whose queue is paused so every wait "
        "stays open. Measured over "
        f"{WINDOW:g} s once every job has been polled; warnings counted over the whole run.",
        [Table(("", ""), rows)],
        goals,
        notes=notes,
    )

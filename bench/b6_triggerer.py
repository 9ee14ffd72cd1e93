"""B6 a real ``airflow triggerer`` under load: N deferred tasks waiting on CI jobs.

A real Airflow 3 deployment (the harness of ``tests/deployment``: api-server, scheduler,
dag-processor and one triggerer, each its own process) runs a DAG of N tasks that all wait in
the triggerer on ``CloudInfiniteJobTrigger`` (``bench/b6_dag.py``), against an emulator process
enforcing the service's 100/s, with the jobs held in a paused queue so every wait stays open.
Once every job id has been polled, it measures for ``WINDOW`` seconds: requests per poll round
(at the emulator), the triggerer's CPU (its process tree, from ``/proc``), and the triggerer's
own "async thread was blocked" warnings over the whole run, start-up included.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import shutil
import tempfile
import time
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

WAITS = 300
INTERVAL = 5.0
WINDOW = 60.0
BATCH = 50
KNOBS = Knobs(queue_delay=0.05, run_time=0, workers=4, qps_limit=100)
BLOCKED = "Triggerer's async thread was blocked"


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
        (scratch / "ids.json").write_text(json.dumps(ids))
        dags = scratch / "dags"
        dags.mkdir()
        shutil.copy(Path(__file__).with_name("b6_dag.py"), dags / "b6_dag.py")
        env = {CONN_ENV: emu.connection(), "B6_JOB_IDS": str(scratch / "ids.json"), "B6_POLL_INTERVAL": str(INTERVAL)}
        airflow = Deployment(home=scratch / "home", dags=dags, env=env)
        airflow.airflow("db", "migrate", timeout=600)
        try:
            for name in ("api-server", "scheduler", "dag-processor", "triggerer"):
                airflow.start(name, name)
            wait_for("the api-server and scheduler to be healthy", airflow.healthy, timeout=300)
            airflow.wait_for_dags([DAG_ID], timeout=300)
            started = time.time()
            airflow.trigger(DAG_ID)
            wanted = set(ids)
            wait_for(
                f"the triggerer to poll all {WAITS} jobs",
                lambda: wanted <= {i for batch in _asked(emu, started) for i in batch},
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
            blocked = [line for line in airflow.log("triggerer").splitlines() if BLOCKED in line]
        finally:
            airflow.stop_all()
    rounds = sum(map(len, polls)) / WAITS
    per_round = len(polls) / rounds if rounds else math.nan
    rows = [
        ("deferred tasks waiting in one triggerer", f"{WAITS:,}"),
        ("seconds from the DAG run to every job polled", num(all_polled)),
        (f"GET /jobs requests in {window:.0f} s", f"{len(polls):,}"),
        ("poll rounds (ids asked ÷ waits)", num(rounds)),
        ("requests per round", num(per_round)),
        ("triggerer CPU, share of one core", f"{cpu / window:.0%}"),
        ("requests throttled by the emulator's 100/s", str(throttled)),
        ("triggerer's 'async thread was blocked' warnings (whole run)", str(len(blocked))),
    ]
    expected = math.ceil(WAITS / BATCH)
    goals = [
        Goal(
            f"requests per round, {WAITS} waits",
            f"{expected} (ceil({WAITS} / {BATCH}))",
            num(per_round),
            per_round <= expected + 0.5,
        ),
        Goal("triggerer 'blocked main thread' warnings", "0", str(len(blocked)), not blocked),
    ]
    notes = [f"Whole B6 run, deployment start-up included: {time.time() - began:.0f} s."]
    if blocked:
        notes.append("First warning: " + blocked[0][-200:])
    return Section(
        "b6",
        "A real triggerer under load",
        f"A real Airflow deployment (`tests/deployment/airflow_deployment.py`: api-server, scheduler, dag-processor, "
        f"one `airflow triggerer`) runs one DAG of {WAITS} tasks that wait in the triggerer on "
        f"`CloudInfiniteJobTrigger(poll_interval={INTERVAL:g})` from their start (`start_from_trigger`, see "
        "`bench/b6_dag.py`: the trigger the deferrable operator defers on, without 300 worker starts on 2 cores), "
        f"against an emulator process ({KNOBS}) whose queue is paused so every wait stays open. Measured over "
        f"{WINDOW:g} s once every job has been polled; warnings counted over the whole run.",
        [Table(("", ""), rows)],
        goals,
        notes=notes,
    )

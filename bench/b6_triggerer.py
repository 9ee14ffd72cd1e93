"""B6 a real ``airflow triggerer`` under load: N deferred operator tasks waiting on CI jobs.

A real Airflow 3 deployment (the harness of ``tests/deployment``: api-server, scheduler,
dag-processor and one triggerer, each its own process, LocalExecutor) runs N mapped deferrable
sensor tasks that all defer to the triggerer on ``CloudInfiniteJobTrigger``
(``bench/b6_dag.py``), against an emulator process
enforcing the service's 100/s, with the jobs held in a paused queue so every wait stays open.
Once every job id has been polled, it measures for ``WINDOW`` seconds: requests per poll round
(at the emulator), the triggerer's CPU (its process tree, from ``/proc``), and the triggerer's
own "async thread was blocked" warnings, during start-up (the DAG run until every job has been
polled) and during the window. Then the triggerer is stopped and a second one adopts the same
waits at once, as after a restart or failover. Both carry B6's loop probe
(``bench/b6_probe/sitecustomize.py``), which samples the loop thread's stack through every
callback over 20 ms: a block over 100 ms is then the provider's or not by the code on its stack,
not by a task name that Airflow's per-trigger set-up and the trigger share.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import shutil
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

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
PROBE = Path(__file__).with_name("b6_probe")
#: A frame of this provider's code on a sampled stack, or of an import of one of its modules.
OURS = (f"{os.sep}airflow_provider_ci{os.sep}", "[airflow_provider_ci")


def _at(line: str) -> float:
    """Unix time of a structlog line (``2026-12-01T20:39:21.902709Z [info ...``)."""
    try:
        return datetime.fromisoformat(line[:27].replace("Z", "+00:00")).timestamp()
    except ValueError:
        return math.nan


def _probed(path: Path) -> list[dict[str, Any]]:
    """The loop blocks the probe reported (``bench/b6_probe``), oldest first."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _whose(block: dict[str, Any]) -> str:
    """What held the loop: the provider if its code was on a sampled stack or its modules were
    being imported, else the import under way or the innermost frame sampled, else a collection
    or C code that kept the GIL."""
    stacks = block["stacks"]
    frames = [frame for stack in stacks for frame in reversed(stack)]
    ours = [frame for frame in frames if any(marker in frame for marker in OURS)]
    imports = [frame[frame.rindex("[") + 1 : -1] for stack in stacks for frame in stack if frame.endswith("]")]
    owner = "provider: " if ours else ""
    if imports:  # outermost first: the module whose import pulled in the rest
        return f"{owner}import of {imports[0]}"
    if ours:
        return owner + _short(ours[0])
    if frames:
        return _short(frames[0])
    return f"no sample: the GIL was held ({block['gc'] * 1000:.0f} ms of it garbage collection)"


def _short(frame: str) -> str:
    for marker in ("site-packages" + os.sep, f"lib{os.sep}python3", "airflow_provider_ci"):
        if marker in frame:
            return frame[frame.index(marker) :].removeprefix("site-packages" + os.sep)
    return frame


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


def _split(blocks: list[dict[str, Any]], window_start: float) -> str:
    in_window = sum(block["at"] >= window_start for block in blocks)
    return f"{len(blocks) - in_window} / {in_window}"


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
        probes = {name: scratch / f"probe-{name}.jsonl" for name in ("triggerer", "triggerer-restarted")}
        path = os.pathsep.join(filter(None, [str(PROBE), os.environ.get("PYTHONPATH")]))
        airflow = Deployment(home=scratch / "home", dags=dags, env=env, parallelism=PARALLELISM)
        airflow.airflow("db", "migrate", timeout=600)
        try:
            for name in ("api-server", "scheduler", "dag-processor"):
                airflow.start(name, name)
            airflow.start("triggerer", "triggerer", env={"PYTHONPATH": path, "B6_PROBE_LOG": str(probes["triggerer"])})
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
            # A restart: a second triggerer adopts every wait at once (no workers competing now).
            airflow.stop("triggerer")
            restarted = time.time()
            env = {"PYTHONPATH": path, "B6_PROBE_LOG": str(probes["triggerer-restarted"])}
            airflow.start("triggerer-restarted", "triggerer", env=env)
            wait_for(
                f"the restarted triggerer to poll all {WAITS} jobs",
                lambda: wanted <= {i for batch in _asked(emu, restarted) for i in batch},
                timeout=300,
                interval=2,
            )
            restart_polled = time.time() - restarted
            restart_log = airflow.log("triggerer-restarted")
        finally:
            airflow.stop_all()
        blocks = {name: _probed(probe) for name, probe in probes.items()}
    blocked = [_at(line) for line in log.splitlines() if BLOCKED in line]
    in_window = [at for at in blocked if at >= window_start]
    first = blocks["triggerer"]
    probed = first + blocks["triggerer-restarted"]
    ours = [block for block in probed if _whose(block).startswith("provider")]
    labels: dict[str, list[float]] = {}
    for block in probed:
        labels.setdefault(_whose(block), []).append(block["took"])
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
        ("loop blocks > 100 ms (probe), start-up / window", _split(first, window_start)),
        ("restarted triggerer: seconds until it had polled every job again", num(restart_polled)),
        ("… its 'blocked' warnings", str(restart_log.count(BLOCKED))),
        ("… its loop blocks > 100 ms (probe)", str(len(blocks["triggerer-restarted"]))),
        *(
            (f"… what held the loop: `{label}`", f"{len(took)}×, worst {max(took):.2f} s")
            for label, took in sorted(labels.items(), key=lambda item: -len(item[1]))[:8]
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
        Goal(
            "loop blocks > 100 ms with the provider's code on the stack (both triggerers)",
            "0",
            str(len(ours)),
            not ours,
        ),
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
        "The loop probe (`bench/b6_probe/sitecustomize.py`, on the triggerers' `PYTHONPATH`) times every callback "
        "the loop runs and, from 20 ms into one, samples the loop thread's stack every 10 ms; a block counts as the "
        "provider's when a frame of `airflow_provider_ci` was on a sampled stack. 'No sample' means the GIL was held "
        "throughout (a garbage collection, or C code). Asyncio's debug mode was used for this before; it names only "
        "the task step (`greenback_shim` for a trigger: Airflow's per-trigger set-up and the trigger's first step "
        "alike) and slows the loop itself.",
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

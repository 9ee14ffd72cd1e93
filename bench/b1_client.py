"""B1's client process: N ``CloudInfiniteJobTrigger`` waits in one event loop, measured from inside.

A process of its own, so its CPU time and peak RSS are those of the waits alone and it never
shares a GIL with the emulator or the parent. It speaks JSON lines on stdout (marked, since
Airflow's logging writes there too): ``ready`` once every trigger is waiting (the parent then
releases the emulator's queue), then the result.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import time
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any, cast

import httpx
from airflow.triggers.base import TriggerEvent

from airflow_provider_ci.hooks.ci import CloudInfiniteHook
from airflow_provider_ci.polling import poller_for
from airflow_provider_ci.triggers.job import CloudInfiniteJobTrigger
from bench.stats import GcWatch, LoopProbe

CONN_ID = CloudInfiniteHook.default_conn_name
MARK = "B1CLIENT "
#: Wake-ups in the first second include starting every trigger and the first poll round.
STARTUP = 1.0


def rss_kb() -> int:
    """Resident set size now, in KiB."""
    resident = int(Path("/proc/self/statm").read_text().split()[1])
    return resident * os.sysconf("SC_PAGE_SIZE") // 1024


def reset_peak_rss() -> bool:
    """Start the peak-RSS mark afresh (Linux ≥ 4.0); False where the kernel refuses.

    ``ru_maxrss`` never resets: importing Airflow and the warm-up already peak about 14 MB
    above the RSS the waits start from, so at 1,000 waits "peak − before" measured the warm-up.
    """
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def peak_rss_kb() -> int:
    """The peak RSS since ``reset_peak_rss`` (the process's lifetime peak if it could not reset)."""
    status = Path("/proc/self/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:")))


def emit(**fields: Any) -> None:
    print(MARK + json.dumps(fields), flush=True)


async def first_event(trigger: CloudInfiniteJobTrigger) -> tuple[str, str, float]:
    """(job id, event status, when the event was produced), closing the generator as Airflow does."""
    events = cast(AsyncGenerator[TriggerEvent, None], trigger.run())
    try:
        event = await anext(events)
    finally:
        await events.aclose()
    return event.payload["job_id"], event.payload["status"], time.time()


def client_creation_ms() -> float:
    """What building one ``httpx.AsyncClient`` costs (its SSL context), wherever a hook does it."""
    began = time.perf_counter()
    httpx.AsyncClient()
    return (time.perf_counter() - began) * 1000


async def main(job_ids: list[str], warm_id: str, interval: float, cap: float, freeze: bool = False) -> None:
    # Warm-up on a finished job, on another interval (so another poller): imports, the
    # connection read and lazy initialisation are one-off costs, not per-wait ones.
    await first_event(CloudInfiniteJobTrigger(job_id=warm_id, poll_interval=interval / 2))
    client_ms = client_creation_ms()
    gc.collect()
    if freeze:  # a deployment's choice at triggerer start-up, never the provider's (docs/scaling.md)
        gc.freeze()
    rss_before = rss_kb()
    peak_from_before = reset_peak_rss()
    loop = asyncio.get_running_loop()
    probe = LoopProbe()
    probe.start()
    with GcWatch() as collections:
        cpu_start, started, loop_start = time.process_time(), time.time(), loop.time()
        tasks = []
        for job_id in job_ids:  # as Airflow's triggerer creates them: yielding to the loop before each
            await asyncio.sleep(0)
            tasks.append(
                asyncio.create_task(first_event(CloudInfiniteJobTrigger(job_id=job_id, poll_interval=interval)))
            )
        await asyncio.sleep(0)  # every trigger has subscribed to the poller
        start_ms = (loop.time() - loop_start) * 1000
        poller = poller_for(CONN_ID, interval, CloudInfiniteHook)
        emit(ready=time.time())
        done, pending = await asyncio.wait(tasks, timeout=cap - (time.time() - started))
        cpu, ended = time.process_time() - cpu_start, time.time()
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    await probe.stop()
    gc_generation, gc_pause = collections.longest()
    stall_cpu, stall_process_cpu = probe.worst_apart_from_cpu(collections.spans)
    emit(
        started=started,
        ended=ended,
        cpu=cpu,
        rounds=poller.rounds,
        rss_before_kb=rss_before,
        rss_peak_kb=peak_rss_kb(),
        rss_peak_from_before=peak_from_before,
        worst_block=probe.worst(),
        worst_block_at=probe.worst_at() - loop_start,
        worst_block_after_startup=probe.worst(loop_start + STARTUP),
        worst_block_without_gc=probe.worst_apart_from(collections.spans),
        worst_block_without_gc_cpu=stall_cpu,
        worst_block_without_gc_process_cpu=stall_process_cpu,
        p99_lateness=probe.percentile(99),
        client_creation_ms=client_ms,
        start_ms=start_ms,
        gc_pause=gc_pause,
        gc_generation=gc_generation,
        full_collections=sum(generation == 2 for generation, _ in collections.pauses),
        events=[task.result() for task in done],
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--ids", type=Path, required=True, help="JSON list of job ids to wait for")
    parser.add_argument("--warm", required=True, help="a finished job, waited for first")
    parser.add_argument("--interval", type=float, required=True)
    parser.add_argument("--cap", type=float, required=True, help="give up on waits still open after this many s")
    parser.add_argument("--freeze", action="store_true", help="gc.freeze() after start-up, as a deployment may")
    args = parser.parse_args()
    asyncio.run(main(json.loads(args.ids.read_text()), args.warm, args.interval, args.cap, args.freeze))

"""What a waiting trigger costs the garbage collector, counted (never timed).

Ten thousand waits in one triggerer made generation-2 collections, which scan the whole process,
hold its loop for hundreds of ms (bench B1). They come from objects that live long enough to be
promoted: what each wait holds, and what each poll round leaves alive until the next one. These
tests bound both, and the tasks a wait with a deadline runs, with the emulator's queue paused so
every job stays waiting.
"""

from __future__ import annotations

import asyncio
import gc
import time

import pytest

from airflow_provider_ci.connection import ConnectionSettings
from airflow_provider_ci.polling import _POLLERS
from airflow_provider_ci.triggers.job import CloudInfiniteJobTrigger
from tests import test_polling
from tests.test_polling import poller, rounds_pass, submit_many

pytestmark = pytest.mark.asyncio
#: The emulator-backed hook fixture of the polling tests, whose helpers these use too.
hook = test_polling.hook
WAITS = 300
INTERVAL = 0.5
#: Tracked objects per wait, harness included (its task, coroutine, the trigger, its run()
#: generator and their weak references: 8). Measured 13; a Queue, a Future and a coroutine per
#: round and per wait, a JobWatch with its own set and a logger per trigger made it 29.
MAX_TRACKED_PER_WAIT = 15
#: Tracked objects per wait still alive after poll rounds (measured 1.3 to 2.3, the in-process
#: emulator included): the details each wait used to keep
#: (about 10 containers of nested dicts, and 6 of a logger per trigger) made it 16.
MAX_KEPT_PER_WAIT_PER_ROUNDS = 5


def tracked() -> int:
    gc.collect()
    return len(gc.get_objects())


async def first_event(trigger: CloudInfiniteJobTrigger) -> dict:
    async for event in trigger.run():
        return event.payload
    raise AssertionError("no event")


def start(ids: list[str], end_time: float | None = None) -> list[asyncio.Task]:
    return [
        asyncio.create_task(
            first_event(CloudInfiniteJobTrigger(job_id=job_id, poll_interval=INTERVAL, end_time=end_time))
        )
        for job_id in ids
    ]


async def test_a_wait_holds_a_dozen_tracked_objects_and_rounds_leave_none_behind(hook, ci_emulator):
    ci_emulator.pause_queue()
    ids = await submit_many(hook, WAITS)
    # One wait first, so the poller, its hook and the logger are not counted per wait.
    warm = start(ids[:1])
    await rounds_pass(1)
    before = tracked()
    tasks = start(ids[1:])
    for _ in range(3):
        await asyncio.sleep(0)  # every trigger subscribed; the next round is INTERVAL away
    assert len(_POLLERS[asyncio.get_running_loop()]) == 1
    waiting = tracked()
    per_wait = (waiting - before) / (WAITS - 1)
    assert per_wait <= MAX_TRACKED_PER_WAIT, per_wait
    await rounds_pass(3)  # every wait has had answers (and logged its first state)
    await asyncio.sleep(INTERVAL / 4)
    kept = tracked()
    assert not any(task.done() for task in tasks)
    kept_per_wait = (kept - waiting) / (WAITS - 1)
    assert kept_per_wait <= MAX_KEPT_PER_WAIT_PER_ROUNDS, kept_per_wait
    ci_emulator.resume_queue()
    events = await asyncio.wait_for(asyncio.gather(*warm, *tasks), 30)
    assert {event["status"] for event in events} == {"success"}


async def test_a_wait_with_a_deadline_runs_no_task_of_its_own(hook, ci_emulator):
    """``asyncio.wait_for`` ran each round's wait in a task of its own: one more per trigger."""
    ci_emulator.pause_queue()
    ids = await submit_many(hook, 50)
    tasks = start(ids, end_time=time.time() + 60)
    counts = []
    for _ in range(3):
        await rounds_pass(1)
        counts.append(len(asyncio.all_tasks()))
    # The waits, the test, the poller, its pump and its fetches: never a second task per wait.
    assert max(counts) <= len(tasks) + 1 + 2 + 8
    ci_emulator.resume_queue()
    events = await asyncio.wait_for(asyncio.gather(*tasks), 30)
    assert {event["status"] for event in events} == {"success"}


async def test_a_round_resolves_each_bucket_and_region_once_not_each_job(hook, ci_emulator, monkeypatch):
    """Resolving an endpoint per job cost 30 ms of CPU a round at 10,000 waits, in one go on the loop."""
    ci_emulator.pause_queue()
    ids = await submit_many(hook, 100)
    calls = []
    real = ConnectionSettings.endpoint
    monkeypatch.setattr(ConnectionSettings, "endpoint", lambda self, *a, **k: calls.append(a) or real(self, *a, **k))
    tasks = start(ids)
    await rounds_pass(1)
    calls.clear()
    first = poller().rounds
    await rounds_pass(2)
    await asyncio.sleep(INTERVAL / 2)  # the last round's grouping is done
    rounds = poller().rounds - first + 1
    # The waits name no bucket or region of their own: one resolution of (None, None) a round
    # (was one per job); the transport resolves each request's endpoint from what it was given.
    assert 2 <= calls.count((None, None)) <= rounds
    ci_emulator.resume_queue()
    events = await asyncio.wait_for(asyncio.gather(*tasks), 30)
    assert {event["status"] for event in events} == {"success"}

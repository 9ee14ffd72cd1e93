"""Coalesced polling, counted at the emulator: many waiting triggers, one request per batch per round."""

from __future__ import annotations

import asyncio
import json
import math
import os

import pytest

from airflow_provider_ci.emulator.pytest_plugin import DEFAULT_BUCKET
from airflow_provider_ci.hooks.ci import CloudInfiniteHook
from airflow_provider_ci.polling import _POLLERS
from airflow_provider_ci.triggers.job import CloudInfiniteJobTrigger
from tests.support import FAST_RETRY, REGION, png

pytestmark = pytest.mark.asyncio
INTERVAL = 0.1


@pytest.fixture
def hook(ci_emulator, ci_emulator_conn, monkeypatch):
    ci_emulator.put_object(DEFAULT_BUCKET, "input/cat.png", png())
    monkeypatch.setattr(CloudInfiniteJobTrigger, "_hook", lambda self: CloudInfiniteHook(retry=FAST_RETRY))
    return CloudInfiniteHook(retry=FAST_RETRY)


def set_extra(monkeypatch, **extra) -> None:
    conn = json.loads(os.environ["AIRFLOW_CONN_TENCENT_CI_DEFAULT"])
    conn["extra"].update(extra)
    monkeypatch.setenv("AIRFLOW_CONN_TENCENT_CI_DEFAULT", json.dumps(conn))


async def submit_many(hook: CloudInfiniteHook, n: int) -> list[str]:
    def work() -> list[str]:
        return [
            hook.submit_pic_process_job(
                input_object="input/cat.png", output_object=f"output/poll-{i}.png", process_rule="imageMogr2/strip"
            )["JobId"]
            for i in range(n)
        ]

    return await asyncio.to_thread(work)


def wait(job_id: str) -> asyncio.Task:
    trigger = CloudInfiniteJobTrigger(job_id=job_id, poll_interval=INTERVAL)

    async def first_event() -> dict:
        async for event in trigger.run():
            return event.payload
        raise AssertionError("no event")

    return asyncio.create_task(first_event())


def job_polls(emulator) -> list[list[str]]:
    """The ids asked for by each ``GET /jobs/<ids>`` the emulator saw."""
    return [r.path.split("/")[-1].split(",") for r in emulator.requests if r.method == "GET" and r.path != "/jobs"]


def poller():
    (p,) = _POLLERS[asyncio.get_running_loop()].values()
    return p


async def rounds_pass(count: int) -> None:
    """Wait until the poller has started ``count`` more rounds: counts, not timings."""
    for _ in range(40):
        await asyncio.sleep(INTERVAL / 2)
        if _POLLERS.get(asyncio.get_running_loop()):
            break
    target = poller().rounds + count
    for _ in range(400):
        if poller().rounds >= target:
            return
        await asyncio.sleep(INTERVAL / 4)
    raise AssertionError("the poller stalled")


@pytest.mark.parametrize(("waits", "batch"), [(120, None), (20, 7)])
async def test_n_waits_make_ceil_n_over_batch_requests_per_round(hook, ci_emulator, monkeypatch, waits, batch):
    if batch is not None:
        set_extra(monkeypatch, poll_batch_size=batch)
    ci_emulator.pause_queue()
    ids = await submit_many(hook, waits)
    ci_emulator.clear_requests()
    tasks = [wait(job_id) for job_id in ids]
    await rounds_pass(5)
    rounds, polls = poller().rounds, job_polls(ci_emulator)
    per_round = math.ceil(waits / (batch or 50))
    assert rounds >= 4
    assert (rounds - 1) * per_round <= len(polls) <= rounds * per_round  # the last round may be in flight
    assert max(len(p) for p in polls) == (batch or 50)
    assert sorted(job_id for p in polls[:per_round] for job_id in p) == sorted(ids)  # each id once a round
    ci_emulator.resume_queue()
    events = await asyncio.wait_for(asyncio.gather(*tasks), 30)
    assert {e["status"] for e in events} == {"success"}
    assert sorted(e["job_id"] for e in events) == sorted(ids)
    await asyncio.sleep(INTERVAL * 2)
    assert not _POLLERS.get(asyncio.get_running_loop())  # the poller left with its last waiter


async def test_a_trigger_alone_polls_one_id_per_interval(hook, ci_emulator):
    ci_emulator.pause_queue()
    (job_id,) = await submit_many(hook, 1)
    ci_emulator.clear_requests()
    task = wait(job_id)
    await rounds_pass(3)
    polls, rounds = job_polls(ci_emulator), poller().rounds
    assert len(polls) in (rounds, rounds - 1)  # one request a round (the last may be in flight)
    assert set(map(tuple, polls)) == {(job_id,)}
    ci_emulator.resume_queue()
    assert (await asyncio.wait_for(task, 20))["status"] == "success"


async def test_unknown_ids_transient_errors_and_leavers_are_handled_per_trigger(hook, ci_emulator):
    ci_emulator.pause_queue()
    known = await submit_many(hook, 3)
    unknown = "c00000000000000000000000000000000"
    tasks = {job_id: wait(job_id) for job_id in [*known, unknown]}
    assert (await asyncio.wait_for(tasks[unknown], 10))["code"] == "NoSuchJob"
    # A failed round reaches every waiter of that round, and none gives up on one failure.
    ci_emulator.faults.add("status", status=500, count=FAST_RETRY.max_attempts, method="GET")
    await rounds_pass(3)
    assert not any(tasks[job_id].done() for job_id in known)
    # A waiter that leaves (its task cancelled) is no longer asked for.
    tasks[known[0]].cancel()
    await rounds_pass(1)
    ci_emulator.clear_requests()
    await rounds_pass(2)
    asked = {job_id for p in job_polls(ci_emulator) for job_id in p}
    assert asked == set(known[1:])
    ci_emulator.resume_queue()
    for job_id in known[1:]:
        assert (await asyncio.wait_for(tasks[job_id], 20))["status"] == "success"


async def test_waits_share_requests_per_resolved_endpoint(hook, ci_emulator):
    """One poller per connection; each round asks per endpoint, resolved by the connection's own
    rule: a wait naming the connection's region and one leaving it out share one request, a wait
    on another bucket gets a request (and its error) of its own."""
    ci_emulator.pause_queue()
    implicit, explicit = await submit_many(hook, 2)

    def waiting(job_id: str, **where) -> asyncio.Task:
        trigger = CloudInfiniteJobTrigger(job_id=job_id, poll_interval=INTERVAL, **where)

        async def first_event() -> dict:
            async for event in trigger.run():
                return event.payload
            raise AssertionError("no event")

        return asyncio.create_task(first_event())

    elsewhere = "c" + "0" * 32  # a job of another bucket
    tasks = [waiting(implicit), waiting(explicit, region=REGION), waiting(elsewhere, bucket="other-1250000000")]
    await rounds_pass(1)
    ci_emulator.clear_requests()
    await rounds_pass(2)
    assert len(_POLLERS[asyncio.get_running_loop()]) == 1
    ours = [r for r in ci_emulator.requests if r.method == "GET" and r.host.startswith(DEFAULT_BUCKET)]
    assert ours and all(sorted(r.path.split("/")[-1].split(",")) == sorted([implicit, explicit]) for r in ours)
    other = await asyncio.wait_for(tasks[2], 20)
    assert other["status"] == "error"  # its bucket's answer, and only its own
    assert not tasks[0].done() and not tasks[1].done()
    ci_emulator.resume_queue()
    assert [(await asyncio.wait_for(t, 20))["status"] for t in tasks[:2]] == ["success", "success"]


async def test_each_wait_logs_in_its_own_trigger_task_context(hook, ci_emulator, monkeypatch):
    """The triggerer sends a log line to a trigger's task log by the context it bound in that
    trigger's task; answers are judged in the poller's task, so they must be judged under it."""
    import contextvars

    bound: contextvars.ContextVar[str] = contextvars.ContextVar("bound_trigger")
    lines: list[tuple[str, str]] = []

    class Recording:
        def info(self, msg, *args):
            lines.append((bound.get("nobody's"), args[0]))

        debug = warning = info

    monkeypatch.setattr(CloudInfiniteJobTrigger, "logger", classmethod(lambda cls: Recording()))
    ids = await submit_many(hook, 5)

    async def as_the_triggerer_runs_it(job_id: str) -> dict:
        bound.set(job_id)  # what run_trigger binds (trigger_id, ti_id, ...) before running the trigger
        async for event in CloudInfiniteJobTrigger(job_id=job_id, poll_interval=INTERVAL).run():
            return event.payload
        raise AssertionError("no event")

    events = await asyncio.wait_for(asyncio.gather(*(as_the_triggerer_runs_it(job_id) for job_id in ids)), 30)
    assert {event["status"] for event in events} == {"success"}
    assert {job_id for _, job_id in lines} == set(ids)  # every wait logged its states
    assert all(context == job_id for context, job_id in lines), lines


async def test_answers_slow_to_hand_over_give_the_loop_back_after_each_slice():
    """A slice ends at DELIVER_SLICE answers or SLICE_SECONDS of loop time, whichever first:
    with answers that each take longer than a slice (slow log writes), other tasks run between
    every two of them."""
    import itertools
    import time

    from airflow_provider_ci import polling

    order: list[str] = []

    class Slow:
        def offer(self, job_id: str, answer: object) -> None:
            time.sleep(2 * polling.SLICE_SECONDS)
            order.append(job_id)

    async def other_task() -> None:
        while len([entry for entry in order if entry != "other"]) < 3:
            order.append("other")
            await asyncio.sleep(0)

    poller = polling.JobPoller(("unused", 1.0), CloudInfiniteHook())
    poller._subscribers = {job_id: Slow() for job_id in ("j0", "j1", "j2")}
    poller._deliver({job_id: {"State": "Submitted"} for job_id in ("j0", "j1", "j2")})
    await other_task()
    await poller._pump

    answered = [index for index, entry in enumerate(order) if entry != "other"]
    assert [order[i] for i in answered] == ["j0", "j1", "j2"]
    assert all(b - a > 1 for a, b in itertools.pairwise(answered))  # never two in one pass

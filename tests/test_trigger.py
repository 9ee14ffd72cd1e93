"""CloudInfiniteJobTrigger against the emulator: events, transient errors, deadlines, on_kill, no blocking."""

from __future__ import annotations

import asyncio
import json
import logging
import time

import httpx
import pytest

from airflow_provider_ci.emulator.pytest_plugin import DEFAULT_BUCKET
from airflow_provider_ci.hooks.ci import CloudInfiniteHook
from airflow_provider_ci.triggers.job import CloudInfiniteJobTrigger
from tests.support import FAST_RETRY, on_loop_forbidden, png

pytestmark = pytest.mark.asyncio


@pytest.fixture
def hook(ci_emulator, ci_emulator_conn, monkeypatch):
    """A hook on the emulator; triggers get the same fast-retry hook."""
    ci_emulator.put_object(DEFAULT_BUCKET, "input/cat.png", png())
    monkeypatch.setattr(CloudInfiniteJobTrigger, "_hook", lambda self: CloudInfiniteHook(retry=FAST_RETRY))
    return CloudInfiniteHook(retry=FAST_RETRY)


async def submit(hook: CloudInfiniteHook, output: str = "output/t.png") -> str:
    job = await asyncio.to_thread(
        hook.submit_pic_process_job,
        input_object="input/cat.png",
        output_object=output,
        process_rule="imageMogr2/rotate/90",
    )
    return job["JobId"]


def trigger(job_id: str, **kwargs) -> CloudInfiniteJobTrigger:
    return CloudInfiniteJobTrigger(job_id=job_id, poll_interval=kwargs.pop("poll_interval", 0.05), **kwargs)


async def events(t: CloudInfiniteJobTrigger, limit: float = 20.0) -> list[dict]:
    async def collect() -> list[dict]:
        return [event.payload async for event in t.run()]

    return await asyncio.wait_for(collect(), limit)


async def test_serialize_round_trips_with_plain_json_and_no_secret(ci_emulator_conn):
    t = CloudInfiniteJobTrigger(job_id="c1", bucket="b-1250000000", region="ap-guangzhou", end_time=1e9)
    classpath, kwargs = t.serialize()
    assert classpath == "airflow_provider_ci.triggers.job.CloudInfiniteJobTrigger"
    assert json.loads(json.dumps(kwargs)) == kwargs
    assert CloudInfiniteJobTrigger(**kwargs).serialize() == (classpath, kwargs)
    text = json.dumps(kwargs) + repr(t)
    assert ci_emulator_conn["password"] not in text
    assert ci_emulator_conn["login"] not in text


async def test_success_event_carries_the_final_detail(hook):
    (event,) = await events(trigger(await submit(hook)))
    assert event["status"] == "success"
    assert event["detail"]["State"] == "Success"
    assert event["detail"]["Operation"]["PicProcessResult"]["ProcessResult"]["Width"] == 6
    json.dumps(event)


async def test_failed_job_is_an_error_event_with_code_and_message(hook, ci_emulator):
    ci_emulator.faults.add("job_failed", code="InvalidImage", message="bad pixels")
    (event,) = await events(trigger(await submit(hook)))
    assert (event["status"], event["state"], event["code"], event["message"]) == (
        "error",
        "Failed",
        "InvalidImage",
        "bad pixels",
    )
    assert event["request_id"]


async def test_cancelled_job_is_an_error_event(hook, ci_emulator):
    ci_emulator.pause_queue()
    job_id = await submit(hook)
    await hook.acancel_job(job_id)
    (event,) = await events(trigger(job_id))
    assert (event["status"], event["state"]) == ("error", "Cancel")


def logged(capsys, caplog) -> str:
    """Trigger logs go through Airflow's structlog (stdout) or stdlib logging (caplog): read both."""
    return capsys.readouterr().out + caplog.text


async def test_pause_keeps_waiting_and_is_logged_once(hook, ci_emulator, caplog, capsys, monkeypatch):
    caplog.set_level(logging.INFO)
    ci_emulator.pause_queue()
    job_id = await submit(hook)
    clients = []
    real_init = httpx.AsyncClient.__init__
    monkeypatch.setattr(
        httpx.AsyncClient, "__init__", lambda self, *a, **k: clients.append(1) or real_init(self, *a, **k)
    )
    ci_emulator.clear_requests()
    task = asyncio.create_task(events(trigger(job_id)))
    await asyncio.sleep(0.6)  # ~12 polls while paused
    assert not task.done()
    ci_emulator.resume_queue()
    (event,) = await task
    assert event["status"] == "success"
    assert logged(capsys, caplog).count("is Pause") == 1
    assert len(ci_emulator.requests) > 5
    assert len(clients) == 1  # one HTTP client (one connection pool) for the whole wait


async def test_unknown_job_id_ends_with_a_clear_error(hook):
    (event,) = await events(trigger("c0123456789abcdef"))
    assert event["status"] == "error"
    assert event["code"] == "NoSuchJob"
    assert "c0123456789abcdef" in event["message"]


async def test_unknown_states_keep_polling_with_a_warning(hook, caplog, capsys, monkeypatch):
    """The emulator only speaks documented states, so this one case stubs the poll."""
    answers = iter([{"JobId": "c1", "State": "Reticulating"}] * 3 + [{"JobId": "c1", "State": "Success"}])

    async def fake_get_jobs(self, job_ids, **kwargs):
        return {job_id: next(answers) for job_id in job_ids}

    monkeypatch.setattr(CloudInfiniteHook, "aget_jobs", fake_get_jobs)
    (event,) = await events(trigger("c1"))
    assert event["status"] == "success"
    assert logged(capsys, caplog).count("'Reticulating', unknown to this provider") == 1


async def test_transient_errors_never_end_the_wait(hook, ci_emulator):
    job_id = await submit(hook)
    # 12 failing answers: with 4 tries a poll, 3 polls fail in a row; the budget is 5.
    ci_emulator.faults.add("status", status=503, count=12, method="GET")
    (event,) = await events(trigger(job_id))
    assert event["status"] == "success"


async def test_a_run_of_failed_polls_ends_the_wait_with_the_last_error(hook, ci_emulator):
    job_id = await submit(hook)
    ci_emulator.faults.add("status", status=500, code="InternalError", count=1000, method="GET")
    (event,) = await events(trigger(job_id, max_consecutive_failures=2))
    ci_emulator.faults.clear()
    assert event["status"] == "error"
    assert "2 polls in a row failed" in event["message"]
    assert "InternalError" in event["message"]
    assert len([r for r in ci_emulator.requests if r.method == "GET"]) == 2 * FAST_RETRY.max_attempts


async def test_permanent_errors_end_the_wait_at_once(hook, ci_emulator):
    ci_emulator.faults.add("status", status=403, code="AccessDenied", count=5, method="GET")
    (event,) = await events(trigger("c0123"))
    assert (event["status"], event["code"]) == ("error", "AccessDenied")
    assert len(ci_emulator.requests) == 1


async def test_deadline_gives_a_timeout_event(hook, ci_emulator):
    ci_emulator.pause_queue()
    job_id = await submit(hook)
    ci_emulator.clear_requests()
    (event,) = await events(trigger(job_id, poll_interval=5.0, end_time=time.time() + 0.3))
    assert event["status"] == "timeout"
    assert event["detail"]["State"] == "Pause"
    # The wait was cut at the deadline, not at the next 5 s round: one poll, not two.
    assert len([r for r in ci_emulator.requests if r.method == "GET"]) == 1


async def test_on_kill_cancels_a_job_that_has_not_started(hook, ci_emulator):
    ci_emulator.pause_queue()
    job_id = await submit(hook)
    await trigger(job_id).on_kill()
    assert (await hook.aget_job(job_id))["State"] == "Cancel"


async def test_on_kill_without_cancel_on_kill_sends_nothing(hook, ci_emulator):
    ci_emulator.pause_queue()
    job_id = await submit(hook)
    ci_emulator.clear_requests()
    await trigger(job_id, cancel_on_kill=False).on_kill()
    assert ci_emulator.requests == []


def _in_triggerer(job_id: str, monkeypatch, answer) -> CloudInfiniteJobTrigger:
    """The trigger as a triggerer runs it: with its task instance, and the task's state readable
    through the supervisor (``answer`` stands in for that call: a count, or an exception)."""
    from types import SimpleNamespace

    from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

    def get_ti_count(**query):
        assert query["states"] == ["deferred"] and query["task_ids"] == ["process"] and query["map_index"] == 2
        if isinstance(answer, Exception):
            raise answer
        return answer

    monkeypatch.setattr(RuntimeTaskInstance, "get_ti_count", staticmethod(get_ti_count))
    waiting = trigger(job_id)
    waiting.task_instance = SimpleNamespace(dag_id="d", task_id="process", run_id="r", map_index=2, try_number=1)
    return waiting


@pytest.mark.parametrize(
    ("deferred_count", "cancelled"),
    [(0, True), (1, False), (RuntimeError("no supervisor"), False)],
    ids=["task-failed-or-cleared", "moved-to-another-triggerer", "state-unknown"],
)
async def test_on_kill_cancels_only_when_the_task_is_no_longer_deferred(
    hook, ci_emulator, monkeypatch, deferred_count, cancelled
):
    """Airflow 3.3 calls on_kill also when a trigger moves to another triggerer; that wait must go on."""
    ci_emulator.pause_queue()
    job_id = await submit(hook)
    await _in_triggerer(job_id, monkeypatch, deferred_count).on_kill()
    assert ((await hook.aget_job(job_id))["State"] == "Cancel") is cancelled


async def test_on_kill_swallows_errors(hook, ci_emulator, caplog, capsys):
    job_id = await submit(hook)
    ci_emulator.faults.add("status", status=500, count=100)
    await trigger(job_id).on_kill()  # must not raise
    ci_emulator.faults.clear()
    assert "Could not cancel" in logged(capsys, caplog)


def _defining(cls: type, name: str) -> type:
    return next(klass for klass in cls.__mro__ if name in klass.__dict__)


async def test_nothing_blocks_the_event_loop(hook, ci_emulator, monkeypatch, caplog):
    """asyncio debug mode reports every callback that holds the loop; the sync paths are booby-trapped."""
    job_id = await submit(hook)
    for name in ("get_job", "get_jobs", "cancel_job", "list_jobs", "settings", "get_connection", "_call"):
        monkeypatch.setattr(CloudInfiniteHook, name, on_loop_forbidden(_defining(CloudInfiniteHook, name), name))
    loop = asyncio.get_running_loop()
    loop.set_debug(True)
    loop.slow_callback_duration = 0.1
    caplog.set_level(logging.WARNING, logger="asyncio")
    try:
        (event,) = await events(trigger(job_id))
    finally:
        loop.set_debug(False)
    assert event["status"] == "success"
    slow = [r.getMessage() for r in caplog.records if r.name == "asyncio" and "took" in r.getMessage()]
    assert slow == []

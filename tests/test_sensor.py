"""CloudInfiniteJobSensor against the emulator: poke, soft_fail, deferral, resume."""

from __future__ import annotations

import pytest
from airflow.providers.common.compat.sdk import AirflowSensorTimeout, AirflowSkipException, TaskDeferred

from airflow_provider_ci.emulator.pytest_plugin import DEFAULT_BUCKET
from airflow_provider_ci.exceptions import CloudInfiniteError, CloudInfiniteJobError
from airflow_provider_ci.hooks.ci import CloudInfiniteHook
from airflow_provider_ci.sensors.job import CloudInfiniteJobSensor
from airflow_provider_ci.triggers.job import CloudInfiniteJobTrigger
from tests.support import FAST_RETRY, png
from tests.test_operator import FakeTI


@pytest.fixture
def hook(ci_emulator, ci_emulator_conn):
    ci_emulator.put_object(DEFAULT_BUCKET, "input/cat.png", png())
    return CloudInfiniteHook(retry=FAST_RETRY)


def submit(hook: CloudInfiniteHook) -> str:
    job = hook.submit_pic_process_job(
        input_object="input/cat.png", output_object="output/s.png", process_rule="imageMogr2/rotate/90"
    )
    return job["JobId"]


def sensor(job_id: str, **kwargs) -> CloudInfiniteJobSensor:
    return CloudInfiniteJobSensor(task_id="wait", job_id=job_id, poke_interval=0.05, timeout=20, **kwargs)


def finish(hook: CloudInfiniteHook, job_id: str) -> dict:
    import time

    for _ in range(200):
        detail = hook.get_job(job_id)
        if detail["State"] in ("Success", "Failed", "Cancel"):
            return detail
        time.sleep(0.05)
    raise AssertionError("job did not finish")


def test_poke_waits_then_succeeds(hook, ci_emulator):
    ci_emulator.pause_queue()
    job_id = submit(hook)
    s = sensor(job_id)
    assert s.poke({}) is False  # Pause keeps waiting
    ci_emulator.resume_queue()
    finish(hook, job_id)
    assert s.poke({}) is True


def test_poke_mode_execute_returns_the_detail(hook):
    job_id = submit(hook)
    detail = sensor(job_id, mode="poke").execute({"ti": FakeTI(), "task_reschedule_count": 0})
    assert (detail["JobId"], detail["State"]) == (job_id, "Success")


@pytest.mark.parametrize("soft_fail", [False, True])
def test_failed_job_fails_or_skips_the_sensor(hook, ci_emulator, soft_fail):
    ci_emulator.faults.add("job_failed", code="InvalidImage", message="broken")
    job_id = submit(hook)
    finish(hook, job_id)
    expected = AirflowSkipException if soft_fail else CloudInfiniteJobError
    with pytest.raises(expected, match="InvalidImage"):
        sensor(job_id, soft_fail=soft_fail).poke({})


def test_cancelled_job_fails_the_sensor(hook, ci_emulator):
    ci_emulator.pause_queue()
    job_id = submit(hook)
    hook.cancel_job(job_id)
    with pytest.raises(CloudInfiniteJobError, match="Cancel"):
        sensor(job_id).poke({})


def test_deferrable_pokes_once_then_defers_on_the_shared_trigger(hook, ci_emulator):
    ci_emulator.pause_queue()
    job_id = submit(hook)
    ci_emulator.clear_requests()
    with pytest.raises(TaskDeferred) as info:
        sensor(job_id, deferrable=True).execute({})
    trigger = info.value.trigger
    assert isinstance(trigger, CloudInfiniteJobTrigger)
    assert (trigger.job_id, trigger.poll_interval, trigger.cancel_on_kill) == (job_id, 0.05, False)
    assert len(ci_emulator.requests) == 1  # the one poke


def test_deferrable_does_not_defer_when_already_done(hook):
    job_id = submit(hook)
    finish(hook, job_id)
    assert sensor(job_id, deferrable=True).execute({})["State"] == "Success"


def test_execute_complete_branches():
    s = sensor("c1")
    detail = {"JobId": "c1", "State": "Success"}
    assert s.execute_complete({}, {"status": "success", "job_id": "c1", "detail": detail}) == detail
    with pytest.raises(CloudInfiniteJobError, match="boom"):
        s.execute_complete({}, {"status": "error", "job_id": "c1", "state": "Failed", "code": "X", "message": "boom"})
    with pytest.raises(AirflowSensorTimeout):
        s.execute_complete({}, {"status": "timeout", "job_id": "c1", "message": "late"})
    with pytest.raises(CloudInfiniteError, match="Unexpected"):
        s.execute_complete({}, None)
    soft = sensor("c1", soft_fail=True)
    with pytest.raises(AirflowSkipException):
        soft.execute_complete({}, {"status": "timeout", "job_id": "c1", "message": "late"})


def test_job_id_is_templated():
    assert "job_id" in CloudInfiniteJobSensor.template_fields


@pytest.fixture
def fast_hooks(monkeypatch):
    """Hooks the sensor makes itself retry as in production, minus the waiting."""
    original = CloudInfiniteHook.__init__

    def fast(self, *args, **kwargs):
        kwargs.setdefault("retry", FAST_RETRY)
        original(self, *args, **kwargs)

    monkeypatch.setattr(CloudInfiniteHook, "__init__", fast)


def test_a_failed_poke_returns_false_until_too_many_in_a_row(hook, ci_emulator, fast_hooks):
    """The trigger's policy in poke mode: a poke whose request failed (after the hook's retries)
    keeps waiting; only max_consecutive_failures failed pokes in a row end the wait."""
    job_id = submit(hook)
    finish(hook, job_id)
    attempts = FAST_RETRY.max_attempts
    s = sensor(job_id, max_consecutive_failures=3)
    fault = ci_emulator.faults.add("status", status=503, code="ServiceUnavailable", method="GET", count=2 * attempts)
    assert s.poke({}) is False
    assert s.poke({}) is False
    assert fault.count == 0  # both pokes really failed, every retry included
    assert s.poke({}) is True  # a success in between resets the count

    s = sensor(job_id, max_consecutive_failures=3)
    ci_emulator.faults.add("status", status=503, code="ServiceUnavailable", method="GET", count=3 * attempts)
    assert [s.poke({}), s.poke({})] == [False, False]
    with pytest.raises(CloudInfiniteError, match="503"):
        s.poke({})


def test_a_permanent_error_ends_the_poke_at_once(hook, ci_emulator, fast_hooks):
    job_id = submit(hook)
    ci_emulator.faults.add("status", status=403, method="GET", count=1)
    with pytest.raises(CloudInfiniteError, match="403"):
        sensor(job_id, max_consecutive_failures=3).poke({})


def test_deferral_honours_execution_timeout(hook, ci_emulator):
    """Airflow does not apply execution_timeout to a deferred task: the trigger's deadline does."""
    import time
    from datetime import timedelta

    ci_emulator.pause_queue()
    job_id = submit(hook)
    before = time.time()
    with pytest.raises(TaskDeferred) as info:
        sensor(job_id, deferrable=True, execution_timeout=timedelta(seconds=7), max_consecutive_failures=2).execute({})
    trigger = info.value.trigger
    assert before + 7 <= trigger.end_time <= time.time() + 7
    assert trigger.max_consecutive_failures == 2
    assert info.value.timeout == timedelta(seconds=7 + 0.05 + 60)  # the backstop trails the 7 s, not the 20 s

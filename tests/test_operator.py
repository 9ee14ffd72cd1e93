"""CloudInfinitePicProcessOperator against the emulator, with a minimal task-instance stand-in.

The end-to-end runs through real Airflow are in test_example_dags.py; these cover each branch.
"""

from __future__ import annotations

import importlib
import json
import sys
import time
import uuid
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import TaskDeferred

from airflow_provider_ci.emulator.pytest_plugin import DEFAULT_BUCKET, DEFAULT_REGION
from airflow_provider_ci.exceptions import CloudInfiniteError, CloudInfiniteJobError, CloudInfiniteValidationError
from airflow_provider_ci.hooks.ci import CloudInfiniteHook
from airflow_provider_ci.identity import task_identity
from airflow_provider_ci.links.job import CloudInfiniteJobLink
from airflow_provider_ci.operators import pic_process
from airflow_provider_ci.operators.pic_process import CloudInfinitePicProcessOperator
from airflow_provider_ci.triggers.job import CloudInfiniteJobTrigger
from tests.support import FAST_RETRY, png


class FakeTI:
    """What the operator uses of a task instance: identity, try number and XCom pushes, in order."""

    def __init__(self, try_number: int = 1, run_id: str | None = None, task_id: str = "process") -> None:
        self.dag_id, self.task_id, self.map_index = "example", task_id, -1
        self.run_id = run_id or f"manual__{uuid.uuid4().hex}"
        self.try_number = try_number
        self.pushed: list[tuple[str, Any]] = []

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed.append((key, value))

    def xcom_pull(self, task_ids: str, key: str) -> Any:
        return next((value for k, value in reversed(self.pushed) if k == key), None)


def context(ti: FakeTI | None = None) -> dict[str, Any]:
    return {"ti": ti or FakeTI(), "dag_run": SimpleNamespace(start_date=None)}


@pytest.fixture(autouse=True)
def emulator(ci_emulator, ci_emulator_conn, monkeypatch):
    ci_emulator.put_object(DEFAULT_BUCKET, "input/cat.png", png(40, 20))
    original = CloudInfiniteHook.__init__

    def fast(self, *args, **kwargs):
        kwargs.setdefault("retry", FAST_RETRY)
        original(self, *args, **kwargs)

    monkeypatch.setattr(CloudInfiniteHook, "__init__", fast)
    return ci_emulator


def operator(**kwargs: Any) -> CloudInfinitePicProcessOperator:
    args: dict[str, Any] = {
        "task_id": "process",
        "input_object": "input/cat.png",
        "output_object": "output/cat.webp",
        "process_rule": "imageMogr2/rotate/90/format/webp",
        "poll_interval": 0.05,
        "deferrable": False,
    }
    return CloudInfinitePicProcessOperator(**{**args, **kwargs})


def my_jobs(emulator, ti: FakeTI) -> list[dict]:
    prefix = task_identity(context(ti))
    return [j for j in emulator.jobs() if str(j["Operation"].get("UserData", "")).startswith(prefix)]


# -- construction -------------------------------------------------------------------------------------


def test_exactly_one_of_template_or_rule_at_parse_time():
    with pytest.raises(CloudInfiniteValidationError, match="template_id/process_rule"):
        operator(process_rule=None)
    with pytest.raises(CloudInfiniteValidationError, match="template_id/process_rule"):
        operator(template_id="t1abc")


def test_deferrable_defaults_to_the_airflow_setting(monkeypatch):
    for value in ("True", "False"):
        monkeypatch.setenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", value)
        reloaded = importlib.reload(pic_process)
        op = reloaded.CloudInfinitePicProcessOperator(
            task_id="x", input_object="a.png", output_object="b.png", process_rule="imageMogr2/strip"
        )
        assert op.deferrable is (value == "True")
    monkeypatch.delenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE")
    importlib.reload(pic_process)


def test_template_fields_cover_the_job_spec():
    assert {
        "tencent_ci_conn_id",
        "bucket",
        "region",
        "input_object",
        "output_object",
        "template_id",
        "process_rule",
        "user_data",
        "callback",
        "callback_mq_config",
    } <= set(CloudInfinitePicProcessOperator.template_fields)


# -- sync path -------------------------------------------------------------------------------------------


def test_sync_run_returns_the_final_detail_and_logs_each_state_once(emulator, capsys, caplog):
    ti = FakeTI()
    detail = operator().execute(context(ti))
    assert detail["State"] == "Success"
    assert ti.pushed[0] == ("job_id", detail["JobId"])
    assert ti.pushed[1] == (
        CloudInfiniteJobLink.key,
        {"job_id": detail["JobId"], "bucket": DEFAULT_BUCKET, "region": DEFAULT_REGION},
    )
    logs = capsys.readouterr().out + caplog.text
    assert logs.count(f"CI job {detail['JobId']} is Running") == 1
    assert (
        f"output/cat.webp (WEBP, 20x40, {detail['Operation']['PicProcessResult']['ProcessResult']['Size']} bytes)"
        in logs
    )


def test_wait_for_completion_false_returns_the_submitted_detail(emulator):
    detail = operator(wait_for_completion=False).execute(context())
    assert detail["State"] in ("Submitted", "Pause")


def test_failed_job_raises_with_id_code_message_and_request_id(emulator):
    emulator.faults.add("job_failed", code="InvalidImage", message="not decodable")
    with pytest.raises(CloudInfiniteJobError) as info:
        operator().execute(context())
    error = info.value
    assert (error.state, error.code, error.message) == ("Failed", "InvalidImage", "not decodable")
    assert error.request_id and error.job_id in str(error)


@pytest.fixture
def fast_jobs(monkeypatch):
    """Jobs that finish before the operator's first status check (as tiny images do on CI)."""
    real_get_job = CloudInfiniteHook.get_job

    def get_job_once_done(self, job_id, **kwargs):
        deadline = time.monotonic() + 10
        while (detail := real_get_job(self, job_id, **kwargs))["State"] not in ("Success", "Failed", "Cancel"):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        return detail

    monkeypatch.setattr(CloudInfiniteHook, "get_job", get_job_once_done)


@pytest.mark.usefixtures("fast_jobs")
def test_a_job_already_over_at_the_first_check_is_not_deferred(emulator):
    assert operator(deferrable=True).execute(context())["State"] == "Success"
    emulator.faults.add("job_failed", code="InvalidImage", message="not decodable")
    with pytest.raises(CloudInfiniteJobError, match="InvalidImage"):
        operator(deferrable=True).execute(context())


def test_sync_timeout_cancels_and_fails(emulator):
    emulator.pause_queue()
    ti = FakeTI()
    with pytest.raises(CloudInfiniteJobError, match="WaitTimeout"):
        operator(timeout=0.3).execute(context(ti))
    (job,) = my_jobs(emulator, ti)
    assert job["State"] == "Cancel"


# -- deferrable path ---------------------------------------------------------------------------------------


def test_defers_after_recording_the_job_with_plain_trigger_kwargs(emulator):
    emulator.pause_queue()
    ti = FakeTI()
    with pytest.raises(TaskDeferred) as info:
        operator(deferrable=True, timeout=timedelta(minutes=5), poll_interval=7).execute(context(ti))
    deferred = info.value
    assert isinstance(deferred.trigger, CloudInfiniteJobTrigger)
    assert deferred.method_name == "execute_complete"
    job_id = ti.pushed[0][1]
    _, kwargs = deferred.trigger.serialize()
    assert json.loads(json.dumps(kwargs)) == kwargs
    assert kwargs["job_id"] == job_id and kwargs["poll_interval"] == 7.0 and kwargs["cancel_on_kill"] is True
    assert 290 < kwargs["end_time"] - time.time() <= 300
    assert deferred.timeout > timedelta(minutes=5)  # a backstop behind the trigger's own deadline
    assert [key for key, _ in ti.pushed] == ["job_id", CloudInfiniteJobLink.key]


def test_a_shorter_execution_timeout_bounds_the_deferred_wait(emulator):
    """Airflow does not apply execution_timeout to a deferred task; the trigger's deadline does,
    so the job is still cancelled and the error explained when it passes."""
    emulator.pause_queue()
    with pytest.raises(TaskDeferred) as info:
        operator(
            deferrable=True, timeout=timedelta(hours=2), execution_timeout=timedelta(minutes=1), poll_interval=7
        ).execute(context())
    _, kwargs = info.value.trigger.serialize()
    assert 50 < kwargs["end_time"] - time.time() <= 60
    assert info.value.timeout == timedelta(seconds=60 + 7 + 60)


def test_execute_complete_success_returns_the_detail():
    detail = {"JobId": "c1", "State": "Success"}
    assert operator().execute_complete(context(), {"status": "success", "job_id": "c1", "detail": detail}) == detail


@pytest.mark.parametrize("event", [None, {}, {"status": "done", "job_id": "c1"}, {"status": "success"}])
def test_execute_complete_rejects_unexpected_events(event):
    with pytest.raises(CloudInfiniteError, match="Unexpected trigger event"):
        operator().execute_complete(context(), event)


def test_execute_complete_failed_event_raises_job_error():
    event = {"status": "error", "job_id": "c1", "state": "Failed", "code": "X", "message": "m", "request_id": "r"}
    with pytest.raises(CloudInfiniteJobError) as info:
        operator().execute_complete(context(), event)
    assert (info.value.job_id, info.value.code, info.value.message, info.value.request_id) == ("c1", "X", "m", "r")


@pytest.mark.parametrize("status", ["timeout", "error"])
def test_timeout_or_lost_wait_cancels_the_job_then_fails(emulator, status):
    emulator.pause_queue()
    ti = FakeTI()
    detail = operator(wait_for_completion=False).execute(context(ti))
    with pytest.raises(CloudInfiniteJobError):
        operator().execute_complete(context(ti), {"status": status, "job_id": detail["JobId"], "message": "m"})
    (job,) = my_jobs(emulator, ti)
    assert job["State"] == "Cancel"


# -- on_kill -------------------------------------------------------------------------------------------------


def test_on_kill_cancels_a_waiting_job(emulator):
    emulator.pause_queue()
    op = operator(wait_for_completion=False)
    ti = FakeTI()
    op.execute(context(ti))
    op.on_kill()
    assert my_jobs(emulator, ti)[0]["State"] == "Cancel"


def test_on_kill_never_raises(emulator):
    op = operator()
    op.job_id = "c0123"
    emulator.faults.add("status", status=500, count=100)
    op.on_kill()
    emulator.faults.clear()
    op.cancel_on_kill, op.job_id = False, "c0123"
    emulator.clear_requests()
    op.on_kill()
    assert emulator.requests == []


# -- retries reattach to this task instance's own job ----------------------------------------------------------


def test_a_retry_reattaches_instead_of_submitting_again(emulator):
    emulator.pause_queue()
    first = FakeTI(try_number=1)
    submitted = operator(wait_for_completion=False).execute(context(first))
    # The worker dies here, before the task records success; the retry runs the whole execute.
    emulator.resume_queue()
    retry = FakeTI(try_number=2, run_id=first.run_id)
    final = operator().execute(context(retry))
    assert final["JobId"] == submitted["JobId"]
    assert final["State"] == "Success"
    assert len(my_jobs(emulator, retry)) == 1
    assert retry.pushed[0] == ("job_id", submitted["JobId"])


def test_a_retry_after_success_returns_at_once(emulator):
    ti = FakeTI()
    done = operator().execute(context(ti))
    again = operator(deferrable=True).execute(context(FakeTI(try_number=2, run_id=ti.run_id)))
    assert again["JobId"] == done["JobId"]
    assert len(my_jobs(emulator, ti)) == 1


def test_a_retry_after_a_failed_job_submits_a_new_one(emulator):
    emulator.faults.add("job_failed", code="X", message="y")
    ti = FakeTI()
    with pytest.raises(CloudInfiniteJobError):
        operator().execute(context(ti))
    assert operator().execute(context(FakeTI(try_number=2, run_id=ti.run_id)))["State"] == "Success"
    assert [j["State"] for j in my_jobs(emulator, ti)] == ["Failed", "Success"]


def test_other_task_instances_with_the_same_input_are_never_adopted(emulator):
    emulator.pause_queue()
    theirs = operator(wait_for_completion=False).execute(context(FakeTI(run_id="manual__other")))
    mine = operator(wait_for_completion=False).execute(context(FakeTI(try_number=2, run_id="manual__mine")))
    assert mine["JobId"] != theirs["JobId"]


def test_user_data_given_means_plain_submit_semantics(emulator):
    detail = operator(user_data="my-batch-42", wait_for_completion=False).execute(context(FakeTI(try_number=3)))
    assert detail["Operation"]["UserData"] == "my-batch-42"


# -- lineage -------------------------------------------------------------------------------------------------


def test_openlineage_input_and_output_datasets():
    lineage = operator(output_bucket="out-1250000000").get_openlineage_facets_on_complete(None)
    assert [(d.namespace, d.name) for d in lineage.inputs] == [(f"cos://{DEFAULT_BUCKET}", "input/cat.png")]
    assert [(d.namespace, d.name) for d in lineage.outputs] == [("cos://out-1250000000", "output/cat.webp")]


def test_openlineage_is_optional(monkeypatch):
    monkeypatch.setitem(sys.modules, "airflow.providers.openlineage.extractors", None)  # as if not installed
    assert operator().get_openlineage_facets_on_complete(None) is None

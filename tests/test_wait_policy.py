"""The pieces every wait shares: one failure policy, one event-to-error mapping, one deadline
rule, the job fields declared once, and one task-instance identity for reattaching."""

from __future__ import annotations

import inspect
from datetime import timedelta
from types import SimpleNamespace

import pytest

from airflow_provider_ci import identity
from airflow_provider_ci.exceptions import CloudInfiniteError, CloudInfiniteServiceError, CloudInfiniteTransportError
from airflow_provider_ci.hooks.ci import CloudInfiniteHook
from airflow_provider_ci.model import JOB_FIELDS, SUBMIT_FIELDS, PicProcessJob
from airflow_provider_ci.operators.batch import SHARED_FIELDS, CloudInfiniteBatchPicProcessOperator
from airflow_provider_ci.operators.pic_process import CloudInfinitePicProcessOperator
from airflow_provider_ci.waiting import (
    PollFailures,
    event_error,
    failure_fields,
    job_error,
    read_event,
    timeout_fields,
    wait_limit,
)


def transient() -> Exception:
    return CloudInfiniteServiceError(status=503, code="ServiceUnavailable", message="busy", request_id="r1")


def test_poll_failures_end_a_wait_only_after_a_run_of_transient_errors():
    policy = PollFailures(max_consecutive=3)
    assert [policy.record(transient()), policy.record(transient())] == [False, False]
    policy.reset()
    assert [policy.record(transient()) for _ in range(3)] == [False, False, True]
    assert policy.describe(transient()).startswith("3 polls in a row failed")


def test_poll_failures_end_a_wait_at_once_on_a_permanent_error():
    denied = CloudInfiniteServiceError(status=403, code="AccessDenied", message="no", request_id="r2")
    assert PollFailures(max_consecutive=5).record(denied) is True
    assert PollFailures(max_consecutive=5).record(CloudInfiniteTransportError("reset", maybe_sent=True)) is False


def test_a_failed_job_and_its_event_raise_the_same_error():
    detail = {"JobId": "j1", "State": "Failed", "Code": "InvalidImage", "Message": "broken", "RequestId": "r3"}
    from_detail = job_error(detail)
    from_event = event_error({"status": "error", "job_id": "j1", **failure_fields(detail)})
    assert str(from_detail) == str(from_event)
    assert (from_event.job_id, from_event.state, from_event.code, from_event.request_id) == (
        "j1",
        "Failed",
        "InvalidImage",
        "r3",
    )
    assert failure_fields(transient()) == {
        "state": None,
        "code": "ServiceUnavailable",
        "message": str(transient()),
        "request_id": "r1",
    }
    timed_out = event_error({"status": "timeout", **timeout_fields("j2", {"State": "Running"}, 30)})
    assert (timed_out.code, timed_out.state) == ("WaitTimeout", "Running")
    assert "after 30 s" in str(timed_out)


@pytest.mark.parametrize("event", [None, [], {"status": "done"}, {"job_id": "j"}])
def test_an_unexpected_event_is_named(event):
    with pytest.raises(CloudInfiniteError, match="Unexpected trigger event"):
        read_event(event)


def test_the_wait_never_outlives_execution_timeout():
    assert wait_limit(3600, None) == 3600
    assert wait_limit(3600, timedelta(minutes=5)) == 300
    assert wait_limit(60, timedelta(hours=1)) == 60


def test_job_fields_are_declared_once():
    submit = inspect.signature(CloudInfiniteHook.submit_pic_process_job).parameters
    assert {name for name in submit if name != "self"} == set(SUBMIT_FIELDS)
    assert set(JOB_FIELDS) == set(PicProcessJob.__dataclass_fields__)
    assert set(SUBMIT_FIELDS) <= set(CloudInfinitePicProcessOperator.template_fields)
    assert set(SUBMIT_FIELDS) <= set(inspect.signature(CloudInfinitePicProcessOperator).parameters)
    assert set(SHARED_FIELDS) <= set(CloudInfiniteBatchPicProcessOperator.template_fields)
    assert set(SHARED_FIELDS) <= set(inspect.signature(CloudInfiniteBatchPicProcessOperator).parameters)


def ti_context(map_index: int = -1, try_number: int = 2, run_id: str = "r1") -> dict:
    ti = SimpleNamespace(dag_id="d", task_id="t", run_id=run_id, map_index=map_index, try_number=try_number)
    return {"ti": ti, "dag_run": SimpleNamespace(start_date=None)}


def job(user_data: str, state: str = "Running", created: str = "2026-12-01T10:00:00+0800") -> dict:
    return {
        "JobId": f"{user_data}/{state}/{created}",
        "State": state,
        "CreationTime": created,
        "Operation": {"UserData": user_data},
    }


def test_a_retry_finds_only_its_own_newest_living_jobs():
    mine = ti_context()
    other = ti_context(map_index=3)
    single = identity.user_data(ti_context(try_number=1))
    assert single.startswith(identity.task_identity(mine)) and single.endswith(":try1")
    listed = [
        job(single, "Success", "2026-12-01T10:00:00+0800"),
        job(identity.user_data(ti_context(try_number=2)), "Failed", "2026-12-01T10:05:00+0800"),
        job(identity.user_data(other), "Running", "2026-12-01T10:09:00+0800"),
        job(identity.user_data(mine, 0), "Running"),
        job(identity.user_data(mine, 0), "Submitted", "2026-12-01T10:01:00+0800"),
        job(identity.user_data(mine, 7), "Cancel"),
        job(identity.task_identity(mine) + "i1:try1:forged"),
        job("airflow-ci-submit:0123"),
    ]
    own = identity.own_jobs(mine, listed)
    assert own[None]["State"] == "Success"  # the newer Failed one does not count
    assert own[0]["State"] == "Submitted"  # the newest of item 0
    assert set(own) == {None, 0}  # item 7 was cancelled; another map index never matches

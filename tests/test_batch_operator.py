"""CloudInfiniteBatchPicProcessOperator against the emulator: exact summaries, listing, deferral, retries."""

from __future__ import annotations

import asyncio

import pytest
from airflow.providers.common.compat.sdk import TaskDeferred

from airflow_provider_ci.emulator.pytest_plugin import DEFAULT_BUCKET
from airflow_provider_ci.exceptions import CloudInfiniteValidationError
from airflow_provider_ci.hooks.ci import CloudInfiniteHook
from airflow_provider_ci.operators.batch import (
    CloudInfiniteBatchError,
    CloudInfiniteBatchPicProcessOperator,
    _first_event,
    output_key,
)
from airflow_provider_ci.triggers.batch import CloudInfiniteBatchJobTrigger
from tests.support import FAST_RETRY, png
from tests.test_operator import FakeTI, context


@pytest.fixture(autouse=True)
def emulator(ci_emulator, ci_emulator_conn, monkeypatch):
    for i in range(30):
        ci_emulator.put_object(DEFAULT_BUCKET, f"input/batch/{i:02d}.png", png(20 + i, 10))
    original = CloudInfiniteHook.__init__

    def fast(self, *args, **kwargs):
        kwargs.setdefault("retry", FAST_RETRY)
        original(self, *args, **kwargs)

    monkeypatch.setattr(CloudInfiniteHook, "__init__", fast)
    monkeypatch.setattr(CloudInfiniteBatchJobTrigger, "_hook", lambda self: CloudInfiniteHook(retry=FAST_RETRY))
    return ci_emulator


def items(n: int) -> list[dict[str, str]]:
    return [
        {"input_object": f"input/batch/{i:02d}.png", "output_object": f"output/batch/{i:02d}.webp"} for i in range(n)
    ]


def operator(**kwargs) -> CloudInfiniteBatchPicProcessOperator:
    args = {
        "task_id": "batch",
        "items": items(30),
        "process_rule": "imageMogr2/thumbnail/!50p/format/webp",
        "poll_interval": 0.1,
        "deferrable": False,
    }
    return CloudInfiniteBatchPicProcessOperator(**{**args, **kwargs})


def posts(emulator) -> int:
    return sum(1 for r in emulator.requests if r.method == "POST" and r.path == "/jobs")


def test_summary_is_exact_under_injected_failures(emulator):
    emulator.faults.add("job_failed", count=3, code="InvalidImage", message="bad pixels")
    emulator.faults.add("status", status=400, code="InvalidArgument", message="refused", method="POST", path="/jobs")
    summary = operator(allow_failures=4).execute(context())
    assert summary["total"] == 30
    assert summary["by_state"] == {"Success": 26, "Failed": 3, "NotSubmitted": 1}
    failed = [f for f in summary["failures"] if f["state"] == "Failed"]
    assert {(f["code"], f["message"]) for f in failed} == {("InvalidImage", "bad pixels")}
    assert all(f["job_id"] and f["input_object"].startswith("input/batch/") for f in failed)
    (refused,) = [f for f in summary["failures"] if f["state"] == "NotSubmitted"]
    assert refused["job_id"] is None and refused["code"] == "InvalidArgument"


@pytest.mark.parametrize(("allow", "fails"), [(2, True), (3, False), (0.05, True), (0.1, False)])
def test_allow_failures_as_count_or_ratio(emulator, allow, fails):
    emulator.faults.add("job_failed", count=3, code="InvalidImage", message="bad pixels")
    op = operator(allow_failures=allow)
    if fails:
        with pytest.raises(CloudInfiniteBatchError, match="3 of 30 CI jobs failed") as info:
            op.execute(context())
        assert info.value.summary["by_state"] == {"Success": 27, "Failed": 3}
    else:
        assert op.execute(context())["by_state"] == {"Success": 27, "Failed": 3}


def test_prefix_listing_with_an_output_key_template(emulator):
    emulator.put_object(DEFAULT_BUCKET, "input/batch/readme.txt", b"not an image")
    summary = operator(items=None, input_prefix="input/batch/", output_key_template="thumbs/{stem}.{ext}.webp").execute(
        context()
    )
    assert summary["by_state"] == {"Success": 30}
    assert emulator.get_object(DEFAULT_BUCKET, "thumbs/07.png.webp")[:4] == b"RIFF"
    assert output_key("out/{dir}/{stem}-small.{ext}", "a/b/c.jpg") == "out/a/b/c-small.jpg"


def test_deferrable_waits_for_all_in_one_deferral(emulator):
    ti = FakeTI()
    op = operator(deferrable=True)
    with pytest.raises(TaskDeferred) as info:
        op.execute(context(ti))
    trigger = info.value.trigger
    assert isinstance(trigger, CloudInfiniteBatchJobTrigger)
    jobs = ti.xcom_pull(task_ids="batch", key="jobs")
    assert sorted(trigger.job_ids) == sorted(j["job_id"] for j in jobs)
    event = asyncio.run(_first_event(CloudInfiniteBatchJobTrigger(**trigger.serialize()[1])))
    assert operator().execute_complete(context(ti), event)["by_state"] == {"Success": 30}


def test_a_retry_resubmits_only_what_has_no_living_job(emulator):
    emulator.pause_queue()
    first = FakeTI()
    operator(wait_for_completion=False).execute(context(first))
    earlier = [j["job_id"] for j in first.xcom_pull(task_ids="batch", key="jobs")]
    hook = CloudInfiniteHook()
    for job_id in earlier[:2]:  # two jobs end (cancelled) before the worker dies; 28 still wait
        hook.cancel_job(job_id)
    emulator.resume_queue()
    emulator.clear_requests()
    retry = FakeTI(try_number=2, run_id=first.run_id)
    summary = operator().execute(context(retry))
    assert summary["by_state"] == {"Success": 30}
    assert posts(emulator) == 2  # only the two whose jobs had ended without success
    now = [j["job_id"] for j in retry.xcom_pull(task_ids="batch", key="jobs")]
    assert now[2:] == earlier[2:]
    assert not set(now[:2]) & set(earlier[:2])


def test_every_item_is_checked_before_anything_is_sent(emulator):
    bad = items(5)
    bad[3] = {"input_object": "input/batch/03.png", "output_object": "/abs.webp"}
    emulator.clear_requests()
    with pytest.raises(CloudInfiniteValidationError) as info:
        operator(items=bad).execute(context())
    assert info.value.field == "items[3].output_object"
    assert emulator.requests == []


def test_progress_is_logged_not_per_job(emulator, caplog, capsys):
    caplog.set_level("INFO")
    operator().execute(context())
    text = caplog.text + capsys.readouterr().out
    assert 1 <= text.count("Submitted CI jobs") <= 5
    assert text.count("Submitted CI job c") == 0  # no per-job INFO line


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"items": None}, "items/input_prefix"),
        ({"items": None, "input_prefix": "in/"}, "output_key_template"),
        ({"process_rule": None}, "template_id/process_rule"),
        ({"allow_failures": 1.5}, "allow_failures"),
        ({"allow_failures": -1}, "allow_failures"),
    ],
)
def test_bad_arguments_fail_at_parse_time(kwargs, field):
    with pytest.raises(CloudInfiniteValidationError) as info:
        operator(**kwargs)
    assert info.value.field == field

"""The hook's async calls, STS tokens, and the rule that no secret reaches a log or an error."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re

import pytest
from airflow.sdk import BaseHook

from airflow_provider_ci.emulator import Emulator
from airflow_provider_ci.exceptions import CloudInfiniteServiceError
from airflow_provider_ci.hooks.ci import CloudInfiniteHook
from airflow_provider_ci.transport import RetryPolicy
from tests.support import FAST_RETRY, on_loop_forbidden, png

SIGNATURE = re.compile(r"q-signature=[0-9a-f]{40}")
TOKEN = "sts-session-token-6f1c2d"


@pytest.fixture
def hook(ci_emulator, ci_emulator_conn):
    conn = json.loads(os.environ["AIRFLOW_CONN_TENCENT_CI_DEFAULT"])
    ci_emulator.put_object(conn["extra"]["bucket"], "input/cat.png", png())
    return CloudInfiniteHook(retry=FAST_RETRY)


@pytest.mark.asyncio
async def test_async_calls_never_use_the_sync_connection_lookup(hook, ci_emulator, monkeypatch):
    job_id = (
        await asyncio.to_thread(
            hook.submit_pic_process_job,
            input_object="input/cat.png",
            output_object="output/a.png",
            process_rule="imageMogr2/rotate/90",
        )
    )["JobId"]
    fresh = CloudInfiniteHook(retry=FAST_RETRY)
    monkeypatch.setattr(CloudInfiniteHook, "get_connection", on_loop_forbidden(BaseHook, "get_connection"))
    monkeypatch.setattr(fresh, "_call", lambda *a, **k: pytest.fail("sync call"))
    ci_emulator.requests.clear()
    assert (await fresh.aget_job(job_id))["JobId"] == job_id
    both = await fresh.aget_jobs([job_id, job_id])
    assert list(both) == [job_id]
    ci_emulator.faults.add("status", status=503, method="GET")
    assert (await fresh.aget_job(job_id))["JobId"] == job_id  # retried
    assert len(ci_emulator.requests) == 4
    await fresh.aclose()


@pytest.mark.asyncio
async def test_async_cancel(hook, ci_emulator):
    ci_emulator.pause_queue()
    try:
        job_id = (
            await asyncio.to_thread(
                hook.submit_pic_process_job,
                input_object="input/cat.png",
                output_object="output/b.png",
                process_rule="imageMogr2/rotate/90",
            )
        )["JobId"]
        await hook.acancel_job(job_id)
        assert (await hook.aget_job(job_id))["State"] == "Cancel"
    finally:
        ci_emulator.resume_queue()
        await hook.aclose()


@pytest.fixture
def sts_emulator(tmp_path, monkeypatch):
    """An emulator that accepts only requests carrying (and signing) the STS token."""
    with Emulator(tmp_path, token=TOKEN) as emulator:
        bucket = "sts-1250000000"
        emulator.create_bucket(bucket)
        emulator.put_object(bucket, "input/cat.png", png())
        conn = emulator.airflow_connection(bucket, "ap-chongqing")
        monkeypatch.setenv("AIRFLOW_CONN_TENCENT_CI_DEFAULT", json.dumps(conn))
        yield emulator, conn


def test_sts_token_is_sent_and_signed_by_hook_and_cos_client(sts_emulator, caplog):
    emulator, conn = sts_emulator
    secret_key = conn["password"]
    caplog.set_level(logging.DEBUG)
    hook = CloudInfiniteHook(retry=FAST_RETRY)
    job = hook.submit_pic_process_job(
        input_object="input/cat.png", output_object="output/sts.png", process_rule="imageMogr2/rotate/90"
    )
    assert hook.get_job(job["JobId"])["JobId"] == job["JobId"]
    cos = hook.get_cos_client()
    cos.put_object(Bucket=conn["extra"]["bucket"], Key="input/up.png", Body=png(3, 3))
    body = cos.get_object(Bucket=conn["extra"]["bucket"], Key="input/up.png")["Body"].get_raw_stream().read()
    assert body == png(3, 3)
    assert emulator.get_object(conn["extra"]["bucket"], "input/up.png") == png(3, 3)
    # The SDK logs signing keys, Authorization headers and tokens at DEBUG: all redacted.
    assert any(r.name.startswith("qcloud_cos") for r in caplog.records)
    text = caplog.text
    assert secret_key not in text and TOKEN not in text and not SIGNATURE.search(text)


def test_without_the_token_the_emulator_refuses(sts_emulator, monkeypatch):
    _, conn = sts_emulator
    conn["extra"].pop("token")
    monkeypatch.setenv("AIRFLOW_CONN_TENCENT_CI_DEFAULT", json.dumps(conn))
    with pytest.raises(CloudInfiniteServiceError) as info:
        CloudInfiniteHook(retry=RetryPolicy(max_attempts=1)).get_job("cabc")
    assert info.value.status == 403


def test_no_secret_in_debug_logs_errors_or_reprs(sts_emulator, caplog, monkeypatch):
    emulator, conn = sts_emulator
    real_key = conn["password"]
    caplog.set_level(logging.DEBUG)
    hook = CloudInfiniteHook(retry=FAST_RETRY)
    emulator.faults.add("status", status=500, count=2, method="GET")
    hook.list_jobs()
    errors = []
    conn["password"] = "wrong-secret-key-value"
    monkeypatch.setenv("AIRFLOW_CONN_TENCENT_CI_DEFAULT", json.dumps(conn))
    bad = CloudInfiniteHook(retry=FAST_RETRY)
    with pytest.raises(CloudInfiniteServiceError) as info:
        bad.get_job("cabc")
    errors.append(info.value)
    ok, why = bad.test_connection()
    assert not ok
    exposed = "\n".join([caplog.text, why, *map(str, errors), *map(repr, errors), repr(hook), repr(hook.settings())])
    for secret in (real_key, conn["password"], TOKEN):
        assert secret not in exposed
    assert not SIGNATURE.search(exposed)
    assert "Authorization" not in exposed


@pytest.mark.asyncio
@pytest.mark.parametrize("fault", ["reset_after", "malformed", "status"])
async def test_async_submit_is_as_safe_as_the_sync_one(hook, ci_emulator, fault):
    before = {j["JobId"] for j in ci_emulator.jobs()}
    ci_emulator.faults.add(fault, method="POST", path="/jobs", status=503)
    job = await hook.asubmit_pic_process_job(
        input_object="input/cat.png", output_object="output/async.png", process_rule="imageMogr2/rotate/90"
    )
    created = [j["JobId"] for j in ci_emulator.jobs() if j["JobId"] not in before]
    assert created == [job["JobId"]]
    await hook.aclose()


@pytest.mark.asyncio
async def test_async_list_pages_like_the_sync_one(hook):
    assert len(await hook.alist_jobs(page_size=1, max_jobs=3)) == len(hook.list_jobs(page_size=1, max_jobs=3)) == 3
    await hook.aclose()

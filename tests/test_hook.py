"""CloudInfiniteHook against the emulator over real HTTP: calls, errors, retries, submit safety."""

from __future__ import annotations

import json
import time
from unittest import mock

import pytest

from airflow_provider_ci.exceptions import (
    CloudInfiniteJobError,
    CloudInfiniteJobNotFoundError,
    CloudInfiniteServiceError,
    CloudInfiniteSubmitUncertainError,
    CloudInfiniteTransportError,
    CloudInfiniteValidationError,
)
from airflow_provider_ci.hooks.ci import SUBMIT_TOKEN_PREFIX, CloudInfiniteHook
from tests.support import FAST_RETRY, REGION, png


@pytest.fixture
def emulator(ci_emulator, ci_emulator_conn):
    """The shared emulator, with the default connection pointing at it and a clean request log."""
    return ci_emulator


@pytest.fixture
def bucket(emulator):
    name = json.loads(_conn_env())["extra"]["bucket"]
    emulator.put_object(name, "input/cat.png", png())
    return name


def _conn_env() -> str:
    import os

    return os.environ["AIRFLOW_CONN_TENCENT_CI_DEFAULT"]


@pytest.fixture
def hook(emulator):
    hook = CloudInfiniteHook(retry=FAST_RETRY, timeout=(2.0, 5.0))
    yield hook
    hook.close()


def submit(hook: CloudInfiniteHook, **kwargs):
    args = {"input_object": "input/cat.png", "output_object": "output/cat.png", "process_rule": "imageMogr2/rotate/90"}
    return hook.submit_pic_process_job(**{**args, **kwargs})


def wait(hook: CloudInfiniteHook, job_id: str, timeout: float = 15.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        detail = hook.get_job(job_id)
        if detail["State"] in ("Success", "Failed", "Cancel"):
            return detail
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish")


# -- construction and connection ------------------------------------------------------------------


def test_building_the_hook_does_no_io():
    with mock.patch.object(CloudInfiniteHook, "get_connection", side_effect=AssertionError("I/O")) as get:
        CloudInfiniteHook("does_not_exist")
    get.assert_not_called()


def test_repr_holds_no_secret(hook):
    hook.settings()
    assert "password" not in repr(hook) and hook.settings().credentials.secret_key not in repr(hook.settings())


# -- the job API -----------------------------------------------------------------------------------


def test_submit_then_wait_for_success(hook, bucket, emulator):
    job = submit(hook, is_pic_info=True)
    assert job["State"] == "Submitted" and job["JobId"].startswith("c")
    assert job["RequestId"]
    assert job["Operation"]["UserData"].startswith(SUBMIT_TOKEN_PREFIX)
    done = wait(hook, job["JobId"])
    assert done["State"] == "Success"
    result = done["Operation"]["PicProcessResult"]
    assert result["OriginalInfo"]["ImageInfo"]["Width"] == 8
    assert isinstance(result["ProcessResult"]["Size"], int)
    assert done["StartTime"] and done["EndTime"]
    # Host and signature named the bucket's virtual host although we connected to 127.0.0.1.
    assert {r.host for r in emulator.requests} == {f"{bucket}.ci.{REGION}.myqcloud.com"}


def test_get_jobs_is_one_request_and_reports_unknown_ids(hook, bucket, emulator):
    a, b = submit(hook)["JobId"], submit(hook)["JobId"]
    emulator.requests.clear()
    assert list(hook.get_jobs([a, b])) == [a, b]
    with pytest.raises(CloudInfiniteJobNotFoundError) as info:
        hook.get_jobs([a, "cdeadbeef", b])
    assert info.value.job_ids == ["cdeadbeef"]
    assert set(info.value.found) == {a, b}
    assert [r.method for r in emulator.requests] == ["GET", "GET"]


def test_list_jobs_follows_next_token(hook, bucket, emulator):
    ids = {submit(hook, input_object="input/cat.png", output_object=f"output/list-{i}.png")["JobId"] for i in range(5)}
    emulator.requests.clear()
    listed = hook.list_jobs(page_size=2, order_by_time="Asc", start_creation_time="2000-01-01T00:00:00+0800")
    assert ids <= {job["JobId"] for job in listed}
    assert len(emulator.requests) >= 3
    assert len(hook.list_jobs(page_size=2, max_jobs=3)) == 3


def test_cancel_only_before_the_job_starts(hook, bucket, emulator):
    emulator.pause_queue()
    try:
        job = submit(hook)
        hook.cancel_job(job["JobId"])
        assert hook.get_job(job["JobId"])["State"] == "Cancel"
    finally:
        emulator.resume_queue()
    running = submit(hook)
    done = wait(hook, running["JobId"])
    with pytest.raises(CloudInfiniteServiceError) as info:
        hook.cancel_job(done["JobId"])
    assert info.value.status == 400 and info.value.request_id


def test_a_retried_cancel_that_already_went_through_succeeds(hook, bucket, emulator):
    emulator.pause_queue()
    try:
        job = submit(hook)
        emulator.faults.add("reset_after", method="PUT")
        hook.cancel_job(job["JobId"])
        assert hook.get_job(job["JobId"])["State"] == "Cancel"
    finally:
        emulator.resume_queue()


def test_failed_job_carries_code_and_message(hook, bucket, emulator):
    emulator.faults.add("job_failed", code="InvalidImage", message="the input is broken")
    done = wait(hook, submit(hook)["JobId"])
    assert (done["State"], done["Code"], done["Message"]) == ("Failed", "InvalidImage", "the input is broken")
    error = CloudInfiniteJobError.from_detail(done, done["RequestId"])
    assert done["JobId"] in str(error) and "InvalidImage" in str(error) and done["RequestId"] in str(error)


def test_test_connection(hook, bucket, emulator, monkeypatch):
    ok, message = hook.test_connection()
    assert ok and bucket in message
    assert [r.host for r in emulator.requests] == [f"ci.{REGION}.myqcloud.com", f"{bucket}.ci.{REGION}.myqcloud.com"]
    emulator.disable_pic_processing(bucket)
    try:
        ok, message = hook.test_connection()
    finally:
        emulator.enable_pic_processing(bucket)
    assert not ok and "not enabled" in message and "Credentials work" in message
    conn = json.loads(_conn_env())
    conn["password"] = "not-the-key"
    monkeypatch.setenv("AIRFLOW_CONN_TENCENT_CI_DEFAULT", json.dumps(conn))
    ok, message = CloudInfiniteHook(retry=FAST_RETRY).test_connection()
    assert not ok and "SignatureDoesNotMatch" in message and "not-the-key" not in message


# -- errors and retries -----------------------------------------------------------------------------


def test_service_error_carries_status_code_message_and_request_id(hook, bucket):
    with pytest.raises(CloudInfiniteServiceError) as info:
        submit(hook, output_bucket="nosuchbucket-1250000000")
    error = info.value
    assert error.status >= 400 and error.code and error.message and error.request_id
    assert error.request_id in str(error)


def test_business_error_in_a_200_is_detected(hook, bucket, emulator):
    emulator.faults.add("business_error", method="POST", code="InvalidArgument", message="no such thing")
    with pytest.raises(CloudInfiniteServiceError) as info:
        submit(hook)
    assert (info.value.status, info.value.code, info.value.message) == (200, "InvalidArgument", "no such thing")


@pytest.mark.parametrize(("status", "code"), [(500, "InternalError"), (503, "SlowDown"), (429, "SlowDown")])
def test_transient_statuses_are_retried(hook, bucket, emulator, status, code):
    job_id = submit(hook)["JobId"]
    emulator.requests.clear()
    emulator.faults.add("status", status=status, code=code, count=2, method="GET")
    assert hook.get_job(job_id)["JobId"] == job_id
    assert len(emulator.requests) == 3


def test_client_errors_are_not_retried(hook, bucket, emulator):
    emulator.faults.add("status", status=403, code="AccessDenied", count=3, method="GET")
    with pytest.raises(CloudInfiniteServiceError) as info:
        hook.get_job("cabc")
    assert info.value.code == "AccessDenied"
    assert len(emulator.requests) == 1


def test_retries_are_bounded(hook, bucket, emulator):
    emulator.faults.add("status", status=500, count=10, method="GET")
    with pytest.raises(CloudInfiniteServiceError):
        hook.get_job("cabc")
    assert len(emulator.requests) == FAST_RETRY.max_attempts


def test_resets_and_garbage_are_retried_for_reads(hook, bucket, emulator):
    job_id = submit(hook)["JobId"]
    emulator.requests.clear()
    emulator.faults.add("reset_before", method="GET")
    emulator.faults.add("malformed", method="GET")
    assert hook.get_job(job_id)["JobId"] == job_id
    assert len(emulator.requests) == 3


def test_unreachable_service_fails_cleanly(monkeypatch, emulator):
    conn = json.loads(_conn_env())
    conn["extra"]["endpoint_url"] = "http://127.0.0.1:9"  # discard port: nothing listens
    monkeypatch.setenv("AIRFLOW_CONN_TENCENT_CI_DEFAULT", json.dumps(conn))
    with pytest.raises(CloudInfiniteTransportError, match=r"could not connect|connection failed"):
        CloudInfiniteHook(retry=FAST_RETRY).get_job("cabc")


# -- a submit is never blindly re-sent ------------------------------------------------------------------


@pytest.mark.parametrize(
    "fault",
    [
        {"kind": "reset_after"},  # the job exists, the answer never came
        {"kind": "malformed"},  # the job exists, the answer is unreadable
        {"kind": "status", "status": 503},  # no job: a re-send is needed and safe
        {"kind": "reset_before"},  # no job
    ],
)
def test_submit_creates_exactly_one_job_despite_failures(hook, bucket, emulator, fault):
    before = len(emulator.jobs())
    emulator.faults.add(**fault, method="POST", path="/jobs")
    job = submit(hook)
    jobs = emulator.jobs()
    assert len(jobs) == before + 1
    assert job["JobId"] in {j["JobId"] for j in jobs}
    assert wait(hook, job["JobId"])["State"] == "Success"


def test_submit_after_a_read_timeout_adopts_the_created_job(bucket, emulator):
    hook = CloudInfiniteHook(retry=FAST_RETRY, timeout=(2.0, 0.5))
    before = {j["JobId"] for j in emulator.jobs()}
    emulator.faults.add("slow_answer", seconds=1.5, method="POST", path="/jobs")
    job = submit(hook)
    time.sleep(1.2)  # let the slow answer finish, so a second job would be visible
    created = [j for j in emulator.jobs() if j["JobId"] not in before]
    assert [j["JobId"] for j in created] == [job["JobId"]]
    assert sum(1 for r in emulator.requests if r.method == "POST" and r.path == "/jobs") == 1


def test_submit_with_user_data_adopts_the_one_identical_job(hook, bucket, emulator):
    before = len(emulator.jobs())
    emulator.faults.add("reset_after", method="POST", path="/jobs")
    job = submit(hook, user_data="batch-7/cat", output_object="output/ud-once.png")
    assert len(emulator.jobs()) == before + 1
    assert job["Operation"]["UserData"] == "batch-7/cat"


def test_submit_refuses_to_guess_between_identical_jobs(hook, bucket, emulator):
    args = {"user_data": "same", "output_object": "output/twice.png"}
    submit(hook, **args)
    emulator.faults.add("reset_after", method="POST", path="/jobs")
    with pytest.raises(CloudInfiniteSubmitUncertainError) as info:
        submit(hook, **args)
    assert len(info.value.candidate_job_ids) == 2


# -- validation: nothing is sent ---------------------------------------------------------------------

BAD_CALLS = [
    ({"job_level": 5}, "job_level"),
    ({"user_data": "é"}, "user_data"),
    ({"user_data": "x" * 2000}, "user_data"),
    ({"process_rule": None}, "template_id/process_rule"),
    ({"input_object": ""}, "input_object"),
    ({"output_object": "/out.png"}, "output_object"),
    ({"bucket": "Bad_Bucket"}, "bucket"),
    ({"region": "Chongqing"}, "region"),
    ({"output_region": "ap_chongqing"}, "output_region"),
    ({"callback_format": "TEXT"}, "callback_format"),
    ({"callback_type": "Mail"}, "callback_type"),
    ({"callback_type": "TDMQ"}, "callback_mq_config"),
]


@pytest.mark.parametrize(("changes", "field"), BAD_CALLS)
def test_bad_submit_input_sends_nothing(hook, bucket, emulator, changes, field):
    with pytest.raises(CloudInfiniteValidationError) as info:
        submit(hook, **changes)
    assert info.value.field == field
    assert emulator.requests == []


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda h: h.get_job("c1,c2"), "job_id"),
        (lambda h: h.get_jobs([]), "job_ids"),
        (lambda h: h.list_jobs(states=["Done"]), "states"),
        (lambda h: h.list_jobs(page_size=500), "page_size"),
        (lambda h: h.cancel_job("../x"), "job_id"),
    ],
)
def test_bad_read_input_sends_nothing(hook, emulator, call, field):
    with pytest.raises(CloudInfiniteValidationError) as info:
        call(hook)
    assert info.value.field == field
    assert emulator.requests == []


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda c: c.pop("login"), "login"),
        (lambda c: c.pop("password"), "password"),
        (lambda c: c["extra"].pop("region"), "region"),
        (lambda c: c["extra"].update(region="somewhere"), "extra.region"),
        (lambda c: c["extra"].update(bucket="nobucket"), "extra.bucket"),
        (lambda c: c["extra"].update(scheme="ftp"), "extra.scheme"),
        (lambda c: c["extra"].update(endpoint_url="ftp://127.0.0.1"), "endpoint_url"),
        (lambda c: c["extra"].update(regoin="ap-chongqing"), "extra"),
    ],
)
def test_bad_connection_sends_nothing(monkeypatch, emulator, edit, field):
    conn = json.loads(_conn_env())
    edit(conn)
    monkeypatch.setenv("AIRFLOW_CONN_TENCENT_CI_DEFAULT", json.dumps(conn))
    with pytest.raises(CloudInfiniteValidationError) as info:
        CloudInfiniteHook().get_job("cabc")
    assert info.value.field.endswith(field)
    assert emulator.requests == []


# -- templates and object work ------------------------------------------------------------------------------


def test_templates_create_find_and_drive_a_job(hook, bucket):
    created = hook.create_template(name="hook-test-thumb", process_rule="imageMogr2/thumbnail/4x", is_pic_info=True)
    assert created["TemplateId"] and created["Name"] == "hook-test-thumb"
    assert created["TemplateId"] in {t["TemplateId"] for t in hook.get_templates(name="hook-test")}
    job = submit(hook, process_rule=None, template_id=created["TemplateId"], output_object="output/tpl.png")
    done = wait(hook, job["JobId"])
    assert done["Operation"]["TemplateName"] == "hook-test-thumb"
    assert (done["Operation"]["PicProcessResult"]["ProcessResult"]["Width"], done["State"]) == (4, "Success")
    with pytest.raises(CloudInfiniteValidationError, match="name"):
        hook.create_template(name="has space", process_rule="imageMogr2/strip")


def test_sdk_upload_job_and_sdk_download_of_the_output(hook, bucket, emulator):
    """cos-python-sdk-v5, configured by the hook, against the emulator's COS host form."""
    import io

    from PIL import Image

    cos = hook.get_cos_client()
    cos.put_object(Bucket=bucket, Key="input/sdk.png", Body=png(50, 10))
    assert cos.object_exists(Bucket=bucket, Key="input/sdk.png")
    job = submit(
        hook,
        input_object="input/sdk.png",
        output_object="output/sdk.jpg",
        process_rule="imageMogr2/rotate/90/format/jpg",
    )
    assert wait(hook, job["JobId"])["State"] == "Success"
    body = cos.get_object(Bucket=bucket, Key="output/sdk.jpg")["Body"].get_raw_stream().read()
    with Image.open(io.BytesIO(body)) as image:
        assert (image.format, image.size) == ("JPEG", (10, 50))
    assert {r.host for r in emulator.requests if r.path.startswith("/input") or r.path.startswith("/output")} == {
        f"{bucket}.cos.{REGION}.myqcloud.com"
    }


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"max_qps": 0}, "extra.max_qps"),
        ({"max_qps": "fast"}, "extra.max_qps"),
        ({"poll_batch_size": 500}, "extra.poll_batch_size"),
        ({"poll_batch_size": 2.5}, "extra.poll_batch_size"),
    ],
)
def test_bad_rate_and_batch_settings_are_named(monkeypatch, emulator, extra, field):
    conn = json.loads(_conn_env())
    conn["extra"].update(extra)
    monkeypatch.setenv("AIRFLOW_CONN_TENCENT_CI_DEFAULT", json.dumps(conn))
    with pytest.raises(CloudInfiniteValidationError) as info:
        CloudInfiniteHook().settings()
    assert info.value.field.endswith(field)

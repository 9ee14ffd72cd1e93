"""The SDK's second path: cos-python-sdk-v5's ``ci_*_media_pic_jobs`` against the emulator's ``/pic_jobs``.

Tencent's own PicProcess demo submits on ``/pic_jobs``; the provider keeps ``/jobs``. The
emulator serves both from one job store, so a job made on one path is read on the other.
"""

from __future__ import annotations

import io
import time

import pytest
from PIL import Image

from airflow_provider_ci.emulator.pytest_plugin import DEFAULT_BUCKET, DEFAULT_REGION
from airflow_provider_ci.hooks.ci import CloudInfiniteHook
from tests.support import jpeg

KEY = "pic-jobs/deer.jpg"
OUT = "pic-jobs/out/deer.png"


def _finished(hook: CloudInfiniteHook, job_id: str, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while (detail := hook.get_job(job_id))["State"] not in ("Success", "Failed") and time.monotonic() < deadline:
        time.sleep(0.1)
    return detail


def _jobs(rule: str = "imageMogr2/thumbnail/!50p/format/png") -> dict:
    """A PicProcess job as the SDK demo (demo/ci_media.py) builds it: no QueueId, no Content-Type."""
    return {
        "Tag": "PicProcess",
        "Input": {"Object": KEY},
        "Operation": {
            "PicProcess": {"IsPicInfo": "true", "ProcessRule": rule},
            "Output": {"Region": DEFAULT_REGION, "Bucket": DEFAULT_BUCKET, "Object": OUT},
        },
    }


@pytest.fixture
def sdk(ci_emulator, ci_emulator_conn):
    ci_emulator.put_object(DEFAULT_BUCKET, KEY, jpeg(64, 48))
    hook = CloudInfiniteHook()
    return hook, hook.get_ci_client()


def test_the_sdk_creates_gets_and_lists_pic_jobs_on_the_emulator(ci_emulator, sdk):
    hook, client = sdk
    created = client.ci_create_media_pic_jobs(Bucket=DEFAULT_BUCKET, Jobs=_jobs())
    (detail,) = created["JobsDetail"]
    job_id = detail["JobId"]
    assert detail["State"] == "Submitted" and detail["Tag"] == "PicProcess"

    final = _finished(hook, job_id)  # the provider polls /jobs: the same job
    assert final["State"] == "Success", final

    got = client.ci_get_media_pic_jobs(Bucket=DEFAULT_BUCKET, JobIDs=job_id)
    assert [(d["JobId"], d["State"]) for d in got["JobsDetail"]] == [(job_id, "Success")]
    listed = client.ci_list_media_pic_jobs(Bucket=DEFAULT_BUCKET, Tag="PicProcess", Size=100)
    assert job_id in [d["JobId"] for d in listed["JobsDetail"]]

    out = Image.open(io.BytesIO(ci_emulator.get_object(DEFAULT_BUCKET, OUT)))
    assert (out.format, out.size) == ("PNG", (32, 24))
    paths = {(r.method, r.path.split("/")[1], r.host.split(".")[1]) for r in ci_emulator.requests}
    assert {("POST", "pic_jobs", "ci"), ("GET", "pic_jobs", "ci")} <= paths


def test_a_job_the_provider_submitted_on_jobs_is_read_on_pic_jobs(sdk):
    hook, client = sdk
    submitted = hook.submit_pic_process_job(input_object=KEY, output_object=OUT, process_rule="imageMogr2/rotate/90")
    got = client.ci_get_media_pic_jobs(Bucket=DEFAULT_BUCKET, JobIDs=submitted["JobId"])
    assert got["JobsDetail"][0]["Input"]["Object"] == KEY


def test_pic_jobs_keeps_the_rules_of_jobs(ci_emulator, sdk):
    from qcloud_cos.cos_exception import CosServiceError

    _, client = sdk
    bad = _jobs()
    bad["Operation"]["Output"]["Object"] = "/leading-slash.png"
    before = len(ci_emulator.jobs(DEFAULT_BUCKET))
    with pytest.raises(CosServiceError) as caught:
        client.ci_create_media_pic_jobs(Bucket=DEFAULT_BUCKET, Jobs=bad)
    assert caught.value.get_status_code() == 400
    assert "Operation/Output/Object" in caught.value.get_origin_msg()
    assert len(ci_emulator.jobs(DEFAULT_BUCKET)) == before  # nothing recorded


def test_without_endpoint_url_the_ci_client_goes_to_the_buckets_ci_host():
    from airflow_provider_ci.connection import ConnectionSettings
    from airflow_provider_ci.cos_sdk import ci_client, cos_client

    settings = ConnectionSettings.parse(
        "c", "AKIDEXAMPLE", "secret", {"region": "ap-guangzhou", "bucket": "photos-1250000000"}
    )
    ci = ci_client(settings)._conf
    assert ci.uri(bucket="photos-1250000000", path="pic_jobs", endpoint=ci._endpoint_ci) == (
        "https://photos-1250000000.ci.ap-guangzhou.myqcloud.com/pic_jobs"
    )
    cos = cos_client(settings)._conf  # object calls stay on the COS host
    assert (
        cos.uri(bucket="photos-1250000000", path="k.jpg")
        == "https://photos-1250000000.cos.ap-guangzhou.myqcloud.com/k.jpg"
    )

"""Templates, the picture queue and service activation over real HTTP."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
import requests
from emulator_client import (
    BUCKET,
    OUT_BUCKET,
    REGION,
    CiClient,
    error_code,
    jpeg,
    make_emulator,
    parse,
    xml_all,
    xml_text,
)

from airflow_provider_ci.emulator import Emulator


def template_body(name: str = "thumb", rule: str = "imageMogr2/rotate/90", is_pic_info: str = "true") -> str:
    return (
        f"<Request><Tag>PicProcess</Tag><Name>{name}</Name><PicProcess><IsPicInfo>{is_pic_info}</IsPicInfo>"
        f"<ProcessRule>{rule}</ProcessRule></PicProcess></Request>"
    )


def create_template(ci: CiClient, name: str = "thumb", rule: str = "imageMogr2/rotate/90") -> str:
    response = ci.call("POST", "/template", body=template_body(name, rule))
    assert response.status_code == 200, response.text
    return xml_text(response.content, "Template/TemplateId")


def queue_id(ci: CiClient) -> str:
    return xml_text(ci.call("GET", "/picqueue").content, "QueueList/QueueId")


def test_create_template_answers_the_template(ci: CiClient) -> None:
    response = ci.call("POST", "/template", body=template_body("缩略图_1"))

    assert response.status_code == 200
    root = parse(response.content)
    assert root.findtext("RequestId") == response.headers["x-ci-request-id"]
    template = root.find("Template")
    assert template is not None
    assert [child.tag for child in template] == [
        "Tag",
        "TemplateId",
        "Name",
        "BucketId",
        "Category",
        "PicProcess",
        "CreateTime",
        "UpdateTime",
    ]
    assert re.fullmatch(r"t1[0-9a-f]{32}", template.findtext("TemplateId") or "")
    assert (template.findtext("Name"), template.findtext("BucketId"), template.findtext("Category")) == (
        "缩略图_1",
        BUCKET,
        "Custom",
    )
    assert template.findtext("PicProcess/ProcessRule") == "imageMogr2/rotate/90"


def test_job_with_template_uses_its_rule_and_shows_its_name(ci: CiClient) -> None:
    template_id = create_template(ci, "rotate")

    response = ci.submit(template_id=template_id, rule=None)

    assert response.status_code == 200, response.text
    operation = parse(response.content).find("JobsDetail/Operation")
    assert operation is not None
    assert [child.tag for child in operation] == ["Output", "TemplateId", "TemplateName", "UserData", "JobLevel"]
    assert (operation.findtext("TemplateId"), operation.findtext("TemplateName")) == (template_id, "rotate")
    final = ci.wait(xml_text(response.content, "JobId"))
    assert xml_text(final, "State") == "Success"
    assert xml_text(final, "OriginalInfo/ImageInfo/Width") == "8"  # the template's IsPicInfo=true


def test_describe_filters_and_pages_templates(ci: CiClient) -> None:
    ids = [create_template(ci, name) for name in ("alpha-1", "alpha-2", "beta")]

    def described(**params: str) -> tuple[str, list[str]]:
        response = ci.call("GET", "/template", params)
        assert response.status_code == 200, response.text
        return xml_text(response.content, "TotalCount"), xml_all(response.content, "TemplateList/TemplateId")

    assert described() == ("3", ids)
    assert described(name="alpha") == ("2", ids[:2])
    assert described(ids=f"{ids[2]},{ids[0]}") == ("2", [ids[0], ids[2]])
    assert described(pageNumber="2", pageSize="2") == ("3", ids[2:])
    assert described(category="Official") == ("0", [])
    assert described(tag="PicProcess", category="Custom") == ("3", ids)
    bad = ci.call("GET", "/template", {"pageSize": "500"})
    assert (bad.status_code, error_code(bad)) == (400, "InvalidArgument")
    assert "pageSize" in xml_text(bad.content, "Message")


def test_update_and_delete_a_template(ci: CiClient) -> None:
    template_id = create_template(ci)

    updated = ci.call("PUT", f"/template/{template_id}", body=template_body("renamed", "imageMogr2/format/png"))
    assert updated.status_code == 200, updated.text
    assert xml_text(updated.content, "Template/Name") == "renamed"
    assert xml_text(updated.content, "Template/PicProcess/ProcessRule") == "imageMogr2/format/png"

    deleted = ci.call("DELETE", f"/template/{template_id}")
    assert deleted.status_code == 200
    assert xml_text(deleted.content, "TemplateId") == template_id
    for method in ("PUT", "DELETE"):
        gone = ci.call(method, f"/template/{template_id}", body=template_body() if method == "PUT" else b"")
        assert (gone.status_code, error_code(gone)) == (404, "NoSuchTemplate")
    submit = ci.submit(template_id=template_id, rule=None)
    assert (submit.status_code, error_code(submit)) == (400, "InvalidArgument")


@pytest.mark.parametrize(
    ("body", "names"),
    [
        (template_body(name="bad name!"), "Name"),
        (template_body(name="n" * 65), "Name"),
        (template_body(rule="resize/2"), "PicProcess/ProcessRule"),
        (template_body(is_pic_info="1"), "PicProcess/IsPicInfo"),
        (template_body().replace("<Tag>PicProcess</Tag>", "<Tag>Snapshot</Tag>"), "Tag"),
        ("<Request><Tag>PicProcess</Tag><Name>x</Name></Request>", "PicProcess/ProcessRule"),
    ],
)
def test_invalid_templates_are_rejected_naming_the_element(ci: CiClient, body: str, names: str) -> None:
    response = ci.call("POST", "/template", body=body)

    assert response.status_code == 400
    assert names in xml_text(response.content, "Message")
    assert xml_all(ci.call("GET", "/template").content, "TemplateList") == []


def test_the_bucket_has_one_active_queue(ci: CiClient) -> None:
    response = ci.call("GET", "/picqueue")

    assert response.status_code == 200
    root = parse(response.content)
    assert root.findtext("TotalCount") == "1"
    queue = root.find("QueueList")
    assert queue is not None
    assert re.fullmatch(r"p[0-9a-f]{32}", queue.findtext("QueueId") or "")
    assert (queue.findtext("State"), queue.findtext("MaxSize"), queue.findtext("MaxConcurrent")) == (
        "Active",
        "10000",
        "10",
    )
    assert queue.findtext("Category") == "PicProcessing"
    assert queue.findtext("NotifyConfig/State") == "Off"
    unknown = ci.call("GET", "/picqueue", {"queueIds": "pnope", "state": "All"})
    assert xml_all(unknown.content, "NonExistPIDs") == ["pnope"]
    assert xml_text(unknown.content, "TotalCount") == "0"
    assert xml_text(ci.call("GET", "/picqueue", {"state": "Paused"}).content, "TotalCount") == "0"


def test_pausing_the_queue_holds_jobs_in_pause_until_it_is_active_again(ci: CiClient) -> None:
    qid = queue_id(ci)
    paused = ci.call("PUT", f"/picqueue/{qid}", body="<Request><Name>slow</Name><State>Paused</State></Request>")
    assert paused.status_code == 200, paused.text
    assert (xml_text(paused.content, "Queue/Name"), xml_text(paused.content, "Queue/State")) == ("slow", "Paused")

    job_id = ci.submit_ok()
    time.sleep(0.2)  # well past queue_delay
    assert xml_text(ci.job(job_id), "State") == "Pause"
    listed = ci.call("GET", "/jobs", {"tag": "PicProcess", "states": "Pause"})
    assert xml_all(listed.content, "JobsDetail/JobId") == [job_id]

    active = ci.call("PUT", f"/picqueue/{qid}", body="<Request><State>Active</State></Request>")
    assert active.status_code == 200
    assert xml_text(ci.wait(job_id), "State") == "Success"


def test_pause_does_not_touch_a_running_job(tmp_path: Path) -> None:
    with make_emulator(tmp_path, queue_delay=0, run_time=0.4) as emulator:
        emulator.put_object(BUCKET, "in/pic.jpg", jpeg())
        ci = CiClient(emulator)
        job_id = ci.submit_ok()
        ci.wait(job_id, ("Running",))

        emulator.pause_queue(BUCKET)

        assert xml_text(ci.wait(job_id), "State") == "Success"


@pytest.mark.parametrize(
    ("item", "body", "status", "code"),
    [
        ("pnope", "<Request><State>Paused</State></Request>", 404, "NoSuchQueue"),
        (None, "<Request><State>Sleeping</State></Request>", 400, "InvalidArgument"),
        (None, f"<Request><Name>{'n' * 129}</Name></Request>", 400, "InvalidArgument"),
    ],
)
def test_bad_queue_updates(ci: CiClient, item: str | None, body: str, status: int, code: str) -> None:
    response = ci.call("PUT", f"/picqueue/{item or queue_id(ci)}", body=body)

    assert (response.status_code, error_code(response)) == (status, code)
    assert xml_text(ci.call("GET", "/picqueue").content, "QueueList/State") == "Active"


def test_picbucket_lists_enabled_buckets_on_the_service_host(emulator: Emulator) -> None:
    service = CiClient(emulator, host=f"ci.{REGION}.myqcloud.com")

    def listed(**params: str) -> list[str]:
        response = service.call("GET", "/picbucket", params)
        assert response.status_code == 200, response.text
        return xml_all(response.content, "PicBucketList/BucketId")

    assert listed() == [BUCKET, OUT_BUCKET]
    assert listed(bucketNames=OUT_BUCKET) == [OUT_BUCKET]
    assert listed(bucketName="example") == [BUCKET]
    assert listed(regions=f"ap-beijing,{REGION}") == [BUCKET, OUT_BUCKET]
    assert listed(regions="ap-beijing") == []
    entry = parse(service.call("GET", "/picbucket", {"bucketNames": BUCKET}).content).find("PicBucketList")
    assert entry is not None
    assert (entry.findtext("Name"), entry.findtext("Region")) == ("examplebucket", REGION)


def test_a_bucket_without_pic_processing_refuses_job_calls_until_enabled(emulator: Emulator, ci: CiClient) -> None:
    emulator.disable_pic_processing(BUCKET)

    refused = ci.submit()
    assert (refused.status_code, error_code(refused)) == (403, "PicProcessNotEnabled")
    assert emulator.jobs() == []
    service = CiClient(emulator, host=f"ci.{REGION}.myqcloud.com")
    assert xml_all(service.call("GET", "/picbucket").content, "PicBucketList/BucketId") == [OUT_BUCKET]

    enabled = ci.call("POST", "/picbucket")
    assert enabled.status_code == 200
    assert xml_text(enabled.content, "PicBucket/BucketId") == BUCKET
    assert ci.submit().status_code == 200
    disabled = ci.call("DELETE", "/picbucket")
    assert disabled.status_code == 200
    assert error_code(ci.call("GET", "/jobs", {"tag": "PicProcess"})) == "PicProcessNotEnabled"


def test_queue_control_endpoint_pauses_and_resumes(emulator: Emulator, ci: CiClient) -> None:
    paused = requests.put(f"{emulator.url}/_emulator/queue", json={"state": "Paused", "bucket": BUCKET}, timeout=5)
    assert paused.status_code == 200
    job_id = ci.submit_ok()
    assert xml_text(ci.job(job_id), "State") == "Pause"

    requests.put(f"{emulator.url}/_emulator/queue", json={"state": "Active"}, timeout=5)

    assert xml_text(ci.wait(job_id), "State") == "Success"
    bad = requests.put(f"{emulator.url}/_emulator/queue", json={"state": "Asleep"}, timeout=5)
    assert bad.status_code == 400

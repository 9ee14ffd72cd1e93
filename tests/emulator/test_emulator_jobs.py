"""The CI job API over real HTTP: submit, query, list, cancel, failures, priorities."""

from __future__ import annotations

import hashlib
import re
import time
from pathlib import Path

import pytest
from emulator_client import (
    BUCKET,
    OUT_BUCKET,
    REGION,
    CiClient,
    error_code,
    job_body,
    jpeg,
    make_emulator,
    parse,
    xml_all,
    xml_text,
)

from airflow_provider_ci.emulator import Emulator

TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+0800$")
DETAIL_ORDER = [
    "Code",
    "Message",
    "JobId",
    "State",
    "CreationTime",
    "EndTime",
    "StartTime",
    "QueueId",
    "Tag",
    "Input",
    "Operation",
]


def md5_etag(data: bytes) -> str:
    return f'"{hashlib.md5(data).hexdigest()}"'


def test_submit_answers_a_submitted_jobs_detail_shaped_like_the_seed(ci: CiClient) -> None:
    response = ci.submit(job_level="1")

    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/xml"
    assert response.headers["Server"] == "tencent-ci"
    assert response.headers["x-ci-request-id"]
    detail = parse(response.content).find("JobsDetail")
    assert detail is not None
    assert [child.tag for child in detail] == DETAIL_ORDER
    assert re.fullmatch(r"c[0-9a-f]{32}", detail.findtext("JobId") or "")
    assert re.fullmatch(r"p[0-9a-f]{32}", detail.findtext("QueueId") or "")
    assert TIME.match(detail.findtext("CreationTime") or "")
    assert (detail.findtext("State"), detail.findtext("StartTime"), detail.findtext("EndTime")) == (
        "Submitted",
        "-",
        "-",
    )
    assert (detail.findtext("Code"), detail.findtext("Message"), detail.findtext("Tag")) == (
        "Success",
        "",
        "PicProcess",
    )
    assert [(c.tag, c.text) for c in detail.find("Input")] == [
        ("BucketId", BUCKET),
        ("Object", "in/pic.jpg"),
        ("Region", REGION),
    ]
    operation = detail.find("Operation")
    assert operation is not None
    assert [child.tag for child in operation] == ["Output", "PicProcess", "UserData", "JobLevel"]
    assert operation.findtext("PicProcess/ProcessRule") == "imageMogr2/thumbnail/!50p"
    assert operation.findtext("PicProcess/IsPicInfo") == "true"
    assert (operation.findtext("UserData"), operation.findtext("JobLevel")) == ("This is my data.", "1")


def test_job_runs_to_success_with_pic_process_result(emulator: Emulator, ci: CiClient) -> None:
    job_id = ci.submit_ok(output_object="out/thumb.jpg")

    final = ci.wait(job_id)

    detail = parse(final).find("JobsDetail")
    assert detail is not None
    assert detail.findtext("State") == "Success"
    assert TIME.match(detail.findtext("StartTime") or "")
    assert TIME.match(detail.findtext("EndTime") or "")
    result = detail.find("Operation/PicProcessResult")
    assert result is not None
    output = emulator.get_object(BUCKET, "out/thumb.jpg")
    assert result.findtext("ObjectName") == "out/thumb.jpg"
    assert result.findtext("OriginalInfo/Etag") == md5_etag(emulator.get_object(BUCKET, "in/pic.jpg"))
    assert [child.tag for child in result.find("OriginalInfo/ImageInfo")] == [
        "Ave",
        "Format",
        "Height",
        "Orientation",
        "Quality",
        "Width",
    ]
    assert (result.findtext("OriginalInfo/ImageInfo/Width"), result.findtext("OriginalInfo/ImageInfo/Height")) == (
        "8",
        "6",
    )
    assert result.findtext("OriginalInfo/ImageInfo/Format") == "JPEG"
    assert [child.tag for child in result.find("ProcessResult")] == [
        "Etag",
        "Format",
        "Height",
        "Quality",
        "Size",
        "Width",
    ]
    assert result.findtext("ProcessResult/Etag") == md5_etag(output)
    assert result.findtext("ProcessResult/Size") == str(len(output))


def test_without_is_pic_info_the_result_has_no_image_info(emulator: Emulator, ci: CiClient) -> None:
    job_id = ci.submit_ok(is_pic_info="false", output_bucket=OUT_BUCKET)

    final = ci.wait(job_id)

    assert xml_text(final, "State") == "Success"
    assert xml_text(final, "OriginalInfo/Etag")
    assert parse(final).find(".//OriginalInfo/ImageInfo") is None
    assert emulator.get_object(OUT_BUCKET, "out/pic.jpg")


def test_missing_input_object_fails_the_job_naming_the_key(ci: CiClient) -> None:
    job_id = ci.submit_ok(input_object="in/absent.jpg")

    final = ci.wait(job_id)

    assert xml_text(final, "State") == "Failed"
    assert xml_text(final, "Code") == "InputObjectNotExist"
    assert "in/absent.jpg" in xml_text(final, "Message")
    assert parse(final).find(".//PicProcessResult") is None


def test_input_that_is_not_an_image_fails_with_the_engine_code(emulator: Emulator, ci: CiClient) -> None:
    emulator.put_object(BUCKET, "in/text.jpg", b"not an image")

    final = ci.wait(ci.submit_ok(input_object="in/text.jpg"))

    assert xml_text(final, "State") == "Failed"
    assert xml_text(final, "Code") == "InvalidImageFormat"
    assert xml_text(final, "Message")


@pytest.mark.parametrize(
    ("body", "code", "names"),
    [
        ("<Request><Tag>PicProcess", "BadRequest", "well-formed"),
        ("<Jobs/>", "BadRequest", "<Request>"),
        (job_body(tag="Transcode"), "InvalidArgument", "Tag"),
        (job_body().replace("<Tag>PicProcess</Tag>", ""), "InvalidArgument", "Tag"),
        (job_body(input_object=""), "InvalidArgument", "Input/Object"),
        (job_body(input_object="../escape.jpg"), "InvalidArgument", "Input/Object"),
        (job_body().replace(f"<Bucket>{BUCKET}</Bucket>", ""), "InvalidArgument", "Operation/Output/Bucket"),
        (job_body().replace(f"<Region>{REGION}</Region>", ""), "InvalidArgument", "Operation/Output/Region"),
        (job_body(output_object=""), "InvalidArgument", "Operation/Output/Object"),
        (job_body(output_bucket="missing-1250000000"), "InvalidArgument", "Operation/Output/Bucket"),
        (job_body(output_bucket="NotABucket"), "InvalidArgument", "Operation/Output/Bucket"),
        (job_body(rule=None), "InvalidArgument", "TemplateId or PicProcess/ProcessRule"),
        (job_body(is_pic_info="yes"), "InvalidArgument", "Operation/PicProcess/IsPicInfo"),
        (job_body(template_id="t1" + "0" * 32, rule=None), "InvalidArgument", "Operation/TemplateId"),
        (job_body(job_level="3"), "InvalidArgument", "Operation/JobLevel"),
        (job_body(user_data="x" * 1025), "InvalidArgument", "Operation/UserData"),
        (job_body(user_data="数据"), "InvalidArgument", "Operation/UserData"),
        (job_body(extra="<CallBackFormat>YAML</CallBackFormat>"), "InvalidArgument", "CallBackFormat"),
        (job_body(extra="<CallBackType>TDMQ</CallBackType>"), "InvalidArgument", "CallBackMqConfig/MqMode"),
        (job_body(extra="<QueueId>pnotmine</QueueId>"), "InvalidArgument", "QueueId"),
    ],
)
def test_invalid_submissions_are_rejected_naming_the_element_and_create_no_job(
    emulator: Emulator, ci: CiClient, body: str, code: str, names: str
) -> None:
    response = ci.call("POST", "/jobs", body=body)

    assert response.status_code == 400
    assert error_code(response) == code
    assert names in xml_text(response.content, "Message")
    assert response.headers["x-ci-trace-id"]
    assert emulator.jobs() == []


def test_accepted_optional_fields_at_their_limits(ci: CiClient) -> None:
    callback = (
        "<CallBack>http://callback.demo.com</CallBack><CallBackFormat>JSON</CallBackFormat>"
        "<CallBackType>TDMQ</CallBackType><CallBackMqConfig><MqMode>Queue</MqMode><MqRegion>gz</MqRegion>"
        "<MqName>q</MqName></CallBackMqConfig>"
    )
    response = ci.call("POST", "/jobs", body=job_body(user_data="~" * 1024, job_level="2", extra=callback))

    assert response.status_code == 200, response.text
    assert xml_text(response.content, "JobLevel") == "2"


def test_get_many_ids_answers_in_request_order_and_reports_unknown_ones(ci: CiClient) -> None:
    first, second = ci.submit_ok(), ci.submit_ok()
    unknown = "c" + "0" * 32

    response = ci.call("GET", f"/jobs/{second},{unknown},{first}")

    assert response.status_code == 200
    assert xml_all(response.content, "JobsDetail/JobId") == [second, first]
    assert xml_all(response.content, "NonExistJobIds") == [unknown]


def test_get_accepts_a_percent_encoded_comma_signed_over_the_decoded_path(ci: CiClient) -> None:
    first, second = ci.submit_ok(), ci.submit_ok()
    headers = ci.headers("GET", f"/jobs/{first},{second}")

    response = ci.send("GET", f"/jobs/{first}%2C{second}", headers)

    assert response.status_code == 200, response.text
    assert xml_all(response.content, "JobsDetail/JobId") == [first, second]


def test_get_only_unknown_ids_is_200_with_non_exist_job_ids(emulator: Emulator, ci: CiClient) -> None:
    other_bucket_job = CiClient(emulator, OUT_BUCKET).submit_ok(input_object="x.jpg")

    response = ci.call("GET", f"/jobs/{other_bucket_job}")

    assert response.status_code == 200
    assert parse(response.content).find("JobsDetail") is None
    assert xml_all(response.content, "NonExistJobIds") == [other_bucket_job]


def test_list_pages_with_next_token_newest_first(ci: CiClient) -> None:
    submitted = [ci.submit_ok() for _ in range(5)]
    pages, token = [], ""
    while True:
        params = {"tag": "PicProcess", "size": "2", "nextToken": token}
        response = ci.call("GET", "/jobs", params)
        assert response.status_code == 200, response.text
        pages.append(xml_all(response.content, "JobsDetail/JobId"))
        tokens = xml_all(response.content, "NextToken")
        if not tokens:
            break
        token = tokens[0]

    assert pages == [submitted[4:2:-1], submitted[2:0:-1], submitted[:1]]


def test_list_orders_ascending_and_filters(emulator: Emulator, ci: CiClient) -> None:
    emulator.put_object(BUCKET, "in/other.jpg", jpeg())
    first = ci.wait(ci.submit_ok())
    other = ci.wait(ci.submit_ok(input_object="in/other.jpg"))
    emulator.pause_queue()
    waiting = ci.submit_ok()
    first_id, other_id = xml_text(first, "JobId"), xml_text(other, "JobId")

    def listed(**params: str) -> list[str]:
        response = ci.call("GET", "/jobs", {"tag": "PicProcess", **params})
        assert response.status_code == 200, response.text
        return xml_all(response.content, "JobsDetail/JobId")

    assert listed(orderByTime="Asc") == [first_id, other_id, waiting]
    assert listed(states="Success", orderByTime="Asc") == [first_id, other_id]
    assert listed(states="Pause,Submitted") == [waiting]
    assert listed(states="All") == [waiting, other_id, first_id]
    assert listed(inputObject="in/other.jpg") == [other_id]
    assert listed(queueId=xml_text(first, "QueueId"), size="1") == [waiting]
    assert listed(queueId="p" + "0" * 32) == []
    assert listed(startCreationTime="2999-01-01T00:00:00+0800") == []
    assert len(listed(startCreationTime="2001-01-01T00:00:00+0800", endCreationTime="2999-01-01T00:00:00+0800")) == 3
    assert listed(workflowId="w123") == []


@pytest.mark.parametrize(
    ("params", "names"),
    [
        ({}, "tag"),
        ({"tag": "Transcode"}, "tag"),
        ({"size": "101"}, "size"),
        ({"size": "0"}, "size"),
        ({"size": "ten"}, "size"),
        ({"orderByTime": "Up"}, "orderByTime"),
        ({"states": "Running,Done"}, "states"),
        ({"nextToken": "not-a-token"}, "nextToken"),
        ({"startCreationTime": "yesterday"}, "startCreationTime"),
        ({"endCreationTime": "2001-01-01 00:00:00"}, "endCreationTime"),
    ],
)
def test_list_rejects_bad_parameters_naming_them(ci: CiClient, params: dict[str, str], names: str) -> None:
    response = ci.call("GET", "/jobs", {"tag": "PicProcess"} | params if params else {})

    assert response.status_code == 400
    assert error_code(response) == "InvalidArgument"
    assert names in xml_text(response.content, "Message")


def test_cancel_a_waiting_job_then_not_again(emulator: Emulator, ci: CiClient) -> None:
    emulator.pause_queue()
    job_id = ci.submit_ok()

    response = ci.call("PUT", f"/jobs/{job_id}", {"cancel": ""})

    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["x-ci-request-id"]
    detail = ci.job(job_id)
    assert xml_text(detail, "State") == "Cancel"
    assert TIME.match(xml_text(detail, "EndTime"))
    again = ci.call("PUT", f"/jobs/{job_id}", {"cancel": ""})
    assert again.status_code == 400
    assert error_code(again) == "InvalidArgument"
    emulator.resume_queue()
    time.sleep(0.15)
    assert xml_text(ci.job(job_id), "State") == "Cancel"


def test_cancel_works_with_the_sdk_style_unsigned_cancel_flag(ci: CiClient) -> None:
    ci_job = ci.submit_ok()
    headers = ci.headers("PUT", f"/jobs/{ci_job}")  # cos-python-sdk-v5 signs no parameter here

    response = ci.send("PUT", f"/jobs/{ci_job}?cancel", headers)

    assert response.status_code == 200, response.text


def test_cancel_rules_for_finished_unknown_and_flagless_requests(ci: CiClient) -> None:
    done = xml_text(ci.wait(ci.submit_ok()), "JobId")

    finished = ci.call("PUT", f"/jobs/{done}", {"cancel": ""})
    unknown = ci.call("PUT", "/jobs/c" + "0" * 32, {"cancel": ""})
    flagless = ci.call("PUT", f"/jobs/{done}")

    assert (finished.status_code, error_code(finished)) == (400, "InvalidArgument")
    assert "only jobs that have not started" in xml_text(finished.content, "Message")
    assert (unknown.status_code, error_code(unknown)) == (404, "NoSuchJob")
    assert (flagless.status_code, error_code(flagless)) == (400, "InvalidArgument")


def test_a_running_job_cannot_be_cancelled(tmp_path: Path) -> None:
    with make_emulator(tmp_path, queue_delay=0, run_time=0.6) as emulator:
        emulator.put_object(BUCKET, "in/pic.jpg", jpeg())
        ci = CiClient(emulator)
        job_id = ci.submit_ok()
        ci.wait(job_id, ("Running",))

        response = ci.call("PUT", f"/jobs/{job_id}", {"cancel": ""})

        assert response.status_code == 400
        assert "Running" in xml_text(response.content, "Message")
        assert xml_text(ci.wait(job_id), "State") == "Success"


def test_one_worker_takes_higher_job_levels_first_fifo_within_a_level(tmp_path: Path) -> None:
    with make_emulator(tmp_path, queue_delay=0, run_time=0.08, workers=1) as emulator:
        emulator.put_object(BUCKET, "in/pic.jpg", jpeg())
        ci = CiClient(emulator)
        emulator.pause_queue()
        levels = ["0", "1", "2", "0", "2", "1"]
        ids = [ci.submit_ok(job_level=level) for level in levels]
        time.sleep(0.05)
        emulator.resume_queue()
        started: list[str] = []
        deadline = time.monotonic() + 10
        while len(started) < len(ids):
            assert time.monotonic() < deadline
            for job in emulator.jobs():
                if job["State"] != "Submitted" and job["JobId"] not in started:
                    started.append(job["JobId"])
            time.sleep(0.005)

    expected = sorted(ids, key=lambda job_id: (-int(levels[ids.index(job_id)]), ids.index(job_id)))
    assert started == expected


def test_unsupported_route_and_method_answers(ci: CiClient) -> None:
    missing = ci.call("GET", "/nothing")
    wrong_method = ci.call("DELETE", "/jobs")

    assert (missing.status_code, error_code(missing)) == (404, "NoSuchResource")
    assert (wrong_method.status_code, error_code(wrong_method)) == (405, "MethodNotAllowed")


@pytest.mark.parametrize(
    "key", ["%2e%2e/escape.jpg", "in/%2e%2e/%2e%2e/escape.jpg", "in//double.jpg", "in/%2e/dot.jpg"]
)
def test_keys_that_would_escape_or_alias_the_bucket_folder_are_refused(
    emulator: Emulator, tmp_path_factory: pytest.TempPathFactory, key: str
) -> None:
    cos = CiClient(emulator, host=f"{BUCKET}.cos.{REGION}.myqcloud.com")
    decoded = "/" + key.replace("%2e", ".")
    headers = cos.headers("PUT", decoded, body=b"x")
    response = cos.session.request("PUT", f"{emulator.url}/{key}", data=b"x", headers=headers, timeout=10)
    assert response.status_code == 400
    assert error_code(response) == "InvalidArgument"
    assert response.headers["x-cos-request-id"]
    written = [
        p for p in tmp_path_factory.getbasetemp().rglob("*") if p.name in ("escape.jpg", "double.jpg", "dot.jpg")
    ]
    assert written == []


@pytest.mark.parametrize(
    ("rule", "code", "named"),
    [("imageMogr2/blur/8x5", "UnsupportedOperation", "blur"), ("rotate/90", "InvalidArgument", "imageMogr2")],
)
def test_a_rule_the_engine_cannot_run_fails_the_job_instead_of_being_ignored(
    emulator: Emulator, ci: CiClient, rule: str, code: str, named: str
) -> None:
    emulator.put_object(BUCKET, "in/ok.jpg", jpeg())
    final = ci.wait(ci.submit_ok(input_object="in/ok.jpg", rule=rule))
    assert (xml_text(final, "State"), xml_text(final, "Code")) == ("Failed", code)
    assert named in xml_text(final, "Message")

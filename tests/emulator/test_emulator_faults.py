"""Every fault kind, armed from Python and over the control API."""

from __future__ import annotations

import time

import pytest
import requests
from emulator_client import CiClient, error_code, parse, xml_text
from lxml import etree

from airflow_provider_ci.emulator import Emulator


def test_status_fault_answers_the_ci_error_body_for_matching_requests_only(emulator: Emulator, ci: CiClient) -> None:
    fault = emulator.faults.add("status", status=503, count=2, method="POST", path="/jobs")

    answers = [ci.submit() for _ in range(3)]
    listing = ci.call("GET", "/jobs", {"tag": "PicProcess"})

    assert [answer.status_code for answer in answers] == [503, 503, 200]
    assert error_code(answers[0]) == "SlowDown"
    assert answers[0].headers["x-ci-request-id"]
    assert answers[0].headers["x-ci-trace-id"]
    assert listing.status_code == 200
    assert len(emulator.jobs()) == 1
    assert fault.count == 0
    assert emulator.faults.active() == []


def test_status_fault_codes_default_by_status(emulator: Emulator, ci: CiClient) -> None:
    emulator.faults.add("status")
    emulator.faults.add("status", status=429)
    emulator.faults.add("status", status=502, code="BadGateway", message="upstream down")

    first, second, third = (ci.call("GET", "/jobs", {"tag": "PicProcess"}) for _ in range(3))

    assert (first.status_code, error_code(first)) == (500, "InternalError")
    assert (second.status_code, error_code(second)) == (429, "SlowDown")
    assert (third.status_code, error_code(third)) == (502, "BadGateway")
    assert xml_text(third.content, "Message") == "upstream down"


def test_reset_before_aborts_without_processing(emulator: Emulator, ci: CiClient) -> None:
    emulator.faults.add("reset_before", path="/jobs")

    with pytest.raises(requests.ConnectionError):
        ci.submit()

    assert emulator.jobs() == []
    assert [(r.route, r.status, r.fault) for r in emulator.requests] == [("POST /jobs", None, "reset_before")]
    assert ci.submit().status_code == 200


def test_reset_after_creates_the_job_but_never_answers(emulator: Emulator, ci: CiClient) -> None:
    emulator.faults.add("reset_after", method="POST")

    with pytest.raises(requests.ConnectionError):
        ci.submit()

    assert len(emulator.jobs()) == 1
    assert [(r.status, r.fault) for r in emulator.requests] == [(None, "reset_after")]


def test_latency_delays_the_answer(emulator: Emulator, ci: CiClient) -> None:
    emulator.faults.add("latency", seconds=0.3)

    began = time.monotonic()
    response = ci.call("GET", "/jobs", {"tag": "PicProcess"})

    assert response.status_code == 200
    assert time.monotonic() - began >= 0.3


def test_malformed_answers_200_with_a_broken_body_after_processing(emulator: Emulator, ci: CiClient) -> None:
    emulator.faults.add("malformed", path="/jobs")

    response = ci.submit()

    assert response.status_code == 200
    with pytest.raises(etree.XMLSyntaxError):
        parse(response.content)
    assert len(emulator.jobs()) == 1


def test_business_error_is_http_200_with_a_failed_response(emulator: Emulator, ci: CiClient) -> None:
    emulator.faults.add("business_error", message="bad rule")

    response = ci.submit()

    assert response.status_code == 200
    root = parse(response.content)
    assert [(child.tag, child.text) for child in root] == [
        ("Code", "InvalidArgument"),
        ("Message", "bad rule"),
        ("State", "Failed"),
    ]
    assert emulator.jobs() == []


def test_job_failed_fails_the_next_jobs_with_the_given_code(emulator: Emulator, ci: CiClient) -> None:
    emulator.faults.add("job_failed", code="ImageProcessFailed", message="decoder crashed")

    failed = ci.wait(ci.submit_ok())
    succeeded = ci.wait(ci.submit_ok())

    assert (xml_text(failed, "State"), xml_text(failed, "Code")) == ("Failed", "ImageProcessFailed")
    assert xml_text(failed, "Message") == "decoder crashed"
    assert xml_text(succeeded, "State") == "Success"


def test_faults_over_the_control_api(emulator: Emulator, ci: CiClient) -> None:
    url = f"{emulator.url}/_emulator/faults"
    armed = requests.post(
        url, json=[{"kind": "status", "status": 500, "method": "GET"}, {"kind": "latency", "seconds": 0.01}], timeout=5
    )
    assert armed.status_code == 200
    assert [fault["kind"] for fault in requests.get(url, timeout=5).json()["faults"]] == ["status", "latency"]

    assert ci.call("GET", "/jobs", {"tag": "PicProcess"}).status_code == 500
    assert requests.delete(url, timeout=5).status_code == 200
    assert emulator.faults.active() == []
    assert ci.call("GET", "/jobs", {"tag": "PicProcess"}).status_code == 200


@pytest.mark.parametrize(
    "payload",
    [
        {"kind": "explode"},
        {"kind": "status", "count": 0},
        {"kind": "status", "status": 200},
        {"kind": "x", "y": 1},
        [1],
    ],
)
def test_bad_faults_are_refused(emulator: Emulator, payload: object) -> None:
    response = requests.post(f"{emulator.url}/_emulator/faults", json=payload, timeout=5)

    assert response.status_code == 400
    assert response.json()["error"]
    assert emulator.faults.active() == []


def test_python_api_refuses_bad_faults_naming_the_field(emulator: Emulator) -> None:
    with pytest.raises(ValueError, match="kind"):
        emulator.faults.add("slow")
    with pytest.raises(ValueError, match="seconds"):
        emulator.faults.add("latency", seconds=-1)
    with pytest.raises(ValueError, match="path"):
        emulator.faults.add("status", path="jobs")


def test_slow_answer_processes_first_then_delays(emulator: Emulator, ci: CiClient) -> None:
    before = len(emulator.jobs())
    emulator.faults.add("slow_answer", seconds=0.3, method="POST", path="/jobs")
    started = time.monotonic()
    response = ci.submit()
    assert response.status_code == 200
    assert time.monotonic() - started >= 0.3
    assert len(emulator.jobs()) == before + 1

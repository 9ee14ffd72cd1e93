"""The emulator's per-account rate limit (503 SlowDown, nothing changed, refusals counted) and
its cap on ids per ``GET /jobs/<ids>``. The limit's clock is frozen where counts depend on it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
from emulator_client import CiClient, cos_client, error_code, xml_text

from airflow_provider_ci.emulator import Emulator
from airflow_provider_ci.emulator.throttle import AccountThrottle

NOW = 1000.0


@pytest.fixture
def frozen(emulator: Emulator) -> Iterator[Emulator]:
    """The emulator with its rate limit's clock stopped at ``NOW``; limit and clock restored after."""
    throttle = emulator.throttle
    clock, limit = throttle.clock, emulator.qps_limit
    throttle.clock = lambda: NOW
    yield emulator
    throttle.clock = clock
    emulator.qps_limit = limit
    emulator.reset()


def test_over_the_limit_answers_503_slowdown_and_counts_it(frozen: Emulator, ci: CiClient) -> None:
    frozen.qps_limit = 5

    answers = [ci.call("GET", "/jobs", {"tag": "PicProcess"}) for _ in range(8)]

    assert [a.status_code for a in answers] == [200] * 5 + [503] * 3
    assert error_code(answers[-1]) == "SlowDown"
    assert "reduce your request rate" in xml_text(answers[-1].content, "Message")
    assert answers[-1].headers["x-ci-request-id"]
    assert answers[-1].headers["x-ci-trace-id"]
    assert frozen.throttled == 3
    assert frozen.stats()["throttled"] == {"total": 3, "by_account": {frozen.secret_id: 3}}
    assert [r.status for r in frozen.requests] == [200] * 5 + [503] * 3


def test_a_throttled_submit_creates_no_job(frozen: Emulator, ci: CiClient) -> None:
    frozen.qps_limit = 3

    answers = [ci.submit(input_object="in/pic.jpg", output_object=f"out/{n}.jpg") for n in range(5)]

    assert [a.status_code for a in answers] == [200, 200, 200, 503, 503]
    assert [job["Operation"]["Output"]["Object"] for job in frozen.jobs()] == [f"out/{n}.jpg" for n in range(3)]
    assert frozen.throttled == 2


def test_a_throttled_cancel_cancels_nothing(frozen: Emulator, ci: CiClient) -> None:
    frozen.pause_queue()
    frozen.qps_limit = 1
    job_id = ci.submit_ok()  # the only slot of this (frozen) second

    refused = ci.call("PUT", f"/jobs/{job_id}", {"cancel": ""})

    assert (refused.status_code, error_code(refused)) == (503, "SlowDown")
    assert frozen.jobs()[0]["State"] == "Pause"  # waiting in the paused queue, not Cancel


def test_the_window_slides_and_refusals_use_no_quota() -> None:
    now = [0.0]
    throttle = AccountThrottle(2, clock=lambda: now[0])
    throttle.admit("a")
    now[0] = 0.5
    throttle.admit("a")
    for at in (0.6, 0.99):  # two in [0, 1): full; refused attempts take no slot
        now[0] = at
        with pytest.raises(Exception, match="SlowDown"):
            throttle.admit("a")
    throttle.admit("b")  # another account has its own window
    now[0] = 1.0  # the first one left the window
    throttle.admit("a")
    with pytest.raises(Exception, match="SlowDown"):
        throttle.admit("a")
    now[0] = 1.5
    throttle.admit("a")

    assert throttle.refused == {"a": 3}
    assert throttle.refused_total == 3


def test_zero_turns_the_limit_off(frozen: Emulator, ci: CiClient) -> None:
    frozen.qps_limit = 0

    assert all(ci.call("GET", "/jobs", {"tag": "PicProcess"}).status_code == 200 for _ in range(30))
    assert frozen.throttled == 0


def test_object_calls_are_not_limited(frozen: Emulator) -> None:
    frozen.qps_limit = 1
    cos = cos_client(frozen)

    for n in range(4):
        cos.put_object(Bucket="examplebucket-1250000000", Key=f"limits/{n}.txt", Body=b"x")

    assert frozen.throttled == 0


def test_unsigned_requests_use_no_quota(frozen: Emulator, ci: CiClient) -> None:
    frozen.qps_limit = 1
    bad = CiClient(frozen, secret_key="W" * 32)

    assert bad.call("GET", "/jobs", {"tag": "PicProcess"}).status_code == 403
    assert ci.call("GET", "/jobs", {"tag": "PicProcess"}).status_code == 200
    assert frozen.throttled == 0


def test_limits_over_the_control_api(frozen: Emulator, ci: CiClient) -> None:
    url = f"{frozen.url}/_emulator/limits"

    assert requests.put(url, json={"qps_limit": 2, "max_ids_per_get": 7}, timeout=5).json() == {
        "qps_limit": 2,
        "max_ids_per_get": 7,
    }
    answers = [ci.call("GET", "/jobs", {"tag": "PicProcess"}).status_code for _ in range(3)]
    bad = requests.put(url, json={"qps_limit": -1}, timeout=5)
    unknown = requests.put(url, json={"qps": 5}, timeout=5)

    assert answers == [200, 200, 503]
    assert requests.get(f"{frozen.url}/_emulator/stats", timeout=5).json()["throttled"]["total"] == 1
    assert (bad.status_code, unknown.status_code) == (400, 400)
    assert "qps_limit must be an integer >= 0" in bad.json()["error"]
    assert frozen.qps_limit == 2
    frozen.max_ids_per_get = 0


def test_bad_limits_are_refused_when_built(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="qps_limit"):
        Emulator(tmp_path, qps_limit=-5)
    with pytest.raises(ValueError, match="max_ids_per_get"):
        Emulator(tmp_path, max_ids_per_get=1.5)  # type: ignore[arg-type]


def test_the_ids_cap_refuses_larger_batches_with_invalid_argument(emulator: Emulator, ci: CiClient) -> None:
    emulator.pause_queue()
    ids = [ci.submit_ok(output_object=f"out/{n}.jpg") for n in range(3)]
    emulator.max_ids_per_get = 2
    try:
        refused = ci.call("GET", "/jobs/" + ",".join(ids))
        allowed = ci.call("GET", "/jobs/" + ",".join(ids[:2]))
    finally:
        emulator.max_ids_per_get = 0

    assert (refused.status_code, error_code(refused)) == (400, "InvalidArgument")
    assert "at most 2 job ids" in xml_text(refused.content, "Message")
    assert allowed.status_code == 200

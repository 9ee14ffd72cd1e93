"""CosKeySensor and CosKeyTrigger against the emulator: what counts as arrived, failures, deferral."""

from __future__ import annotations

import asyncio
import functools
import json
import time
import uuid

import pytest
from airflow.providers.common.compat.sdk import AirflowSensorTimeout, AirflowSkipException, TaskDeferred

from airflow_provider_ci.emulator.pytest_plugin import DEFAULT_BUCKET
from airflow_provider_ci.exceptions import CloudInfiniteError, CloudInfiniteServiceError, CloudInfiniteValidationError
from airflow_provider_ci.hooks.ci import CloudInfiniteHook
from airflow_provider_ci.key_query import KeyQuery
from airflow_provider_ci.sensors import cos as sensor_module
from airflow_provider_ci.sensors.cos import CosKeySensor
from airflow_provider_ci.triggers import cos as trigger_module
from airflow_provider_ci.triggers.cos import CosKeyTrigger
from tests.support import FAST_RETRY, png


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch):
    """The hook's own retries as in production, minus the waiting."""
    fast = functools.partial(CloudInfiniteHook, retry=FAST_RETRY)
    monkeypatch.setattr(sensor_module, "CloudInfiniteHook", fast)
    monkeypatch.setattr(trigger_module, "CloudInfiniteHook", fast)


@pytest.fixture
def emulator(ci_emulator, ci_emulator_conn):
    return ci_emulator


@pytest.fixture
def prefix() -> str:
    return f"cos-sensor-{uuid.uuid4().hex[:8]}/"


def sensor(**kwargs) -> CosKeySensor:
    kwargs.setdefault("poke_interval", 0.05)
    kwargs.setdefault("timeout", 20)
    return CosKeySensor(task_id="wait_for_images", **kwargs)


def put(emulator, *keys: str) -> None:
    for key in keys:
        emulator.put_object(DEFAULT_BUCKET, key, png())


def test_exact_keys_must_all_exist(emulator, prefix):
    s = sensor(bucket_key=[f"{prefix}a.png", f"{prefix}b.png"])
    put(emulator, f"{prefix}a.png")
    assert s.poke({}) is False
    put(emulator, f"{prefix}b.png")
    assert s.poke({}) is True
    assert s._keys() == [f"{prefix}a.png", f"{prefix}b.png"]


def test_prefix_with_pattern_and_min_keys(emulator, prefix):
    s = sensor(prefix=prefix, pattern="*.jpg", min_keys=2)
    put(emulator, f"{prefix}one.jpg", f"{prefix}notes.txt", f"{prefix}two.JPG")
    assert s.poke({}) is False  # .JPG does not match: globs are case-sensitive, as keys are
    put(emulator, f"{prefix}sub/three.jpg")
    assert s.poke({}) is True
    assert s._keys() == [f"{prefix}one.jpg", f"{prefix}sub/three.jpg"]


def test_wildcard_bucket_key_lists_only_the_literal_prefix(emulator, prefix):
    put(emulator, f"{prefix}2026-12/a.png", f"{prefix}2025-01/b.png")
    emulator.clear_requests()
    s = sensor(bucket_key=f"{prefix}2026-*/*.png", wildcard_match=True)
    assert s.poke({}) is True
    assert s._keys() == [f"{prefix}2026-12/a.png"]
    (listing,) = [r for r in emulator.requests if ".cos." in r.host]
    assert (listing.method, listing.path, listing.query["prefix"]) == ("GET", "/", f"{prefix}2026-")


def test_check_fn_sees_the_objects_and_can_say_not_yet(emulator, prefix):
    emulator.put_object(DEFAULT_BUCKET, f"{prefix}empty.png", b"")
    seen: list[list[dict]] = []

    def non_empty(objects: list[dict]) -> bool:
        seen.append(objects)
        return all(obj["Size"] > 0 for obj in objects)

    s = sensor(prefix=prefix, check_fn=non_empty)
    assert s.poke({}) is False
    assert seen[0][0]["Key"] == f"{prefix}empty.png" and seen[0][0]["Size"] == 0
    put(emulator, f"{prefix}empty.png")
    assert s.poke({}) is True


def test_poke_mode_execute_returns_the_keys(emulator, prefix):
    put(emulator, f"{prefix}a.png")
    assert sensor(prefix=prefix, mode="poke").execute({"task_reschedule_count": 0}) == [f"{prefix}a.png"]


def test_nothing_is_requested_outside_the_named_keys_and_prefix(emulator, prefix):
    put(emulator, f"{prefix}in/a.png", f"{prefix}out/b.png")
    emulator.clear_requests()
    sensor(prefix=f"{prefix}in/").poke({})
    sensor(bucket_key=f"{prefix}in/a.png").poke({})
    sensor(bucket_key=f"{prefix}in/*.png", wildcard_match=True).poke({})
    seen = [(r.method, r.path, r.query.get("prefix")) for r in emulator.requests]
    assert seen == [
        ("GET", "/", f"{prefix}in/"),
        ("HEAD", f"/{prefix}in/a.png", None),
        ("GET", "/", f"{prefix}in/"),
    ]
    assert all(r.host == f"{DEFAULT_BUCKET}.cos.ap-chongqing.myqcloud.com" for r in emulator.requests)


# -- failure policy ------------------------------------------------------------------------------


def test_a_failed_poke_is_not_yet_until_too_many_fail_in_a_row(emulator, prefix, capfd):
    put(emulator, f"{prefix}a.png")
    s = sensor(prefix=prefix, max_consecutive_failures=3)
    attempts = FAST_RETRY.max_attempts
    emulator.faults.add("status", status=503, code="ServiceUnavailable", method="GET", path="/", count=2 * attempts)
    assert s.poke({}) is False
    assert s.poke({}) is False
    assert s.poke({}) is True  # the service is back: the count starts again
    assert s._failures.count == 0
    assert "failed (2 in a row, limit 3)" in capfd.readouterr().out

    emulator.faults.add("status", status=503, code="ServiceUnavailable", method="GET", path="/", count=3 * attempts)
    assert s.poke({}) is False
    assert s.poke({}) is False
    with pytest.raises(CloudInfiniteServiceError, match="503"):
        s.poke({})
    requests = [r for r in emulator.requests if ".cos." in r.host]
    assert len(requests) == 5 * attempts + 1


@pytest.mark.parametrize("soft_fail", [False, True])
def test_a_permanent_error_ends_the_wait_at_once(emulator, prefix, soft_fail):
    emulator.faults.add("status", status=403, method="GET", path="/", code="AccessDenied", count=1)
    expected = AirflowSkipException if soft_fail else CloudInfiniteServiceError
    with pytest.raises(expected, match="AccessDenied"):
        sensor(prefix=prefix, soft_fail=soft_fail).poke({})


# -- validation ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({}, "bucket_key/prefix"),
        ({"bucket_key": "a.png", "prefix": "p/"}, "bucket_key/prefix"),
        ({"bucket_key": "/a.png"}, "bucket_key"),
        ({"bucket_key": []}, "bucket_key"),
        ({"bucket_key": "dir/"}, "bucket_key"),
        ({"bucket_key": "a.png", "min_keys": 2}, "min_keys"),
        ({"bucket_key": "a.png", "pattern": "*.jpg"}, "pattern"),
        ({"prefix": "p/", "wildcard_match": True}, "wildcard_match"),
        ({"prefix": "p/", "min_keys": 0}, "min_keys"),
        ({"prefix": "p/", "min_keys": "many"}, "min_keys"),
        ({"prefix": "../p/"}, "prefix"),
        ({"prefix": "p/", "pattern": ""}, "pattern"),
        ({"prefix": "p/", "max_consecutive_failures": 0}, "max_consecutive_failures"),
    ],
)
def test_bad_input_names_the_field_at_parse_time(kwargs, field):
    with pytest.raises(CloudInfiniteValidationError, match=field.replace("/", "/")):
        sensor(**kwargs)


def test_templated_fields_are_checked_before_the_first_request(emulator):
    s = sensor(prefix="{{ params.prefix }}")  # not checkable until rendered
    s.prefix = "/rendered-badly/"
    emulator.clear_requests()
    with pytest.raises(CloudInfiniteValidationError, match="prefix"):
        s.poke({})
    assert emulator.requests == []


# -- deferrable ----------------------------------------------------------------------------------


def test_deferrable_pokes_once_then_defers_on_a_json_plain_trigger(emulator, prefix):
    emulator.clear_requests()
    with pytest.raises(TaskDeferred) as info:
        sensor(prefix=prefix, pattern="*.png", min_keys=2, deferrable=True).execute({})
    trigger = info.value.trigger
    assert isinstance(trigger, CosKeyTrigger)
    assert len(emulator.requests) == 1  # the one poke
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_provider_ci.triggers.cos.CosKeyTrigger"
    assert json.loads(json.dumps(kwargs)) == kwargs
    assert "password" not in json.dumps(kwargs) and emulator.secret_key not in json.dumps(kwargs)
    assert CosKeyTrigger(**kwargs).serialize() == (classpath, kwargs)
    assert kwargs["first_poll_delay"] == 0.05  # the sensor has just looked


def test_deferrable_does_not_defer_when_already_there(emulator, prefix):
    put(emulator, f"{prefix}a.png")
    assert sensor(prefix=prefix, deferrable=True).execute({}) == [f"{prefix}a.png"]


async def first_event(trigger: CosKeyTrigger) -> dict:
    events = trigger.run()
    try:
        return (await anext(events)).payload
    finally:
        await events.aclose()


def trigger(query: KeyQuery, **kwargs) -> CosKeyTrigger:
    kwargs.setdefault("poll_interval", 0.05)
    kwargs.setdefault("end_time", time.time() + 20)
    return CosKeyTrigger(query=query.to_json(), **kwargs)


def test_trigger_fires_success_with_the_objects_when_they_land(emulator, prefix):
    query = KeyQuery.build(prefix=prefix, min_keys=2)

    async def scenario() -> dict:
        waiting = asyncio.ensure_future(first_event(trigger(query)))
        await asyncio.sleep(0.3)
        assert not waiting.done()
        await asyncio.to_thread(put, emulator, f"{prefix}a.png", f"{prefix}b.png")
        return await asyncio.wait_for(waiting, 20)

    event = asyncio.run(scenario())
    assert event["status"] == "success"
    assert event["keys"] == [f"{prefix}a.png", f"{prefix}b.png"]
    assert event["objects"][0]["Size"] == len(png())


def test_trigger_times_out_and_fails_after_consecutive_failures(emulator, prefix):
    event = asyncio.run(first_event(trigger(KeyQuery.build(prefix=prefix), end_time=time.time() + 0.3)))
    assert event["status"] == "timeout"

    emulator.faults.add("status", status=500, method="GET", path="/", count=100)
    event = asyncio.run(first_event(trigger(KeyQuery.build(prefix=prefix), max_consecutive_failures=2)))
    assert event["status"] == "error" and "2 polls in a row failed" in event["message"]
    emulator.faults.clear()


def test_execute_complete_branches(emulator, prefix):
    s = sensor(prefix=prefix)
    objects = [{"Key": f"{prefix}a.png", "Size": 1, "ETag": '"x"', "LastModified": "2026-12-01T00:00:00Z"}]
    event = {"status": "success", "keys": [f"{prefix}a.png"], "objects": objects, "end_time": time.time() + 5}
    assert s.execute_complete({}, event) == [f"{prefix}a.png"]
    with pytest.raises(AirflowSensorTimeout):
        s.execute_complete({}, {"status": "timeout", "message": "late"})
    with pytest.raises(CloudInfiniteError, match="boom"):
        s.execute_complete({}, {"status": "error", "message": "boom"})
    with pytest.raises(CloudInfiniteError, match="Unexpected"):
        s.execute_complete({}, None)
    picky = sensor(prefix=prefix, check_fn=lambda objects: False)
    with pytest.raises(TaskDeferred) as info:  # check_fn says not yet: wait again, same deadline
        picky.execute_complete({}, event)
    assert info.value.trigger.end_time == event["end_time"]

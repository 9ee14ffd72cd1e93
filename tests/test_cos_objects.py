"""COS object reads through the hook's own transport, against the emulator: listing, HEAD, scope."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from airflow_provider_ci.emulator.pytest_plugin import DEFAULT_BUCKET
from airflow_provider_ci.exceptions import CloudInfiniteServiceError, CloudInfiniteValidationError
from airflow_provider_ci.hooks.ci import CloudInfiniteHook
from tests.support import FAST_RETRY, png


@pytest.fixture
def hook(ci_emulator, ci_emulator_conn):
    return CloudInfiniteHook(retry=FAST_RETRY)


@pytest.fixture
def prefix() -> str:
    """A prefix of this test's own: the session's emulator keeps every test's objects."""
    return f"cos-objects-{uuid.uuid4().hex[:8]}/"


def cos_requests(emulator) -> list:
    return [r for r in emulator.requests if ".cos." in r.host]


def test_list_objects_pages_through_every_key_in_order(hook, ci_emulator, prefix):
    keys = [f"{prefix}{n:04d}.png" for n in range(1001)]
    for key in keys:
        ci_emulator.put_object(DEFAULT_BUCKET, key, b"x")
    ci_emulator.put_object(DEFAULT_BUCKET, f"{prefix[:-1]}-sibling/not-mine.png", b"x")
    ci_emulator.clear_requests()

    objects = hook.list_objects(prefix)

    assert [obj["Key"] for obj in objects] == keys
    assert objects[0]["Size"] == 1 and objects[0]["ETag"].startswith('"') and objects[0]["LastModified"].endswith("Z")
    listings = cos_requests(ci_emulator)
    assert len(listings) == 2  # 1,000 + 1
    assert all(r.method == "GET" and r.path == "/" and r.query["prefix"] == prefix for r in listings)
    assert listings[1].query["marker"] == keys[999]
    assert all(r.host == f"{DEFAULT_BUCKET}.cos.ap-chongqing.myqcloud.com" for r in listings)


def test_keys_with_spaces_percent_plus_and_unicode_survive_the_listing(hook, ci_emulator, prefix):
    keys = sorted(f"{prefix}{name}" for name in ("a b.jpg", "100%.jpg", "x+y.jpg", "腾讯云.jpg", "amp&lt.jpg"))
    for key in keys:
        ci_emulator.put_object(DEFAULT_BUCKET, key, png())
    assert [obj["Key"] for obj in hook.list_objects(prefix)] == keys
    assert asyncio.run(_alist(prefix)) == keys
    assert hook.head_object(keys[0])["Key"] == keys[0]


async def _alist(prefix: str) -> list[str]:
    hook = CloudInfiniteHook(retry=FAST_RETRY)
    try:
        return [obj["Key"] for obj in await hook.alist_objects(prefix)]
    finally:
        await hook.aclose()


def test_max_objects_stops_early(hook, ci_emulator, prefix):
    for n in range(3):
        ci_emulator.put_object(DEFAULT_BUCKET, f"{prefix}{n}.png", b"x")
    assert [obj["Key"] for obj in hook.list_objects(prefix, max_objects=2)] == [f"{prefix}0.png", f"{prefix}1.png"]


def test_head_object_sync_and_async(hook, ci_emulator, prefix):
    data = png(20, 10)
    ci_emulator.put_object(DEFAULT_BUCKET, f"{prefix}cat.png", data)
    found = hook.head_object(f"{prefix}cat.png")
    assert found["Key"] == f"{prefix}cat.png" and found["Size"] == len(data) and found["LastModified"].endswith("Z")
    assert hook.head_object(f"{prefix}dog.png") is None

    async def ahead() -> tuple:
        ahook = CloudInfiniteHook(retry=FAST_RETRY)
        try:
            return await ahook.ahead_object(f"{prefix}cat.png"), await ahook.ahead_object(f"{prefix}dog.png")
        finally:
            await ahook.aclose()

    present, missing = asyncio.run(ahead())
    assert present == found and missing is None
    heads = [r for r in cos_requests(ci_emulator) if r.method == "HEAD"]
    assert [r.path for r in heads] == [f"/{prefix}cat.png", f"/{prefix}dog.png"] * 2


def test_listing_retries_transient_errors_and_surfaces_permanent_ones(hook, ci_emulator, prefix):
    ci_emulator.put_object(DEFAULT_BUCKET, f"{prefix}a.png", b"x")
    ci_emulator.faults.add("status", status=503, method="GET", path="/", count=2)
    assert [obj["Key"] for obj in hook.list_objects(prefix)] == [f"{prefix}a.png"]
    ci_emulator.faults.add("status", status=403, method="GET", path="/", code="AccessDenied", count=1)
    with pytest.raises(CloudInfiniteServiceError, match="AccessDenied"):
        hook.list_objects(prefix)


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda h: h.list_objects("/abs/"), "prefix"),
        (lambda h: h.list_objects("a/../b/"), "prefix"),
        (lambda h: h.head_object("dir/"), "key"),
        (lambda h: h.head_object(""), "key"),
        (lambda h: h.list_objects("ok/", bucket="No_Such"), "bucket"),
    ],
)
def test_bad_input_is_refused_before_sending(hook, ci_emulator, call, field):
    ci_emulator.clear_requests()
    with pytest.raises(CloudInfiniteValidationError, match=field):
        call(hook)
    assert ci_emulator.requests == []

"""CosKeyEventTrigger against the emulator: each new key fires once, old keys never, across restarts."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import time
import uuid
from typing import Any

import pytest

from airflow_provider_ci.arrivals import Arrivals
from airflow_provider_ci.emulator.pytest_plugin import DEFAULT_BUCKET
from airflow_provider_ci.exceptions import CloudInfiniteValidationError
from airflow_provider_ci.hooks.ci import CloudInfiniteHook
from airflow_provider_ci.triggers import cos as trigger_module
from airflow_provider_ci.triggers.cos import CosKeyEventTrigger, arrived_keys
from tests.support import FAST_RETRY, png

POLL = 0.05


@pytest.fixture(autouse=True)
def fast(monkeypatch):
    monkeypatch.setattr(trigger_module, "CloudInfiniteHook", functools.partial(CloudInfiniteHook, retry=FAST_RETRY))
    monkeypatch.setattr(trigger_module, "MIN_EVENT_POLL_INTERVAL", POLL)


@pytest.fixture
def emulator(ci_emulator, ci_emulator_conn):
    return ci_emulator


@pytest.fixture
def prefix() -> str:
    return f"cos-events-{uuid.uuid4().hex[:8]}/"


class AssetStateStore:
    """What Airflow 3.3's triggerer injects as ``asset_state_store`` for a watcher of one asset:
    ``aget``/``aset`` of JSON values, kept (here) across trigger instances like the DB keeps them."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    async def aget(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    async def aset(self, key: str, value: Any) -> None:
        self.values[key] = json.loads(json.dumps(value))  # JSON only, as the execution API stores it


class Watch:
    """Runs one trigger instance in the background, collecting the keys it fires."""

    def __init__(self, trigger: CosKeyEventTrigger) -> None:
        self.trigger = trigger
        self.keys: list[str] = []
        self.payloads: list[dict] = []
        self.polls_at_start = 0
        self.task: asyncio.Task[None] | None = None

    async def _consume(self) -> None:
        async for event in self.trigger.run():
            self.payloads.append(event.payload)
            self.keys.extend(event.payload["keys"])

    def start(self) -> Watch:
        self.task = asyncio.ensure_future(self._consume())
        return self

    async def stop(self) -> None:
        assert self.task is not None
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


def listings(emulator, prefix: str) -> int:
    return sum(1 for r in emulator.requests if r.method == "GET" and r.query.get("prefix") == prefix)


async def polls(emulator, prefix: str, count: int) -> None:
    """Wait until ``count`` more listings of ``prefix`` have been answered."""
    target = listings(emulator, prefix) + count
    for _ in range(400):
        if listings(emulator, prefix) >= target:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the trigger stopped listing")


def put(emulator, *keys: str) -> None:
    for key in keys:
        emulator.put_object(DEFAULT_BUCKET, key, png())


def event_trigger(prefix: str, **kwargs) -> CosKeyEventTrigger:
    return CosKeyEventTrigger(prefix=prefix, pattern="*.png", poll_interval=POLL, **kwargs)


def restarted(trigger: CosKeyEventTrigger, store: AssetStateStore | None) -> CosKeyEventTrigger:
    """A new instance from the serialized kwargs, as a triggerer builds it after a restart."""
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_provider_ci.triggers.cos.CosKeyEventTrigger"
    fresh = CosKeyEventTrigger(**json.loads(json.dumps(kwargs)))
    if store is not None:
        fresh.asset_state_store = store  # type: ignore[assignment]
    return fresh


def test_each_new_key_fires_once_and_old_keys_never_even_after_a_restart(emulator, prefix):
    put(emulator, f"{prefix}old-1.png", f"{prefix}old-2.png")
    store = AssetStateStore()
    first = event_trigger(prefix)
    first.asset_state_store = store  # type: ignore[assignment]

    async def scenario() -> tuple[Watch, Watch]:
        before = Watch(first).start()
        await polls(emulator, prefix, 1)  # the baseline
        await asyncio.to_thread(put, emulator, f"{prefix}new-1.png", f"{prefix}notes.txt")
        await polls(emulator, prefix, 3)
        await before.stop()
        # Down: a key lands while no triggerer runs.
        await asyncio.to_thread(put, emulator, f"{prefix}while-down.png")
        after = Watch(restarted(first, store)).start()
        await polls(emulator, prefix, 2)
        await asyncio.to_thread(put, emulator, f"{prefix}new-2.png")
        await polls(emulator, prefix, 3)
        await after.stop()
        return before, after

    before, after = asyncio.run(scenario())
    assert before.keys == [f"{prefix}new-1.png"]
    assert after.keys == [f"{prefix}while-down.png", f"{prefix}new-2.png"]
    (payload,) = before.payloads
    assert (payload["bucket"], payload["prefix"], payload["keys"]) == (DEFAULT_BUCKET, prefix, [f"{prefix}new-1.png"])
    (obj,) = payload["objects"]
    assert obj["size"] == len(png()) and obj["last_modified"].endswith("Z")
    assert len(after.payloads) == 2  # one event per poll that found something: while-down, then new-2
    (state,) = store.values.values()
    assert set(Arrivals.from_json(state).seen) == {
        f"{prefix}{name}.png" for name in ("old-1", "old-2", "new-1", "while-down", "new-2")
    }
    # Only listings of the watched prefix were sent.
    assert {(r.method, r.path, r.query.get("prefix")) for r in emulator.requests} == {("GET", "/", prefix)}


def test_a_re_uploaded_key_fires_again(emulator, prefix):
    put(emulator, f"{prefix}a.png")
    trigger = event_trigger(prefix)
    trigger.asset_state_store = AssetStateStore()  # type: ignore[assignment]

    async def scenario() -> Watch:
        watch = Watch(trigger).start()
        await polls(emulator, prefix, 1)
        await asyncio.sleep(1.1)  # LastModified has whole seconds
        await asyncio.to_thread(put, emulator, f"{prefix}a.png")
        await polls(emulator, prefix, 3)
        await watch.stop()
        return watch

    assert asyncio.run(scenario()).keys == [f"{prefix}a.png"]


def test_without_a_state_store_a_restart_starts_a_new_baseline(emulator, prefix, capfd):
    """Airflow 3.1/3.2: state in memory only. Old keys are still never re-fired; keys that
    landed while the triggerer was down are not fired (the documented cost)."""
    put(emulator, f"{prefix}old.png")
    first = event_trigger(prefix)

    async def scenario() -> tuple[Watch, Watch]:
        before = Watch(first).start()
        await polls(emulator, prefix, 1)
        await asyncio.to_thread(put, emulator, f"{prefix}new.png")
        await polls(emulator, prefix, 3)
        await before.stop()
        await asyncio.to_thread(put, emulator, f"{prefix}while-down.png")
        after = Watch(restarted(first, None)).start()
        await polls(emulator, prefix, 2)
        await after.stop()
        return before, after

    before, after = asyncio.run(scenario())
    assert before.keys == [f"{prefix}new.png"]
    assert after.keys == []
    assert "state lives in memory only" in capfd.readouterr().out


def test_a_failed_listing_is_retried_next_poll_and_fires_nothing_twice(emulator, prefix):
    put(emulator, f"{prefix}old.png")
    trigger = event_trigger(prefix)
    trigger.asset_state_store = AssetStateStore()  # type: ignore[assignment]

    async def scenario() -> Watch:
        watch = Watch(trigger).start()
        await polls(emulator, prefix, 1)
        emulator.faults.add("status", status=500, method="GET", path="/", count=2 * FAST_RETRY.max_attempts)
        await asyncio.to_thread(put, emulator, f"{prefix}new.png")
        await polls(emulator, prefix, 2 * FAST_RETRY.max_attempts + 2)
        await watch.stop()
        return watch

    assert asyncio.run(scenario()).keys == [f"{prefix}new.png"]


def test_late_arrivals_within_the_window_fire_and_state_stays_one_window_long():
    now = time.time()

    def obj(key: str, age: float) -> dict:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - age))
        return {"Key": key, "LastModified": stamp}

    arrivals = Arrivals.baseline([obj("old", 7200), obj("recent", 60)], now, 600)
    assert set(arrivals.seen) == {"recent"}
    # A key stamped 5 minutes ago that only shows up now is still new; one stamped 20 minutes ago is missed.
    fresh = arrivals.new([obj("old", 7200), obj("recent", 60), obj("late", 300), obj("too-late", 1200)])
    assert [o["Key"] for o in fresh] == ["late"]
    assert arrivals.record(fresh, now + 200, 600) is True
    assert set(arrivals.seen) == {"late", "recent"}  # 500 and 260 s old: inside the window
    arrivals.record([], now + 700, 600)
    assert set(arrivals.seen) == set()  # both older than the moved horizon
    assert Arrivals.from_json(json.loads(json.dumps(arrivals.to_json()))) == arrivals
    assert Arrivals.from_json({"version": 99}) is None


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"prefix": "/abs/"}, "prefix"),
        ({"prefix": "p/", "pattern": ""}, "pattern"),
        ({"prefix": "p/", "poll_interval": 0}, "poll_interval"),
        ({"prefix": "p/", "poll_interval": 60, "late_arrival_window": 30}, "late_arrival_window"),
    ],
)
def test_bad_input_names_the_field(kwargs, field):
    with pytest.raises(CloudInfiniteValidationError, match=field):
        CosKeyEventTrigger(**kwargs)


def test_the_hash_that_identifies_a_watcher_is_stable():
    one, two = event_trigger("p/"), event_trigger("p/")
    assert one.hash(*one.serialize()) == two.hash(*two.serialize())
    assert one.hash(*one.serialize()) != event_trigger("q/").hash(*event_trigger("q/").serialize())


def test_arrived_keys_reads_the_payloads_of_asset_events():
    class Event:
        def __init__(self, extra: dict) -> None:
            self.extra = extra

    events = {
        "images": [
            Event({"from_trigger": True, "payload": {"keys": ["in/a.png", "in/b.png"]}}),
            Event({"from_trigger": True, "payload": {"keys": ["in/a.png"]}}),
        ],
        "other": [Event({"something": "else"})],
    }
    assert arrived_keys(events) == ["in/a.png", "in/b.png"]
    assert arrived_keys(events["images"]) == ["in/a.png", "in/b.png"]
    assert arrived_keys(None) == []


def test_a_big_batch_goes_out_as_several_events_each_key_once(emulator, prefix, monkeypatch):
    monkeypatch.setattr(trigger_module, "MAX_KEYS_PER_EVENT", 2)
    trigger = event_trigger(prefix)
    trigger.asset_state_store = AssetStateStore()  # type: ignore[assignment]

    async def scenario() -> Watch:
        watch = Watch(trigger).start()
        await polls(emulator, prefix, 1)
        await asyncio.to_thread(put, emulator, *(f"{prefix}{n}.png" for n in range(5)))
        await polls(emulator, prefix, 3)
        await watch.stop()
        return watch

    watch = asyncio.run(scenario())
    assert sorted(watch.keys) == [f"{prefix}{n}.png" for n in range(5)]
    assert all(len(payload["keys"]) <= 2 for payload in watch.payloads)


def test_a_failed_state_load_never_turns_into_a_new_baseline(emulator, prefix):
    """The store is unreachable at first (the API server restarting): the watch waits for its
    state rather than treating keys that landed meanwhile as a baseline."""

    class Flaky(AssetStateStore):
        failures = 2

        async def aget(self, key: str, default: Any = None) -> Any:
            if self.failures:
                self.failures -= 1
                raise ConnectionError("execution API unavailable")
            return await super().aget(key, default)

    store = Flaky()
    first = event_trigger(prefix)
    first.asset_state_store = AssetStateStore()  # type: ignore[assignment]
    put(emulator, f"{prefix}old.png")

    async def scenario() -> Watch:
        baseline = Watch(first).start()
        await polls(emulator, prefix, 2)
        await baseline.stop()
        store.values = dict(first.asset_state_store.values)  # type: ignore[attr-defined]
        await asyncio.to_thread(put, emulator, f"{prefix}while-down.png")
        after = Watch(restarted(first, store)).start()
        await polls(emulator, prefix, 2)
        await after.stop()
        return after

    assert asyncio.run(scenario()).keys == [f"{prefix}while-down.png"]

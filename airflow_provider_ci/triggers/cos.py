"""Triggers that watch a COS bucket with async signed requests only (nothing blocks the loop).

* :class:`CosKeyTrigger` waits for :class:`~airflow_provider_ci.sensors.cos.CosKeySensor` in
  deferrable mode and fires once: the keys are there, an error, or the deadline.
* :class:`CosKeyEventTrigger` is a ``BaseEventTrigger`` for an ``AssetWatcher``: it reports
  each new key under a prefix once (one event per poll that finds some), for as long as the
  watch lives, so a DAG scheduled on the asset runs when images land. What is "new" survives a
  triggerer restart (:mod:`airflow_provider_ci.arrivals`: the rule, and where it is kept).

Kwargs are plain JSON (a connection id, never a secret); deadlines are wall-clock.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

from airflow.triggers.base import BaseEventTrigger, BaseTrigger, TriggerEvent

from airflow_provider_ci import cos_objects
from airflow_provider_ci.arrivals import DEFAULT_LATE_ARRIVAL_WINDOW, Arrivals, StateStore
from airflow_provider_ci.exceptions import CloudInfiniteError, CloudInfiniteValidationError
from airflow_provider_ci.hooks.ci import CloudInfiniteHook
from airflow_provider_ci.key_query import KeyQuery, Listing, afind, glob_pattern
from airflow_provider_ci.validation import number, seconds
from airflow_provider_ci.waiting import DEFAULT_MAX_CONSECUTIVE_FAILURES, PollFailures

#: Shortest poll interval of the event trigger: it lists the whole prefix every round.
MIN_EVENT_POLL_INTERVAL = 1.0
#: New keys reported per event: one poll's arrivals go out as one event (a bigger batch as
#: several), since Airflow may leave asset events that land moments apart to a later run.
MAX_KEYS_PER_EVENT = 1000


def _classpath(trigger: BaseTrigger) -> str:
    return f"{type(trigger).__module__}.{type(trigger).__qualname__}"


class CosKeyTrigger(BaseTrigger):
    """Poll COS every ``poll_interval`` seconds until ``query`` holds or ``end_time`` passes.

    Emits exactly one event: ``success`` (``keys`` and ``objects`` found, and ``end_time`` so
    a ``check_fn`` that says "not yet" can wait again), ``error`` (a permanent error, or
    ``max_consecutive_failures`` failed polls in a row), or ``timeout``.

    :param query: what to wait for, :meth:`KeyQuery.to_json` form (exact keys or listings).
    :param bucket: bucket in ``name-APPID`` form; default: the connection's ``extra.bucket``.
    :param region: COS region; default: the connection's ``extra.region``.
    :param tencent_ci_conn_id: the ``tencent_ci`` connection, read with the async lookup.
    :param poll_interval: seconds between polls.
    :param end_time: Unix time after which the wait ends with ``timeout``; ``None`` waits forever.
    :param max_consecutive_failures: failed polls in a row that end the wait with ``error``.
    :param first_poll_delay: seconds to wait before the first poll (the sensor has just poked).
    """

    def __init__(
        self,
        *,
        query: Mapping[str, Any],
        bucket: str | None = None,
        region: str | None = None,
        tencent_ci_conn_id: str = CloudInfiniteHook.default_conn_name,
        poll_interval: float = 30.0,
        end_time: float | None = None,
        max_consecutive_failures: int = DEFAULT_MAX_CONSECUTIVE_FAILURES,
        first_poll_delay: float = 0.0,
    ) -> None:
        super().__init__()
        self.query = KeyQuery.from_json(query)
        self.bucket = bucket
        self.region = region
        self.tencent_ci_conn_id = tencent_ci_conn_id
        self.poll_interval = float(poll_interval)
        self.end_time = None if end_time is None else float(end_time)
        self.max_consecutive_failures = int(max_consecutive_failures)
        self.first_poll_delay = float(first_poll_delay)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            _classpath(self),
            {
                "query": self.query.to_json(),
                "bucket": self.bucket,
                "region": self.region,
                "tencent_ci_conn_id": self.tencent_ci_conn_id,
                "poll_interval": self.poll_interval,
                "end_time": self.end_time,
                "max_consecutive_failures": self.max_consecutive_failures,
                "first_poll_delay": self.first_poll_delay,
            },
        )

    def _time_left(self) -> float:
        return float("inf") if self.end_time is None else self.end_time - time.time()

    async def run(self) -> AsyncIterator[TriggerEvent]:
        hook = CloudInfiniteHook(self.tencent_ci_conn_id)
        failures = PollFailures(self.max_consecutive_failures)
        try:
            yield await self._wait(hook, failures)
        finally:
            await hook.aclose()

    async def _wait(self, hook: CloudInfiniteHook, failures: PollFailures) -> TriggerEvent:
        await asyncio.sleep(max(0.0, min(self.first_poll_delay, self._time_left())))
        while True:
            try:
                found = await afind(self.query, hook, self.bucket, self.region)
            except CloudInfiniteError as exc:
                if failures.record(exc):
                    return TriggerEvent({"status": "error", "message": failures.describe(exc)})
                self.log.warning(
                    "Polling COS for %s failed (%d in a row): %s", self.query.describe(), failures.count, exc
                )
            else:
                failures.reset()
                if found is not None:
                    keys = [obj["Key"] for obj in found]
                    return TriggerEvent(
                        {"status": "success", "keys": keys, "objects": found, "end_time": self.end_time}
                    )
            left = self._time_left()
            if left <= 0:
                return TriggerEvent({"status": "timeout", "message": f"{self.query.describe()} did not arrive in time"})
            await asyncio.sleep(min(self.poll_interval, left))


class CosKeyEventTrigger(BaseEventTrigger):
    """Report the objects that land under ``prefix`` (optionally matching ``pattern``), for an ``AssetWatcher``.

    Each poll lists the prefix (one request per 1,000 keys). Keys that exist when the watch
    first starts are the baseline and are never reported; each key that lands afterwards is
    reported once (again if it is re-uploaded). One poll's new keys go out as one event, in
    ``LastModified`` order (more than 1,000 as several events): Airflow batches asset events
    into runs anyway, and events fired moments apart can be left to a later run (apache/airflow
    #54659, #56050), so one event per arrival batch is what starts a run promptly. The payload
    (the asset event's ``extra["payload"]``) is ``bucket``, ``prefix``, ``keys`` and ``objects``
    (``key``, ``size``, ``etag``, ``last_modified``); :func:`arrived_keys` reads the keys back in
    the scheduled DAG. Failed polls log a warning and the watch goes on.

    Delivery is at least once: the state is saved after the events are handed to the
    triggerer, so a triggerer killed between the two reports those keys again after restart.

    :param prefix: key prefix to watch, e.g. ``"incoming/"``; ``""`` watches the whole bucket.
    :param pattern: optional glob the rest of the key must match, e.g. ``"*.jpg"``
        (``fnmatch`` rules, case-sensitive; ``*`` also matches ``/``).
    :param bucket: bucket in ``name-APPID`` form; default: the connection's ``extra.bucket``.
    :param region: COS region; default: the connection's ``extra.region``.
    :param tencent_ci_conn_id: the ``tencent_ci`` connection, read with the async lookup.
    :param poll_interval: seconds between listings (at least 1; default 60).
    :param late_arrival_window: seconds a key may take from its ``LastModified`` to showing up
        in a listing and still be reported (default 3,600); the saved state holds that window's keys.
    """

    def __init__(
        self,
        *,
        prefix: str,
        pattern: str | None = None,
        bucket: str | None = None,
        region: str | None = None,
        tencent_ci_conn_id: str = CloudInfiniteHook.default_conn_name,
        poll_interval: float = 60.0,
        late_arrival_window: float = DEFAULT_LATE_ARRIVAL_WINDOW,
    ) -> None:
        super().__init__()
        self.listing = Listing(
            cos_objects.prefix("prefix", prefix), None if pattern is None else glob_pattern("pattern", pattern)
        )
        self.bucket = bucket
        self.region = region
        self.tencent_ci_conn_id = tencent_ci_conn_id
        self.poll_interval = number("poll_interval", poll_interval, MIN_EVENT_POLL_INTERVAL, 86_400)
        self.late_arrival_window = seconds("late_arrival_window", late_arrival_window)
        if self.late_arrival_window < self.poll_interval:
            raise CloudInfiniteValidationError("late_arrival_window", "must be at least poll_interval")

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            _classpath(self),
            {
                "prefix": self.listing.prefix,
                "pattern": self.listing.pattern,
                "bucket": self.bucket,
                "region": self.region,
                "tencent_ci_conn_id": self.tencent_ci_conn_id,
                "poll_interval": self.poll_interval,
                "late_arrival_window": self.late_arrival_window,
            },
        )

    def state_key(self, bucket: str) -> str:
        """The state store key of this watch: one per bucket, prefix and pattern."""
        watch = json.dumps([bucket, self.listing.prefix, self.listing.pattern])
        return f"cos_key_event_trigger:{hashlib.sha256(watch.encode()).hexdigest()[:16]}"

    async def _save(self, store: StateStore, arrivals: Arrivals) -> None:
        """Save the state; if that fails, keep it in memory and say what a restart would cost."""
        try:
            await store.save(arrivals)
        except Exception as exc:
            self.log.warning("Could not save the watch state (a restart now may report keys again): %s", exc)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        hook = CloudInfiniteHook(self.tencent_ci_conn_id)
        try:
            bucket: str | None = None
            store: StateStore | None = None
            arrivals: Arrivals | None = None
            while True:
                try:
                    if bucket is None or store is None:  # once, and only complete: never baseline on a failed load
                        settings = await hook.asettings()
                        resolved = str(settings.endpoint(self.bucket, self.region, service="cos").bucket)
                        loading = StateStore(self, self.state_key(resolved))
                        arrivals = await loading.load()
                        bucket, store = resolved, loading
                    objects = await hook.alist_objects(self.listing.prefix, bucket=bucket, region=self.region)
                except Exception as exc:  # a watcher outlives outages: log, and try again next poll
                    self.log.warning("Watching %r failed; trying again next poll: %s", self.listing.prefix, exc)
                    await asyncio.sleep(self.poll_interval)
                    continue
                matching = [obj for obj in objects if self.listing.matches(obj["Key"])]
                now = time.time()
                if arrivals is None:
                    arrivals = Arrivals.baseline(matching, now, self.late_arrival_window)
                    self.log.info(
                        "Watching %s/%s%s: %d existing key(s) are the baseline",
                        bucket,
                        self.listing.prefix,
                        self.listing.pattern or "",
                        len(arrivals.seen),
                    )
                    await self._save(store, arrivals)
                else:
                    fresh = arrivals.new(matching)
                    for start in range(0, len(fresh), MAX_KEYS_PER_EVENT):
                        batch = fresh[start : start + MAX_KEYS_PER_EVENT]
                        self.log.info("%d new COS object(s) in %s: %s", len(batch), bucket, _names(batch))
                        yield TriggerEvent(_payload(bucket, self.listing.prefix, batch))
                    if arrivals.record(fresh, now, self.late_arrival_window):
                        await self._save(store, arrivals)
                await asyncio.sleep(self.poll_interval)
        finally:
            await hook.aclose()


def _payload(bucket: str, prefix: str, objects: list[Mapping[str, Any]]) -> dict[str, Any]:
    return {
        "bucket": bucket,
        "prefix": prefix,
        "keys": [obj["Key"] for obj in objects],
        "objects": [
            {
                "key": obj["Key"],
                "size": obj.get("Size"),
                "etag": obj.get("ETag"),
                "last_modified": obj.get("LastModified"),
            }
            for obj in objects
        ],
    }


def _names(objects: list[Mapping[str, Any]], shown: int = 5) -> str:
    names = ", ".join(str(obj["Key"]) for obj in objects[:shown])
    return names if len(objects) <= shown else f"{names} and {len(objects) - shown} more"


def arrived_keys(events: Any) -> list[str]:
    """The keys :class:`CosKeyEventTrigger` reported in a run's asset events, in order, each once.

    Pass ``triggering_asset_events`` (the whole mapping, or one asset's list of events); events
    from other sources are skipped.
    """
    groups = list(events.values()) if isinstance(events, Mapping) else [events or []]
    keys: list[str] = []
    for group in groups:
        for event in group:
            extra = getattr(event, "extra", None) or (event.get("extra") if isinstance(event, Mapping) else None) or {}
            payload = extra.get("payload") if isinstance(extra, Mapping) else None
            if isinstance(payload, Mapping) and isinstance(payload.get("keys"), list):
                keys.extend(key for key in payload["keys"] if isinstance(key, str))
    return list(dict.fromkeys(keys))

"""CosKeySensor: wait until images have arrived in a COS bucket (``S3KeySensor`` conventions).

Poke mode and deferrable mode ask the same question (:mod:`airflow_provider_ci.key_query`)
through the hook's signed COS requests; deferrable mode pokes once and, if the keys are not
there yet, defers on :class:`~airflow_provider_ci.triggers.cos.CosKeyTrigger`. A poke whose
request fails logs a warning and counts as "not yet", until ``max_consecutive_failures`` pokes
in a row have failed (:class:`~airflow_provider_ci.waiting.PollFailures`), as for the job sensor.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, NoReturn

from airflow.providers.common.compat.sdk import (
    AirflowSensorTimeout,
    AirflowSkipException,
    BaseSensorOperator,
    conf,
)

from airflow_provider_ci import validation as check
from airflow_provider_ci.exceptions import CloudInfiniteError
from airflow_provider_ci.hooks.ci import CloudInfiniteHook
from airflow_provider_ci.key_query import KeyQuery, find
from airflow_provider_ci.waiting import (
    DEFAULT_MAX_CONSECUTIVE_FAILURES,
    PollFailures,
    deferral_timeout,
    read_event,
    wait_limit,
)

if TYPE_CHECKING:
    from airflow.sdk import Context


class CosKeySensor(BaseSensorOperator):
    """Wait for a key, all of several keys, or at least ``min_keys`` keys under a prefix.

    Returns (XCom ``return_value``) the sorted list of keys found. Give ``bucket_key`` or
    ``prefix``, not both. Every field is checked before the first request, with an error
    that names it. Requests go only to the bucket named and only for those keys or that prefix.

    :param bucket_key: one object key or a list of keys that must all exist (one ``HEAD`` each).
        With ``wildcard_match``, each is a glob (``input/*.jpg``) that must match at least one
        key; the part before the first wildcard is listed.
    :param prefix: wait for keys under this prefix (``GET /?prefix=`` walks, 1,000 keys a request).
    :param pattern: with ``prefix``: a glob the rest of the key must match, e.g. ``*.jpg``
        (``fnmatch`` rules, case-sensitive; ``*`` also matches ``/``).
    :param min_keys: with ``prefix``: how many matching keys must exist (default 1).
    :param wildcard_match: treat each ``bucket_key`` as a glob.
    :param check_fn: optional ``check_fn(objects) -> bool`` run on the objects found (dicts
        with ``Key``, ``Size``, ``ETag``, ``LastModified``); False keeps waiting, e.g.
        ``lambda objects: all(o["Size"] > 0 for o in objects)``.
    :param bucket: bucket in ``name-APPID`` form; default: the connection's ``extra.bucket``.
    :param region: COS region; default: the connection's ``extra.region``.
    :param deferrable: wait in the triggerer (default: ``[operators] default_deferrable``).
    :param poke_interval: seconds between pokes, also the deferred poll interval (default 30).
    :param max_consecutive_failures: failed pokes in a row (after the hook's own retries)
        that end the wait (1-1000, default 5); a single failed poke only logs a warning. In
        ``reschedule`` mode the count starts anew with each reschedule.
    :param tencent_ci_conn_id: the ``tencent_ci`` connection (default ``tencent_ci_default``).
    """

    template_fields: Sequence[str] = (
        "bucket_key",
        "prefix",
        "pattern",
        "min_keys",
        "bucket",
        "region",
        "tencent_ci_conn_id",
    )
    ui_color = "#e6f4ea"

    def __init__(
        self,
        *,
        bucket_key: str | list[str] | None = None,
        prefix: str | None = None,
        pattern: str | None = None,
        min_keys: int | str = 1,
        wildcard_match: bool = False,
        check_fn: Callable[[list[dict[str, Any]]], bool] | None = None,
        bucket: str | None = None,
        region: str | None = None,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poke_interval: float | timedelta = 30.0,
        max_consecutive_failures: int = DEFAULT_MAX_CONSECUTIVE_FAILURES,
        tencent_ci_conn_id: str = CloudInfiniteHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(poke_interval=poke_interval, **kwargs)
        self.bucket_key = bucket_key
        self.prefix = prefix
        self.pattern = pattern
        self.min_keys = min_keys
        self.wildcard_match = wildcard_match
        self.check_fn = check_fn
        self.bucket = bucket
        self.region = region
        self.deferrable = deferrable
        self.max_consecutive_failures = check.failure_budget(max_consecutive_failures)
        self.tencent_ci_conn_id = tencent_ci_conn_id
        if not any("{{" in str(value) for value in (bucket_key, prefix, pattern, min_keys)):
            self._query()  # fail at parse time when nothing is left to render
        self._found: list[dict[str, Any]] = []
        self._failures = PollFailures(self.max_consecutive_failures)

    def _query(self) -> KeyQuery:
        return KeyQuery.build(
            bucket_key=self.bucket_key,
            wildcard_match=self.wildcard_match,
            prefix=self.prefix,
            pattern=self.pattern,
            min_keys=self.min_keys,
        )

    def _fail(self, error: Exception) -> NoReturn:
        if self.soft_fail:
            raise AirflowSkipException(str(error))
        raise error

    def _accept(self, objects: list[dict[str, Any]]) -> bool:
        if self.check_fn is not None and not self.check_fn(objects):
            self.log.info("Found %d key(s), but check_fn says not yet", len(objects))
            return False
        self._found = objects
        self.log.info("Found %d key(s): %s", len(objects), ", ".join(o["Key"] for o in objects[:10]))
        return True

    def poke(self, context: Context) -> bool:
        query = self._query()
        hook = CloudInfiniteHook(self.tencent_ci_conn_id)
        try:
            found = find(query, hook, self.bucket, self.region)
        except CloudInfiniteError as exc:
            if self._failures.record(exc):
                self._fail(exc)
            self.log.warning(
                "Polling COS for %s failed (%d in a row, limit %d): %s",
                query.describe(),
                self._failures.count,
                self._failures.max_consecutive,
                exc,
            )
            return False
        finally:
            hook.close()
        self._failures.reset()
        if found is None:
            self.log.info("Waiting for %s", query.describe())
            return False
        return self._accept(found)

    def _keys(self) -> list[str]:
        return [obj["Key"] for obj in self._found]

    def execute(self, context: Context) -> list[str]:
        if not self.deferrable:
            super().execute(context)
            return self._keys()
        if self.poke(context):
            return self._keys()
        self._defer(time.time() + wait_limit(self.timeout, self.execution_timeout), self.poke_interval)

    def _defer(self, end_time: float, first_poll_delay: float) -> NoReturn:
        from airflow_provider_ci.triggers.cos import CosKeyTrigger  # only when deferring: cheap parse

        self.defer(
            trigger=CosKeyTrigger(
                query=self._query().to_json(),
                bucket=self.bucket,
                region=self.region,
                tencent_ci_conn_id=self.tencent_ci_conn_id,
                poll_interval=self.poke_interval,
                end_time=end_time,
                max_consecutive_failures=self.max_consecutive_failures,
                first_poll_delay=first_poll_delay,
            ),
            method_name="execute_complete",
            timeout=deferral_timeout(max(0.0, end_time - time.time()), self.poke_interval),
        )

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> list[str]:
        """Resume after the trigger (a fresh instance: everything comes from ``event``)."""
        event = read_event(event)
        if event["status"] == "timeout":  # as in poke mode: a sensor timeout is not retried
            self._fail(AirflowSensorTimeout(f"{event.get('message')} (sensor timeout {self.timeout:.0f} s)"))
        if event["status"] == "error":
            self._fail(CloudInfiniteError(str(event.get("message"))))
        if self._accept(list(event.get("objects") or [])):
            return self._keys()
        end_time = event.get("end_time") or time.time() + wait_limit(self.timeout, self.execution_timeout)
        self._defer(float(end_time), first_poll_delay=self.poke_interval)

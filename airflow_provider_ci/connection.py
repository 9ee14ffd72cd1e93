"""The ``tencent_ci`` connection, read and checked once into plain settings.

login = SecretId, password = SecretKey; extra: region, bucket, token, scheme, endpoint_url
(see design.md). Reading it never logs or echoes a secret.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from airflow_provider_ci import validation as check
from airflow_provider_ci.exceptions import CloudInfiniteValidationError
from airflow_provider_ci.transport import Credentials, Endpoint

EXTRA_KEYS = frozenset({"region", "bucket", "token", "scheme", "endpoint_url", "max_qps", "poll_batch_size"})
#: CI's limit for asynchronous processing: 100 requests/s per account (50 overseas).
DEFAULT_MAX_QPS = 100.0
#: Job ids per coalesced ``GET /jobs/<ids>``; the service's own limit is undocumented. 50 ids
#: make a ~1.7 KB path, far below common URL limits, and cut 1,000 waits to 20 requests a round.
DEFAULT_POLL_BATCH_SIZE = 50
MAX_POLL_BATCH_SIZE = 100


@dataclass(frozen=True)
class ConnectionSettings:
    """A ``tencent_ci`` connection, every field checked; what ``CloudInfiniteHook.get_conn()`` returns.

    ``credentials`` holds the SecretId, SecretKey and STS token; only the SecretId shows in
    ``repr``. ``max_qps`` and ``poll_batch_size`` are CI's defaults unless the extra sets them.
    """

    credentials: Credentials
    region: str | None
    bucket: str | None
    scheme: str
    endpoint_url: str | None
    max_qps: float = DEFAULT_MAX_QPS
    poll_batch_size: int = DEFAULT_POLL_BATCH_SIZE

    @classmethod
    def parse(
        cls, conn_id: str, login: str | None, password: str | None, extra: Mapping[str, Any]
    ) -> ConnectionSettings:
        """Check every field; errors name the connection and the field, never its value if secret."""

        def field(name: str) -> str:
            return f"connection {conn_id!r} {name}"

        if not login:
            raise CloudInfiniteValidationError(field("login"), "must hold the SecretId")
        if not password:
            raise CloudInfiniteValidationError(field("password"), "must hold the SecretKey")
        unknown = sorted(set(extra) - EXTRA_KEYS)
        if unknown:
            raise CloudInfiniteValidationError(
                field("extra"), f"unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(EXTRA_KEYS))}"
            )
        region = extra.get("region") or None
        bucket = extra.get("bucket") or None
        token = extra.get("token") or None
        endpoint_url = extra.get("endpoint_url") or None
        if token is not None and not isinstance(token, str):
            raise CloudInfiniteValidationError(field("extra.token"), "must be a string")
        return cls(
            credentials=Credentials(secret_id=login, secret_key=password, token=token),
            region=None if region is None else check.region(field("extra.region"), region),
            bucket=None if bucket is None else check.bucket(field("extra.bucket"), bucket),
            scheme=check.one_of(field("extra.scheme"), extra.get("scheme") or "https", ("https", "http")),
            endpoint_url=None if endpoint_url is None else check.endpoint_url(endpoint_url),
            max_qps=check.number(field("extra.max_qps"), extra.get("max_qps", DEFAULT_MAX_QPS), 0.1, 10_000),
            poll_batch_size=int(
                check.number(
                    field("extra.poll_batch_size"),
                    extra.get("poll_batch_size", DEFAULT_POLL_BATCH_SIZE),
                    1,
                    MAX_POLL_BATCH_SIZE,
                    integer=True,
                )
            ),
        )

    def resolve_region(self, region: str | None) -> str:
        """The one place a call's region is decided: its own ``region``, else the connection's."""
        region = region or self.region
        if region is None:
            raise CloudInfiniteValidationError("region", "is required: pass region= or set extra.region")
        return check.region("region", region)

    def resolve_bucket(self, bucket: str | None) -> str:
        """The one place a call's bucket is decided: its own ``bucket``, else the connection's."""
        bucket = bucket or self.bucket
        if bucket is None:
            raise CloudInfiniteValidationError("bucket", "is required: pass bucket= or set extra.bucket")
        return check.bucket("bucket", bucket)

    def endpoint(self, bucket: str | None, region: str | None, *, service: str = "ci") -> Endpoint:
        """The endpoint for a call, per-call ``bucket``/``region`` overriding the connection's."""
        return Endpoint(
            region=self.resolve_region(region),
            bucket=self.resolve_bucket(bucket),
            scheme=self.scheme,
            endpoint_url=self.endpoint_url,
            service=service,
        )


def parse_extra(extra: str | Mapping[str, Any] | None) -> dict[str, Any]:
    """The connection's extra as a dict, parsed without Airflow's masking hooks (safe in a trigger)."""
    if not extra:
        return {}
    if isinstance(extra, Mapping):
        return dict(extra)
    try:
        value = json.loads(extra)
    except ValueError:
        raise CloudInfiniteValidationError("connection extra", "must be a JSON object") from None
    if not isinstance(value, dict):
        raise CloudInfiniteValidationError("connection extra", "must be a JSON object")
    return value

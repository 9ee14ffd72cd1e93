"""COS object reads on ``<bucket>.cos.<region>.myqcloud.com``: list (``GET /``) and ``HEAD /<key>``.

Request builders and parsers only; the hook sends them through the same signed transport,
retries and rate limiter as CI calls. An object is a plain JSON-serialisable dict
(``Key``, ``Size``, ``ETag``, ``LastModified`` as ISO 8601 UTC), ready for XCom and trigger
events. Listings ask for ``encoding-type=url`` (as cos-python-sdk-v5 always does), so keys with
characters XML cannot carry survive, and every key returned is checked to be under the prefix
asked for: nothing outside the bucket and prefix the caller named is ever passed on.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import unquote

from airflow_provider_ci import validation as check
from airflow_provider_ci.exceptions import CloudInfiniteValidationError
from airflow_provider_ci.model import MalformedResponseError
from airflow_provider_ci.transport import ApiRequest, ApiResult

log = logging.getLogger(__name__)

#: COS answers at most 1,000 keys per listing page.
LIST_PAGE_MAX = 1000


def prefix(field: str, value: Any, *, allow_empty: bool = True) -> str:
    """A key prefix: text that could start a key. ``""`` is the whole bucket, when allowed."""
    if value == "" and allow_empty:
        return ""
    return check.object_key(field, value)


def object_key(field: str, value: Any) -> str:
    """One exact object key (no trailing ``/``: that is a folder placeholder, not an image)."""
    key = check.object_key(field, value)
    if key.endswith("/"):
        raise CloudInfiniteValidationError(field, f"{key!r} ends with '/': name a key, or use prefix= to list")
    return key


def list_request(prefix: str, marker: str = "", max_keys: int = LIST_PAGE_MAX) -> ApiRequest:
    """One page of ``GET /?prefix=...`` (the bucket is the endpoint's; keys after ``marker``)."""
    params: dict[str, str | None] = {"prefix": prefix, "max-keys": str(max_keys), "encoding-type": "url"}
    if marker:
        params["marker"] = marker
    return ApiRequest("GET", "/", "list COS objects", params=params)


def head_request(key: str) -> ApiRequest:
    return ApiRequest("HEAD", f"/{key}", "check COS object")


@dataclass(frozen=True)
class ObjectsPage:
    """One parsed ``ListBucketResult``: the objects under the prefix, and where the next page starts."""

    objects: list[dict[str, Any]]
    next_marker: str | None


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _listed_time(text: Any) -> str | None:
    """``2026-12-01T08:00:00.000Z`` as COS lists it, normalised to whole seconds."""
    if not text:
        return None
    try:
        return _iso(datetime.fromisoformat(str(text).replace("Z", "+00:00")))
    except ValueError:
        raise MalformedResponseError(f"LastModified {text!r} is not an ISO 8601 time") from None


def objects_page(result: ApiResult, prefix: str) -> ObjectsPage:
    """The objects of a decoded ``ListBucketResult`` under ``prefix``.

    Keys outside ``prefix`` (a misbehaving proxy) are dropped with a warning, never returned;
    folder placeholders (keys ending in ``/``) are not objects anyone waits for and are skipped.
    """
    data = result.data
    encoded = data.get("EncodingType") == "url"
    decode = unquote if encoded else (lambda text: text)
    objects: list[dict[str, Any]] = []
    last_key: str | None = None
    for entry in _as_list(data.get("Contents")):
        if not isinstance(entry, dict) or not entry.get("Key"):
            raise MalformedResponseError("a Contents element has no Key")
        key = decode(str(entry["Key"]))
        last_key = key
        if not key.startswith(prefix):
            log.warning("COS listed key %r outside the prefix %r asked for; ignored", key, prefix)
            continue
        if key.endswith("/"):
            continue
        objects.append(
            {
                "Key": key,
                "Size": int(entry.get("Size") or 0),
                "ETag": entry.get("ETag"),
                "LastModified": _listed_time(entry.get("LastModified")),
            }
        )
    truncated = str(data.get("IsTruncated") or "false").lower() == "true"
    next_marker = data.get("NextMarker")
    marker = decode(str(next_marker)) if next_marker else last_key
    if truncated and not marker:
        raise MalformedResponseError("a truncated listing gave no NextMarker and no key to continue after")
    return ObjectsPage(objects, marker if truncated else None)


def head_object(result: ApiResult, key: str) -> dict[str, Any]:
    """The object dict of a successful ``HEAD /<key>``, from its headers."""
    headers: Mapping[str, str] = result.headers
    modified = headers.get("last-modified")
    try:
        last_modified = _iso(parsedate_to_datetime(modified)) if modified else None
    except (TypeError, ValueError):
        last_modified = None
    return {
        "Key": key,
        "Size": int(headers.get("content-length") or 0),
        "ETag": headers.get("etag"),
        "LastModified": last_modified,
    }


def epoch(obj: Mapping[str, Any]) -> float:
    """An object's ``LastModified`` as Unix seconds (0 when unknown)."""
    text = obj.get("LastModified")
    return datetime.fromisoformat(str(text).replace("Z", "+00:00")).timestamp() if text else 0.0

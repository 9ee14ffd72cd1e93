"""The COS object calls a pipeline needs around its jobs: put inputs, read outputs, list, delete.

``PUT``/``GET``/``HEAD``/``DELETE /<key>`` and ``GET``/``HEAD /`` (list / check the bucket) on
``<bucket>.cos.<region>.myqcloud.com``. Content types are not stored: ``GET`` guesses one
from the key. File I/O runs in the loop's default executor.
"""

from __future__ import annotations

import asyncio
import mimetypes
from datetime import UTC, datetime
from email.utils import formatdate
from typing import Any
from urllib.parse import quote

from aiohttp import web

from .context import XML, Context, Handler, xml_response
from .errors import ApiError, invalid_argument
from .storage import key_problem
from .validation import integer
from .xmlio import document

MAX_KEYS = 1000


async def put_object(ctx: Context) -> web.StreamResponse:
    key = _key(ctx)
    data = await ctx.request.read()
    loop = asyncio.get_running_loop()
    tag = await loop.run_in_executor(None, ctx.state.storage.put, ctx.bucket, key, data)
    return web.Response(headers={"ETag": tag})


async def get_object(ctx: Context) -> web.StreamResponse:
    """``GET`` and ``HEAD`` (aiohttp leaves the body out of a HEAD answer but keeps its length)."""
    key = _key(ctx)
    loop = asyncio.get_running_loop()
    try:
        data, entry = await loop.run_in_executor(None, ctx.state.storage.read, ctx.bucket, key)
    except FileNotFoundError:
        raise ApiError(404, "NoSuchKey", "The specified key does not exist.") from None
    content_type = mimetypes.guess_type(key)[0] or "application/octet-stream"
    headers = {"ETag": entry.etag, "Last-Modified": formatdate(entry.modified, usegmt=True)}
    return web.Response(body=data, content_type=content_type, headers=headers)


async def delete_object(ctx: Context) -> web.StreamResponse:
    await asyncio.get_running_loop().run_in_executor(None, ctx.state.storage.delete, ctx.bucket, _key(ctx))
    return web.Response(status=204)


async def list_objects(ctx: Context) -> web.StreamResponse:
    """``GET /`` (ListObjects v1): ``prefix``, ``marker``, ``max-keys`` and ``encoding-type=url``
    (keys, prefix and markers percent-encoded, as cos-python-sdk-v5 always asks); no delimiter."""
    query = ctx.request.query
    prefix, marker = query.get("prefix", ""), query.get("marker", "")
    max_keys = integer(query, "max-keys", MAX_KEYS, 0, MAX_KEYS)
    encoding = query.get("encoding-type")
    if encoding not in (None, "", "url"):
        raise invalid_argument(f"encoding-type must be url, got {encoding!r}")
    encode = (lambda text: quote(text, safe="/")) if encoding == "url" else (lambda text: text)
    loop = asyncio.get_running_loop()
    entries, truncated = await loop.run_in_executor(None, ctx.state.storage.list, ctx.bucket, prefix, marker, max_keys)
    result: dict[str, Any] = {
        "Name": ctx.bucket,
        **({"EncodingType": "url"} if encoding == "url" else {}),
        "Prefix": encode(prefix),
        "Marker": encode(marker),
        "MaxKeys": str(max_keys),
        "IsTruncated": str(truncated).lower(),
        **({"NextMarker": encode(entries[-1].key)} if truncated and entries else {}),
        "Contents": [
            {
                "Key": encode(entry.key),
                "LastModified": _iso(entry.modified),
                "ETag": entry.etag,
                "Size": str(entry.size),
                "StorageClass": "STANDARD",
            }
            for entry in entries
        ],
    }
    return xml_response(document("ListBucketResult", result))


async def head_bucket(ctx: Context) -> web.StreamResponse:
    """The bucket exists (the pipeline already answered ``NoSuchBucket`` otherwise)."""
    return web.Response(content_type=XML)


#: Keyed by (method, whether the path names a key).
ROUTES: dict[tuple[str, bool], Handler] = {
    ("PUT", True): put_object,
    ("GET", True): get_object,
    ("HEAD", True): get_object,
    ("DELETE", True): delete_object,
    ("GET", False): list_objects,
    ("HEAD", False): head_bucket,
}


def _key(ctx: Context) -> str:
    problem = key_problem(ctx.item)
    if problem:
        raise invalid_argument(problem)
    return ctx.item


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")

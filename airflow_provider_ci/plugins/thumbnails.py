"""Bounded previews of a job's input and output images, read through the task's own connection.

The browser never talks to COS and never sees a credential: the API server reads the object
with the COS object API (cos-python-sdk-v5 from the ``tencent_ci`` connection), shrinks it to
at most :data:`MAX_SIDE` pixels on its longest side and re-encodes it (JPEG, or PNG when it has
transparency), so a 50 MB original costs the page a few KB. Which objects may be read is
decided before any read: see :func:`refusal`.
"""

from __future__ import annotations

import hashlib
import io
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from airflow_provider_ci.hooks.ci import CloudInfiniteHook

MAX_SIDE = 320
#: Larger originals are not previewed (read at most this many bytes).
MAX_SOURCE_BYTES = 40 * 1024 * 1024
#: Refuse decoding beyond this many pixels (a decompression bomb guard, below Pillow's own).
MAX_PIXELS = 100_000_000
CACHE_CONTROL = "private, max-age=3600"
_ENCODED = re.compile(r"%(2f|5c|2e|00)", re.IGNORECASE)


class PreviewError(Exception):
    """The object exists in the record but cannot be previewed (missing, too big, not an image)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class Thumbnail:
    """A re-encoded preview and the headers it is served with."""

    data: bytes
    content_type: str
    etag: str


def refusal(key: str) -> str | None:
    """Why ``key`` is never served, whatever the record says; None when its form is acceptable.

    Keys come from the query string and must also match a recorded key exactly; these forms
    are refused first so that no path trick reaches the membership check or COS.
    """
    if not key:
        return "key is empty"
    if len(key) > 850:
        return "key is longer than COS allows (850 bytes)"
    if key.startswith("/"):
        return "key starts with '/'"
    if "\\" in key:
        return "key contains a backslash"
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in key):
        return "key contains a control character"
    if any(part in (".", "..") for part in key.split("/")):
        return "key has a '.' or '..' segment"
    if "//" in key:
        return "key has an empty segment"
    if _ENCODED.search(key):
        return "key holds a percent-encoded slash, backslash, dot or NUL"
    return None


def etag(bucket: str, key: str, source_etag: str | None) -> str:
    """A strong validator for the preview: the object's own ETag plus the preview size."""
    digest = hashlib.sha256(f"{bucket}\n{key}\n{source_etag}\n{MAX_SIDE}".encode()).hexdigest()[:32]
    return f'"{digest}"'


def read_object(hook: CloudInfiniteHook, bucket: str, region: str | None, key: str) -> tuple[bytes, str | None]:
    """The object's bytes (at most :data:`MAX_SOURCE_BYTES`) and ETag, via the COS object API."""
    from qcloud_cos.cos_exception import CosServiceError

    client = hook.get_cos_client(region)
    try:
        response = client.get_object(Bucket=bucket, Key=key)
    except CosServiceError as exc:
        status = exc.get_status_code()
        if status == 404:
            raise PreviewError(404, "the object does not exist (yet)") from None
        raise PreviewError(502, f"COS answered {status} {exc.get_error_code()}") from None
    length = int(response.get("Content-Length") or 0)
    if length > MAX_SOURCE_BYTES:
        raise PreviewError(413, f"the object is {length} bytes, more than the {MAX_SOURCE_BYTES} previewed")
    stream = response["Body"].get_raw_stream()
    data = stream.read(MAX_SOURCE_BYTES + 1)
    if len(data) > MAX_SOURCE_BYTES:
        raise PreviewError(413, f"the object is larger than the {MAX_SOURCE_BYTES} bytes previewed")
    return data, response.get("ETag")


def shrink(data: bytes) -> tuple[bytes, str]:
    """``data`` as an image of at most MAX_SIDE px on its longest side: (bytes, Content-Type)."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.width * image.height > MAX_PIXELS:
                raise PreviewError(413, f"the image is {image.width}x{image.height}, too large to preview")
            image.seek(0)  # the first frame of an animation
            picture = ImageOps.exif_transpose(image) or image
            picture.thumbnail((MAX_SIDE, MAX_SIDE))
            alpha = picture.mode in ("RGBA", "LA", "PA") or "transparency" in picture.info
            out = io.BytesIO()
            if alpha:
                picture.convert("RGBA").save(out, "PNG", optimize=True)
                return out.getvalue(), "image/png"
            picture.convert("RGB").save(out, "JPEG", quality=85)
            return out.getvalue(), "image/jpeg"
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise PreviewError(415, f"not an image this server can preview: {type(exc).__name__}") from None


def thumbnail(hook: CloudInfiniteHook, bucket: str, region: str | None, key: str) -> Thumbnail:
    """Read ``key`` from ``bucket`` and make its preview.

    :param hook: a hook on the task's own connection (its credentials read the object).
    :param bucket: the bucket, ``name-APPID``.
    :param region: the bucket's region (default: the connection's).
    :param key: the object key, already checked to be one of the task instance's jobs' keys.
    :return: the re-encoded preview; raises :class:`PreviewError` when there is none to make.
    """
    data, source_etag = read_object(hook, bucket, region, key)
    image, content_type = shrink(data)
    return Thumbnail(image, content_type, etag(bucket, key, source_etag))

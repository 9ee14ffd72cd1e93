"""The ``cos`` asset URI scheme: ``cos://<bucket-APPID>/<key>``, registered in the provider info.

Airflow calls :func:`sanitize_uri` on every ``Asset("cos://...")`` (DAG parse included), after
its own clean-up (lower-case scheme, trailing ``/`` dropped, fragment dropped): a malformed URI
fails there, naming the rule, instead of becoming an asset nothing ever updates. The key is
kept percent-encoded in one canonical form, so ``cos://b/a b.jpg`` and ``cos://b/a%20b.jpg``
are the same asset, and a key holding ``?`` or ``#`` survives the round trip.

This module is imported by Airflow's providers manager while DAG files are parsed: it must
stay light (no hook, no SDK, no HTTP).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote, urlsplit

from airflow_provider_ci import validation as check
from airflow_provider_ci.exceptions import CloudInfiniteValidationError

if TYPE_CHECKING:
    from urllib.parse import SplitResult

    from airflow.sdk import Asset

SCHEME = "cos"
#: RFC 3986 path characters left as they are; everything else in a key is percent-encoded.
_SAFE = "/!$&'()*+,;=:@-._~"


def cos_uri(bucket: str, key: str) -> str:
    """The canonical asset URI of object ``key`` in ``bucket``; raises on a bad bucket or key.

    :param bucket: bucket in ``name-APPID`` form.
    :param key: object key (no leading ``/``).
    :return: ``cos://<bucket>/<percent-encoded key>``.
    """
    return f"{SCHEME}://{check.bucket('bucket', bucket)}/{quote(check.object_key('key', key), safe=_SAFE)}"


def split_cos_uri(uri: str) -> tuple[str, str]:
    """``(bucket, key)`` of a ``cos://`` URI, the key decoded; raises naming the rule it breaks.

    :param uri: a ``cos://<bucket>/<key>`` URI (an ``Asset.uri``).
    :return: the bucket and the object key.
    """
    parts = urlsplit(uri)
    if parts.scheme.lower() != SCHEME:
        raise CloudInfiniteValidationError("uri", f"{uri!r} is not a cos:// URI")
    return _bucket_and_key(parts, uri)


def sanitize_uri(uri: SplitResult) -> SplitResult:
    """Airflow's normalizer for ``cos://`` asset URIs: rejects malformed ones, canonicalizes the key.

    :param uri: the URI as Airflow split it.
    :return: the same URI with its key percent-encoded canonically.
    :raises ValueError: (a :class:`CloudInfiniteValidationError`) naming what is wrong.
    """
    bucket, key = _bucket_and_key(uri, uri.geturl())
    return uri._replace(netloc=bucket, path="/" + quote(key, safe=_SAFE))


def create_asset(*, bucket: str, key: str, extra: dict[str, Any] | None = None) -> Asset:
    """The asset of object ``key`` in ``bucket`` (the ``factory`` of the provider's ``asset-uris``).

    :param bucket: bucket in ``name-APPID`` form.
    :param key: object key.
    :param extra: the asset's extra.
    :return: an ``Asset`` with URI ``cos://<bucket>/<key>``.
    """
    from airflow.sdk import Asset

    return Asset(uri=cos_uri(bucket, key), extra=extra)


def convert_asset_to_openlineage(asset: Asset, lineage_context: Any) -> Any:
    """The OpenLineage dataset of a ``cos://`` asset: namespace ``cos://<bucket>``, name the key.

    The same naming as the operators' own lineage, so assets and job lineage meet in one dataset.

    :param asset: a ``cos://`` asset.
    :param lineage_context: unused (Airflow passes it to every converter).
    :return: an OpenLineage ``Dataset``.
    """
    from airflow.providers.common.compat.openlineage.facet import Dataset

    bucket, key = split_cos_uri(asset.uri)
    return Dataset(namespace=f"{SCHEME}://{bucket}", name=key)


def _bucket_and_key(parts: SplitResult, uri: str) -> tuple[str, str]:
    rule = "must be cos://<bucket-APPID>/<key>, e.g. cos://examplebucket-1250000000/output/cat.webp"
    if "@" in parts.netloc or ":" in parts.netloc:
        raise CloudInfiniteValidationError("uri", f"{uri!r}: no user, password or port in a cos:// URI; {rule}")
    if not parts.netloc:
        raise CloudInfiniteValidationError("uri", f"{uri!r} names no bucket; {rule}")
    if parts.query:
        raise CloudInfiniteValidationError("uri", f"{uri!r}: no query in a cos:// URI; {rule}")
    try:
        bucket = check.bucket("bucket", parts.netloc)
    except CloudInfiniteValidationError as exc:
        raise CloudInfiniteValidationError("uri", f"{uri!r}: {exc.rule}; {rule}") from None
    key = unquote(parts.path[1:] if parts.path.startswith("/") else parts.path)
    if not key:
        raise CloudInfiniteValidationError("uri", f"{uri!r} names no object key; {rule}")
    try:
        check.object_key("key", key)
    except CloudInfiniteValidationError as exc:
        raise CloudInfiniteValidationError("uri", f"{uri!r}: the key {key!r}: {exc.rule}") from None
    return bucket, key

"""What "the images have arrived" means, once, for the key sensor, its trigger and the event trigger.

A :class:`KeyQuery` is either exact keys (each must exist; one ``HEAD`` per key) or listings:
a prefix with an optional glob on the rest of the key and a minimum count (one ``GET /?prefix=``
walk per distinct prefix). A glob ``bucket_key`` (``wildcard_match``) becomes a listing of the
literal part before its first wildcard, as ``S3KeySensor`` does. Nothing is ever requested
outside the bucket and those keys or prefixes, and every field is checked before anything is sent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any

from airflow_provider_ci import cos_objects
from airflow_provider_ci import validation as check
from airflow_provider_ci.exceptions import CloudInfiniteValidationError

if TYPE_CHECKING:
    from airflow_provider_ci.hooks.ci import CloudInfiniteHook

GLOB_CHARS = "*?["
#: Largest ``min_keys``: a wait for more keys than this is a batch job, not a sensor.
MAX_MIN_KEYS = 1_000_000


def glob_pattern(field: str, value: Any) -> str:
    pattern = check.require_text(field, value)
    if any(ord(char) < 32 for char in pattern):
        raise CloudInfiniteValidationError(field, "must not contain control characters")
    return pattern


@dataclass(frozen=True)
class Listing:
    """Keys under ``prefix`` whose remainder matches ``pattern`` (a glob; ``*`` also crosses ``/``)."""

    prefix: str
    pattern: str | None = None
    min_keys: int = 1

    def matches(self, key: str) -> bool:
        if not key.startswith(self.prefix):
            return False
        return self.pattern is None or fnmatchcase(key[len(self.prefix) :], self.pattern)

    def describe(self) -> str:
        what = f"{self.prefix}{self.pattern or ''}" if self.pattern else f"{self.prefix}*"
        return f"{self.min_keys} key(s) matching {what!r}" if self.min_keys > 1 else f"a key matching {what!r}"


def split_glob(field: str, key: str) -> Listing:
    """``input/2026-*/*.jpg`` → list ``input/2026-`` and match ``*/*.jpg`` on the rest."""
    cut = min((key.index(char) for char in GLOB_CHARS if char in key), default=len(key))
    literal, rest = key[:cut], key[cut:]
    return Listing(cos_objects.prefix(field, literal), glob_pattern(field, rest) if rest else None)


@dataclass(frozen=True)
class KeyQuery:
    """Exact ``keys`` that must all exist, or ``listings`` that must each find their minimum."""

    keys: tuple[str, ...] = ()
    listings: tuple[Listing, ...] = ()

    @classmethod
    def build(
        cls,
        *,
        bucket_key: str | Sequence[str] | None = None,
        wildcard_match: bool = False,
        prefix: str | None = None,
        pattern: str | None = None,
        min_keys: int | str = 1,
    ) -> KeyQuery:
        """Check every field (the error names it and the rule) and build the query; nothing is sent.

        Give ``bucket_key`` (one key or a list; globs with ``wildcard_match``) or ``prefix``
        (with an optional ``pattern`` and ``min_keys``), not both.
        """
        if (bucket_key is None) == (prefix is None):
            raise CloudInfiniteValidationError("bucket_key/prefix", "give exactly one: bucket_key or prefix")
        count = int(check.number("min_keys", min_keys, 1, MAX_MIN_KEYS, integer=True))
        if prefix is not None:
            if wildcard_match:
                raise CloudInfiniteValidationError("wildcard_match", "applies to bucket_key; with prefix use pattern")
            listing = Listing(
                cos_objects.prefix("prefix", prefix),
                None if pattern is None else glob_pattern("pattern", pattern),
                count,
            )
            return cls(listings=(listing,))
        if pattern is not None:
            raise CloudInfiniteValidationError("pattern", "applies to prefix; with bucket_key use wildcard_match")
        if count != 1:
            raise CloudInfiniteValidationError("min_keys", "applies to prefix; every bucket_key must exist")
        keys = [bucket_key] if isinstance(bucket_key, str) else list(bucket_key or [])
        if not keys:
            raise CloudInfiniteValidationError("bucket_key", "must name at least one key")
        if not all(isinstance(key, str) for key in keys):
            raise CloudInfiniteValidationError("bucket_key", "must be a string or a list of strings")
        if wildcard_match:
            return cls(listings=tuple(dict.fromkeys(split_glob("bucket_key", key) for key in keys)))
        return cls(keys=tuple(dict.fromkeys(cos_objects.object_key("bucket_key", key) for key in keys)))

    @property
    def prefixes(self) -> list[str]:
        """The distinct prefixes to list, each once even when several listings share it."""
        return list(dict.fromkeys(listing.prefix for listing in self.listings))

    def evaluate(
        self, heads: Mapping[str, dict[str, Any] | None], listed: Mapping[str, list[dict[str, Any]]]
    ) -> list[dict[str, Any]] | None:
        """The objects found, by key, when every condition holds; ``None`` while one does not."""
        found: dict[str, dict[str, Any]] = {}
        for key in self.keys:
            obj = heads.get(key)
            if obj is None:
                return None
            found[key] = obj
        for listing in self.listings:
            matching = [obj for obj in listed.get(listing.prefix, []) if listing.matches(obj["Key"])]
            if len(matching) < listing.min_keys:
                return None
            found.update((obj["Key"], obj) for obj in matching)
        return [found[key] for key in sorted(found)]

    def describe(self) -> str:
        parts = [repr(key) for key in self.keys] + [listing.describe() for listing in self.listings]
        return " and ".join(parts)

    def to_json(self) -> dict[str, Any]:
        """Plain JSON for trigger kwargs."""
        return {
            "keys": list(self.keys),
            "listings": [[item.prefix, item.pattern, item.min_keys] for item in self.listings],
        }

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> KeyQuery:
        return cls(
            keys=tuple(value.get("keys", ())),
            listings=tuple(Listing(pre, pattern, int(count)) for pre, pattern, count in value.get("listings", ())),
        )


def find(
    query: KeyQuery, hook: CloudInfiniteHook, bucket: str | None, region: str | None
) -> list[dict[str, Any]] | None:
    """One blocking poll of ``query``: the objects found when it holds, else ``None``."""
    heads: dict[str, dict[str, Any] | None] = {}
    for key in query.keys:  # in order, stopping at the first missing one
        heads[key] = hook.head_object(key, bucket=bucket, region=region)
        if heads[key] is None:
            return None
    listed = {prefix: hook.list_objects(prefix, bucket=bucket, region=region) for prefix in query.prefixes}
    return query.evaluate(heads, listed)


async def afind(
    query: KeyQuery, hook: CloudInfiniteHook, bucket: str | None, region: str | None
) -> list[dict[str, Any]] | None:
    """:func:`find` with async requests only (for triggers)."""
    heads: dict[str, dict[str, Any] | None] = {}
    for key in query.keys:
        heads[key] = await hook.ahead_object(key, bucket=bucket, region=region)
        if heads[key] is None:
            return None
    listed = {prefix: await hook.alist_objects(prefix, bucket=bucket, region=region) for prefix in query.prefixes}
    return query.evaluate(heads, listed)

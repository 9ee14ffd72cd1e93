"""COS request signature v5 (``q-sign-algorithm=sha1``), as used verbatim by CI hosts.

Pure functions, no I/O and no clock: the caller passes the key time, so signatures are
reproducible and testable against the official vectors. The emulator verifies requests with
the same functions, which is why they are checked against cos-python-sdk-v5 and the published
vectors rather than only against each other.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote

ALGORITHM = "sha1"

#: Headers signed besides every ``x-cos-*`` / ``x-ci-*`` one: the whitelist cos-python-sdk-v5
#: signs. ``Date`` and ``User-Agent`` are deliberately left out (proxies may rewrite them).
SIGNED_HEADER_NAMES = frozenset(
    {
        "cache-control",
        "content-disposition",
        "content-encoding",
        "content-length",
        "content-md5",
        "content-type",
        "expect",
        "expires",
        "host",
        "if-match",
        "if-modified-since",
        "if-none-match",
        "if-unmodified-since",
        "origin",
        "pic-operations",
        "range",
        "transfer-encoding",
    }
)


def _encode(value: str) -> str:
    """UTF-8 percent-encoding of all but the RFC 3986 unreserved characters (space is %20)."""
    return quote(value.encode("utf-8"), safe="-_.~")


def should_sign_header(name: str) -> bool:
    lowered = name.lower()
    return lowered in SIGNED_HEADER_NAMES or lowered.startswith(("x-cos-", "x-ci-"))


def signable_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The subset of ``headers`` a request should sign."""
    return {k: v for k, v in headers.items() if should_sign_header(k)}


def _canonical(items: Mapping[str, str | None]) -> tuple[str, str]:
    """Return (``k=v&...``, ``k;...``) with keys encoded and lowercased, values encoded, sorted."""
    encoded = sorted((_encode(k).lower(), _encode(v or "")) for k, v in items.items())
    return "&".join(f"{k}={v}" for k, v in encoded), ";".join(k for k, _ in encoded)


def sign_key(secret_key: str, key_time: str) -> str:
    return hmac.new(secret_key.encode(), key_time.encode(), hashlib.sha1).hexdigest()


def http_string(method: str, path: str, params: Mapping[str, str | None], headers: Mapping[str, str]) -> str:
    """``method\\npath\\nparams\\nheaders\\n`` where ``path`` is the decoded URI path."""
    param_str, _ = _canonical(params)
    header_str, _ = _canonical(headers)
    return f"{method.lower()}\n{path}\n{param_str}\n{header_str}\n"


def string_to_sign(key_time: str, http: str) -> str:
    return f"{ALGORITHM}\n{key_time}\n{hashlib.sha1(http.encode()).hexdigest()}\n"


def signature(
    *,
    method: str,
    path: str,
    params: Mapping[str, str | None],
    headers: Mapping[str, str],
    secret_key: str,
    key_time: str,
) -> str:
    """The ``q-signature`` over exactly the given params and headers."""
    to_sign = string_to_sign(key_time, http_string(method, path, params, headers))
    return hmac.new(sign_key(secret_key, key_time).encode(), to_sign.encode(), hashlib.sha1).hexdigest()


def authorization(
    *,
    method: str,
    path: str,
    params: Mapping[str, str | None],
    headers: Mapping[str, str],
    secret_id: str,
    secret_key: str,
    start: int,
    end: int,
) -> str:
    """Build the ``Authorization`` header value.

    ``params`` are the query parameters actually sent (a flag such as ``?cancel`` maps to
    ``None`` or ``""``); ``headers`` are the headers to sign, normally
    :func:`signable_headers` of what is sent. ``path`` is the decoded path, e.g. ``/jobs/a,b``.
    """
    key_time = f"{start};{end}"
    _, header_list = _canonical(headers)
    _, param_list = _canonical(params)
    sig = signature(method=method, path=path, params=params, headers=headers, secret_key=secret_key, key_time=key_time)
    return (
        f"q-sign-algorithm={ALGORITHM}&q-ak={secret_id}&q-sign-time={key_time}&q-key-time={key_time}"
        f"&q-header-list={header_list}&q-url-param-list={param_list}&q-signature={sig}"
    )


@dataclass(frozen=True)
class ParsedAuthorization:
    """The fields of an ``Authorization`` value, as a verifier needs them."""

    algorithm: str
    secret_id: str
    sign_time: str
    key_time: str
    header_list: tuple[str, ...]
    param_list: tuple[str, ...]
    signature: str

    @property
    def window(self) -> tuple[int, int]:
        start, _, end = self.sign_time.partition(";")
        return int(start), int(end)


def parse_authorization(value: str) -> ParsedAuthorization:
    """Split an ``Authorization`` value; raises ``ValueError`` naming what is missing or malformed."""
    fields = dict(part.partition("=")[::2] for part in value.split("&"))
    required = ("q-sign-algorithm", "q-ak", "q-sign-time", "q-key-time", "q-header-list", "q-url-param-list")
    missing = [name for name in (*required, "q-signature") if name not in fields]
    if missing:
        raise ValueError(f"Authorization lacks {', '.join(missing)}")
    parsed = ParsedAuthorization(
        algorithm=fields["q-sign-algorithm"],
        secret_id=fields["q-ak"],
        sign_time=fields["q-sign-time"],
        key_time=fields["q-key-time"],
        header_list=tuple(filter(None, fields["q-header-list"].split(";"))),
        param_list=tuple(filter(None, fields["q-url-param-list"].split(";"))),
        signature=fields["q-signature"],
    )
    try:
        start, end = parsed.window
    except ValueError:
        raise ValueError("q-sign-time is not '<start>;<end>' in Unix seconds") from None
    if start > end:
        raise ValueError("q-sign-time starts after it ends")
    return parsed

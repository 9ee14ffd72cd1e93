"""Verification of COS v5 request signatures, the way CI and COS hosts check them.

The server recomputes the signature over exactly what the ``Authorization`` value lists: the
``q-header-list`` headers and ``q-url-param-list`` query parameters *as received*, and the
decoded path (``/jobs/a%2Cb`` and ``/jobs/a,b`` both sign ``/jobs/a,b``). Unlisted headers and
parameters are not checked, as on the real service (cos-python-sdk-v5 leaves ``?cancel``
unsigned). A listed item the request lacks is a mismatch.

Checks run in a fixed order and the first failure decides the answer:

=============================================  ===  =========================
missing ``Authorization``                       403  ``AccessDenied``
unparseable value or algorithm other than sha1  403  ``AccessDenied``
unknown ``q-ak``                                403  ``InvalidAccessKeyId``
``q-sign-time`` not covering now (60 s skew)    403  ``AccessDenied``
token configured, header missing or unsigned    403  ``AccessDenied``
token configured, header wrong                  403  ``InvalidToken``
signature differs                               403  ``SignatureDoesNotMatch``
=============================================  ===  =========================
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from urllib.parse import quote, unquote

from ..signing import ALGORITHM, ParsedAuthorization, parse_authorization, signature
from .errors import ApiError

#: Seconds a signature may start in the future: cos-python-sdk-v5 back-dates by 60 s, and
#: clocks drift.
CLOCK_SKEW = 60

#: Where a temporary credential's token may travel, per host kind ("either accepted on CI hosts;
#: COS hosts need x-cos-security-token").
TOKEN_HEADERS = {"ci": ("x-ci-security-token", "x-cos-security-token"), "cos": ("x-cos-security-token",)}


def _denied(message: str) -> ApiError:
    return ApiError(403, "AccessDenied", message)


def _mismatch(message: str) -> ApiError:
    return ApiError(403, "SignatureDoesNotMatch", message)


def verify(
    *,
    method: str,
    path: str,
    query: Mapping[str, str],
    headers: Mapping[str, str],
    service: str,
    credentials: Mapping[str, str],
    token: str | None,
    now: float,
) -> str:
    """Raise :class:`ApiError` unless the request is signed by one of ``credentials``; return
    the SecretId that signed it (the account, for the rate limit).

    ``query`` is the decoded query string and ``headers`` a case-insensitive mapping (aiohttp's).
    """
    value = headers.get("Authorization")
    if not value:
        raise _denied("Request has no Authorization")
    try:
        auth = parse_authorization(value)
    except ValueError as exc:
        raise _denied(f"Authorization is malformed: {exc}") from None
    if auth.algorithm != ALGORITHM:
        raise _denied(f"q-sign-algorithm must be {ALGORITHM}")
    secret_key = credentials.get(auth.secret_id)
    if secret_key is None:
        raise ApiError(403, "InvalidAccessKeyId", "The SecretId (q-ak) is not known to this service")
    start, end = auth.window
    if now > end:
        raise _denied("Request has expired")
    if now < start - CLOCK_SKEW:
        raise _denied("Request is not valid yet: q-sign-time starts in the future")
    if token is not None:
        _check_token(headers, auth, TOKEN_HEADERS[service], token)
    expected = signature(
        method=method,
        path=path,
        params=_listed(auth.param_list, query, "query parameter"),
        headers=_listed(auth.header_list, headers, "header"),
        secret_key=secret_key,
        key_time=auth.key_time,
    )
    if not hmac.compare_digest(expected, auth.signature):
        raise _mismatch("The request signature we calculated does not match the signature you provided")
    return auth.secret_id


def _listed(names: tuple[str, ...], received: Mapping[str, str], what: str) -> dict[str, str]:
    """The listed items as received (the signer lowercases and encodes the names itself).

    Entries are encoded, lowercased names: headers match them directly (aiohttp's headers are
    case-insensitive); a query key such as ``orderByTime`` needs the map from listed form to
    received key, built only when some entry misses.
    """
    selected = {}
    by_listed_name: dict[str, str] = {}
    for listed in names:
        name = unquote(listed)
        if name not in received:
            by_listed_name = by_listed_name or {quote(key, safe="-_.~").lower(): key for key in received}
            name = by_listed_name.get(listed, name)
        value = received.get(name)
        if value is None:
            raise _mismatch(f"the signed {what} {name!r} is not in the request")
        selected[name] = value
    return selected


def _check_token(headers: Mapping[str, str], auth: ParsedAuthorization, accepted: tuple[str, ...], token: str) -> None:
    present = [name for name in accepted if name in headers]
    if not present:
        raise _denied(f"Request has no security token: send {' or '.join(accepted)}")
    for name in present:
        if name not in auth.header_list:
            raise _denied(f"{name} must be signed (listed in q-header-list)")
        if not hmac.compare_digest(headers[name].encode(), token.encode()):
            raise ApiError(403, "InvalidToken", "The provided security token is invalid")

"""Signed HTTP calls to CI hosts: request building, retries, and a sync and an async sender.

Everything that decides something is pure and shared (:func:`prepare`, :func:`check_response`,
:class:`RetryPolicy`); the two senders only move bytes, so sync and async calls cannot drift
apart. Sync calls use one ``requests.Session`` (keep-alive); async calls one
``httpx.AsyncClient`` (already an Airflow dependency), created in the loop that uses it.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import ssl
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote, urlsplit

from airflow_provider_ci import __version__, signing
from airflow_provider_ci.exceptions import (
    CloudInfiniteServiceError,
    CloudInfiniteThrottledError,
    CloudInfiniteTransportError,
)
from airflow_provider_ci.model import MalformedResponseError, decode, is_error

if TYPE_CHECKING:
    import httpx
    import requests

    from airflow_provider_ci.ratelimit import AdaptiveRateLimiter

#: Which limiter a request to ``endpoint`` with ``credentials`` goes through (None: no limit).
LimiterLookup = Callable[["Endpoint", "Credentials"], "AdaptiveRateLimiter | None"]

log = logging.getLogger(__name__)

USER_AGENT = f"airflow-provider-ci/{__version__}"
#: Seconds a signature stays valid. Short, since every attempt is signed afresh.
SIGNATURE_TTL = 900
#: Signatures start this much in the past to tolerate clock skew (as cos-python-sdk-v5 does).
CLOCK_SKEW = 60
#: Async answers larger than this are decoded in a worker thread: a 50-job answer costs a few
#: ms of parsing, and a poll round's answers arriving together would hold the loop for tens.
DECODE_IN_THREAD_BYTES = 16 * 1024

T = TypeVar("T")


@dataclass(frozen=True)
class Credentials:
    """SecretId, SecretKey and an optional STS token. ``repr`` shows only the SecretId."""

    secret_id: str
    secret_key: str = field(repr=False)
    token: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Endpoint:
    """Where a call goes (``base_url``) and which virtual host it names (``host``).

    With ``endpoint_url`` set (the emulator, a proxy) requests connect there, while the Host
    header and the signature still name ``<bucket>.<service>.<region>.myqcloud.com``.
    """

    region: str
    bucket: str | None = None
    scheme: str = "https"
    endpoint_url: str | None = None
    service: str = "ci"

    @property
    def host(self) -> str:
        suffix = f"{self.service}.{self.region}.myqcloud.com"
        return f"{self.bucket}.{suffix}" if self.bucket else suffix

    @property
    def base_url(self) -> str:
        return self.endpoint_url or f"{self.scheme}://{self.host}"


@dataclass(frozen=True)
class ApiRequest:
    """One API call. ``path`` is decoded (``/jobs/a,b``); a ``None`` param is a bare flag (``?cancel``)."""

    method: str
    path: str
    operation: str
    params: Mapping[str, str | None] = field(default_factory=dict)
    body: bytes | None = None


@dataclass(frozen=True)
class PreparedRequest:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes | None


@dataclass(frozen=True)
class ApiResponse:
    status: int
    headers: Mapping[str, str]
    body: bytes

    @property
    def request_id(self) -> str | None:
        return self.headers.get("x-ci-request-id") or self.headers.get("x-cos-request-id")


def _query(params: Mapping[str, str | None]) -> str:
    parts = [
        quote(k, safe="-_.~") if v is None else f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}"
        for k, v in params.items()
    ]
    return "&".join(parts)


def prepare(request: ApiRequest, endpoint: Endpoint, credentials: Credentials, now: float) -> PreparedRequest:
    """Build the URL and headers of ``request`` and sign every header and param that is sent."""
    headers = {"Host": endpoint.host, "User-Agent": USER_AGENT}
    if request.method in ("POST", "PUT"):
        if request.body is not None:
            headers["Content-Type"] = "application/xml"
        headers["Content-Length"] = str(len(request.body or b""))
    if credentials.token:
        headers["x-ci-security-token" if endpoint.service == "ci" else "x-cos-security-token"] = credentials.token
    start = int(now) - CLOCK_SKEW
    headers["Authorization"] = signing.authorization(
        method=request.method,
        path=request.path,
        params=request.params,
        headers=signing.signable_headers(headers),
        secret_id=credentials.secret_id,
        secret_key=credentials.secret_key,
        start=start,
        end=start + CLOCK_SKEW + SIGNATURE_TTL,
    )
    url = endpoint.base_url + quote(request.path, safe="/,-_.~")
    if request.params:
        url += "?" + _query(request.params)
    return PreparedRequest(request.method, url, headers, request.body)


@dataclass(frozen=True)
class ApiResult:
    """A successful call: the decoded ``<Response>`` fields and the service's request id.

    ``headers`` (lower-case names) carry what a body does not, e.g. a COS ``HEAD``'s size.
    """

    data: dict[str, Any]
    request_id: str | None
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)


def read_response(response: ApiResponse, operation: str) -> ApiResult:
    """Decode ``response``; raise the service's error, including a business error in a 200.

    An unreadable body is a transport error (``maybe_sent``): the request may have been
    acted on, and for reads a retry is the right answer.
    """
    try:
        tag, data = decode(response.body)
    except MalformedResponseError as exc:
        if response.status < 300:
            raise CloudInfiniteTransportError(
                f"CI {operation} failed: unreadable answer (request id {response.request_id}): {exc}",
                maybe_sent=True,
            ) from None
        tag, data = "", {}
    if response.status < 300 and not is_error(tag, data):
        return ApiResult(data, response.request_id, response.headers)
    error = (
        CloudInfiniteThrottledError
        if CloudInfiniteThrottledError.matches(response.status, data.get("Code"))
        else CloudInfiniteServiceError
    )
    raise error(
        status=response.status,
        code=data.get("Code"),
        message=data.get("Message"),
        request_id=response.request_id or data.get("RequestId"),
        trace_id=response.headers.get("x-ci-trace-id") or data.get("TraceId"),
        operation=operation,
    )


def is_retryable(exc: BaseException) -> bool:
    """5xx, throttles, connection failures, timeouts and unreadable answers are retried; other 4xx never."""
    if isinstance(exc, CloudInfiniteServiceError):
        return exc.retryable
    return isinstance(exc, CloudInfiniteTransportError)


def may_have_been_processed(exc: BaseException) -> bool:
    """Whether the service may have acted on a request that failed with ``exc``.

    Only a refused connection or a throttle (503 ``SlowDown``, 429, ``RequestLimitExceeded``:
    refused before processing) prove it did not; a timeout, a reset after sending, another
    5xx or an unreadable answer all leave it open.
    """
    if isinstance(exc, CloudInfiniteThrottledError):
        return False
    if isinstance(exc, CloudInfiniteServiceError):
        return True
    if isinstance(exc, CloudInfiniteTransportError):
        return exc.maybe_sent
    return True


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter, bounded in attempts and in total time.

    Throttles have their own budget (``max_throttled`` retries, short jittered pauses): the
    shared rate limiter already slowed down, so a throttled request only needs to queue
    again, and the rate limit of a busy account must not eat the budget meant for failures.
    """

    max_attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 10.0
    max_elapsed: float = 60.0
    max_throttled: int = 30

    def delays(self) -> Iterator[float]:
        """Sleep before each retry; stops when the attempt or time budget is spent."""
        started = time.monotonic()
        for attempt in range(1, self.max_attempts):
            delay = random.uniform(0, min(self.max_delay, self.base_delay * 2 ** (attempt - 1)))
            if time.monotonic() - started + delay > self.max_elapsed:
                return
            yield delay

    def schedule(self) -> RetrySchedule:
        return RetrySchedule(self)


class RetrySchedule:
    """The retries left to one call: failures from :meth:`RetryPolicy.delays`, throttles apart."""

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy
        self.throttled = 0
        self._failures = policy.delays()

    def delay(self, exc: Exception) -> float | None:
        """Seconds to sleep before retrying after ``exc``; None when ``exc`` must propagate."""
        if not is_retryable(exc):
            return None
        if isinstance(exc, CloudInfiniteThrottledError):
            self.throttled += 1
            if self.throttled > self.policy.max_throttled:
                return None
            return random.uniform(0, self.policy.base_delay)
        return next(self._failures, None)


def _transport_error(operation: str, what: str, exc: BaseException, maybe_sent: bool) -> CloudInfiniteTransportError:
    # Only the exception type is kept: HTTP libraries' messages can echo URLs and headers.
    return CloudInfiniteTransportError(f"CI {operation} failed: {what} ({type(exc).__name__})", maybe_sent=maybe_sent)


class SyncTransport:
    """Blocking calls on one keep-alive ``requests.Session``, each through the account's limiter."""

    def __init__(self, timeout: tuple[float, float], retry: RetryPolicy, limiter: LimiterLookup | None = None) -> None:
        self.timeout = timeout
        self.retry = retry
        self.limiter = limiter
        self._session: requests.Session | None = None

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None

    def send_once(self, request: ApiRequest, endpoint: Endpoint, credentials: Credentials) -> ApiResult:
        import requests

        if self._session is None:
            self._session = requests.Session()
        limiter = self.limiter(endpoint, credentials) if self.limiter else None
        sent_at = limiter.acquire() if limiter else 0.0
        prepared = prepare(request, endpoint, credentials, time.time())
        try:
            raw = self._session.request(
                prepared.method,
                prepared.url,
                headers=prepared.headers,
                data=prepared.body,
                timeout=self.timeout,
                allow_redirects=False,
            )
        except (requests.exceptions.ConnectTimeout, requests.exceptions.SSLError) as exc:
            raise _transport_error(request.operation, "could not connect", exc, maybe_sent=False) from None
        except requests.exceptions.Timeout as exc:
            raise _transport_error(request.operation, "timed out waiting for the answer", exc, True) from None
        except requests.exceptions.ConnectionError as exc:
            # urllib3 wraps a refused connection in NewConnectionError: nothing was sent.
            refused = "NewConnectionError" in repr(exc.args)
            raise _transport_error(request.operation, "connection failed", exc, not refused) from None
        except requests.exceptions.RequestException as exc:
            raise _transport_error(request.operation, "request failed", exc, True) from None
        return _received(request, raw.status_code, raw.headers, raw.content, limiter, sent_at)

    def call(self, request: ApiRequest, endpoint: Endpoint, credentials: Credentials) -> ApiResult:
        """Send, retrying transient failures. Only for requests that are safe to repeat."""
        return retry_sync(lambda: self.send_once(request, endpoint, credentials), self.retry, request.operation)


def _received(
    request: ApiRequest,
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    limiter: AdaptiveRateLimiter | None,
    sent_at: float,
) -> ApiResult:
    response = ApiResponse(status, {k.lower(): v for k, v in headers.items()}, body)
    log.debug("CI %s %s -> %s (request id %s)", request.method, request.path, status, response.request_id)
    try:
        return read_response(response, request.operation)
    except CloudInfiniteThrottledError:
        if limiter is not None:
            limiter.throttled(sent_at)
        raise


def _retry_delay(exc: Exception, schedule: RetrySchedule, operation: str) -> float | None:
    """Seconds to sleep before retrying after ``exc``; None when ``exc`` must propagate.

    Throttles are logged at DEBUG: the shared limiter warns once when it slows down, and at
    scale a line per throttled request would drown the log.
    """
    delay = schedule.delay(exc)
    if delay is not None:
        level = logging.DEBUG if isinstance(exc, CloudInfiniteThrottledError) else logging.WARNING
        log.log(level, "CI %s: %s; retrying in %.1f s", operation, exc, delay)
    return delay


def retry_sync(
    attempt: Callable[[], T],
    policy: RetryPolicy,
    operation: str,
    recover: Callable[[Exception], T | None] | None = None,
) -> T:
    """Run ``attempt`` until it succeeds or a failure is permanent or the budget is spent.

    ``recover`` runs after each backoff, before the next attempt: for a request that is not
    safe to repeat, it can find what the failed attempt did and return that instead.
    """
    schedule = policy.schedule()
    while True:
        try:
            return attempt()
        except Exception as exc:
            delay = _retry_delay(exc, schedule, operation)
            if delay is None:
                raise
            time.sleep(delay)
            recovered = None if recover is None else recover(exc)
            if recovered is not None:
                return recovered


async def retry_async(
    attempt: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    operation: str,
    recover: Callable[[Exception], Awaitable[T | None]] | None = None,
) -> T:
    """:func:`retry_sync` for coroutines."""
    schedule = policy.schedule()
    while True:
        try:
            return await attempt()
        except Exception as exc:
            delay = _retry_delay(exc, schedule, operation)
            if delay is None:
                raise
            await asyncio.sleep(delay)
            recovered = None if recover is None else await recover(exc)
            if recovered is not None:
                return recovered


@functools.cache
def shared_tls_context() -> ssl.SSLContext:
    """One verifying TLS context per process (httpx's default trust store), shared by every
    async client: each trigger's poller builds its own client, and must not reload it."""
    import httpx

    return httpx.create_ssl_context()


def _new_async_client(timeout: tuple[float, float]) -> httpx.AsyncClient:
    import httpx

    connect, read = timeout
    return httpx.AsyncClient(
        verify=shared_tls_context(), timeout=httpx.Timeout(read, connect=connect), follow_redirects=False
    )


class AsyncTransport:
    """Non-blocking calls on one ``httpx.AsyncClient``, reused for the life of a trigger; each
    call waits for the account's limiter with ``asyncio.sleep``."""

    def __init__(self, timeout: tuple[float, float], retry: RetryPolicy, limiter: LimiterLookup | None = None) -> None:
        self.timeout = timeout
        self.retry = retry
        self.limiter = limiter
        self._client: httpx.AsyncClient | None = None

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def send_once(self, request: ApiRequest, endpoint: Endpoint, credentials: Credentials) -> ApiResult:
        import httpx

        if self._client is None:
            # Loading the TLS trust store costs ~30 ms in C code that holds the GIL, so even a
            # thread would stall the loop: it is done once per process (shared_tls_context).
            self._client = await asyncio.to_thread(_new_async_client, self.timeout)
        limiter = self.limiter(endpoint, credentials) if self.limiter else None
        sent_at = await limiter.aacquire() if limiter else 0.0
        prepared = prepare(request, endpoint, credentials, time.time())
        try:
            raw = await self._client.request(
                prepared.method, prepared.url, headers=prepared.headers, content=prepared.body
            )
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise _transport_error(request.operation, "could not connect", exc, maybe_sent=False) from None
        except httpx.TimeoutException as exc:
            raise _transport_error(request.operation, "timed out waiting for the answer", exc, True) from None
        except httpx.HTTPError as exc:
            raise _transport_error(request.operation, "connection failed", exc, True) from None
        if len(raw.content) > DECODE_IN_THREAD_BYTES:
            return await asyncio.to_thread(
                _received, request, raw.status_code, raw.headers, raw.content, limiter, sent_at
            )
        return _received(request, raw.status_code, raw.headers, raw.content, limiter, sent_at)

    async def call(self, request: ApiRequest, endpoint: Endpoint, credentials: Credentials) -> ApiResult:
        """Send, retrying transient failures. Only for requests that are safe to repeat."""
        return await retry_async(lambda: self.send_once(request, endpoint, credentials), self.retry, request.operation)


def split_endpoint_url(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an ``endpoint_url``, with the scheme's default port."""
    parts = urlsplit(url)
    return parts.scheme, parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)

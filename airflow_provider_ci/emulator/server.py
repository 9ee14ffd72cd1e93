"""The aiohttp application: one handler that routes by ``Host`` and runs every request through
the same pipeline.

1. ``/_emulator/...`` goes to the control API, on any host, unsigned.
2. A fault may take the request (see :mod:`.faults`).
3. The ``Host`` header picks the service: ``<bucket>.ci.<region>.myqcloud.com`` (CI job API),
   ``<bucket>.cos.<region>.myqcloud.com`` (COS objects) or ``ci.<region>.myqcloud.com``
   (``GET /picbucket``); any other host → 400 ``InvalidURI``.
4. The signature is verified (:mod:`.auth`) before anything else is looked at, so a rejected
   request changes nothing. Then CI's per-account rate limit (:mod:`.throttle`): over it,
   503 ``SlowDown``, nothing changed.
5. Unknown bucket → 404 ``NoSuchBucket``; CI routes of a bucket whose image processing is off
   → 403 ``PicProcessNotEnabled``; unknown path → 404 ``NoSuchResource``; known path with
   another method → 405 ``MethodNotAllowed`` (all three codes UNCONFIRMED).
6. The route handler runs; errors become the service's XML error body.

Every CI answer carries ``x-ci-request-id`` (``x-cos-request-id`` on COS hosts), errors also the
trace id header, and ``Server: tencent-ci`` (``tencent-cos`` on COS hosts).
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import os
import re
import socket
import struct
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from . import ci_jobs, ci_queues, ci_templates, control_api, cos_api
from .auth import verify
from .context import XML, Context, Handler, xml_response
from .errors import ApiError
from .faults import Fault
from .state import EmulatorState, RequestRecord
from .xmlio import document, error_document

STATE = web.AppKey("state", EmulatorState)
#: Object bodies up to the service's 32 MB image limit, with room to spare.
MAX_BODY = 64 * 1024 * 1024

_HOST = re.compile(r"^(?:(?P<bucket>[^.]+)\.)?(?P<service>ci|cos)\.(?P<region>[a-z0-9-]+)\.myqcloud\.com$")

#: CI routes by resource (the first path segment), then by (method, whether an id follows).
CI_ROUTES: dict[str, dict[tuple[str, bool], Handler]] = {
    "jobs": ci_jobs.ROUTES,
    # The older generation of the image job API (cos-python-sdk-v5's ci_*_media_pic_jobs and
    # Tencent's PicProcess demo): the same jobs under the same rules (ci_api.md §0, §12).
    "pic_jobs": ci_jobs.ROUTES,
    "template": ci_templates.ROUTES,
    "picqueue": ci_queues.ROUTES,
    "picbucket": ci_queues.BUCKET_ROUTES,
}
SERVICE_ROUTES = {"picbucket": ci_queues.SERVICE_ROUTES}
#: Routes that work while a bucket's image processing is off (they switch it on and off).
ACTIVATION_RESOURCE = "picbucket"

_ids = itertools.count(1)
_PID = os.getpid()


@dataclass(frozen=True)
class Target:
    """What the ``Host`` header addresses; ``service`` is ``"ci"`` or ``"cos"``."""

    service: str
    region: str
    bucket: str


def build_app(state: EmulatorState) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY)
    app[STATE] = state
    app.router.add_route("*", "/{path:.*}", handle)
    return app


async def handle(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    if request.path.startswith(control_api.PREFIX):
        return await control_api.handle(request, state)
    host = request.headers.get("Host", "")
    target = _target(host)
    service = target.service if target else "ci"
    route, handlers, item = _route(request.method, request.path, target)
    fault = state.faults.take(request.method, request.path) if state.faults else None
    kind = fault.kind if fault else None
    received = time.time()

    def record(status: int | None) -> None:
        state.record(
            RequestRecord(
                request.method,
                host,
                request.path,
                dict(request.query),
                status,
                route,
                kind,
                received,
                request.headers.get("User-Agent", ""),
            )
        )

    if kind == "reset_before":
        return _abort(request, record)
    if fault is not None and kind == "latency":
        await asyncio.sleep(fault.seconds)
    request_id = _new_id()
    try:
        response = await _answer(request, state, fault, target, handlers, item, request_id)
    except ApiError as exc:
        response = _error_response(exc, service, request_id, f"{host}{request.path}")
    response.headers[f"x-{service}-request-id"] = request_id
    response.headers["Server"] = f"tencent-{service}"
    if kind == "malformed":
        response = _garbled(response)
    if kind == "reset_after":
        return _abort(request, record)
    if fault is not None and kind == "slow_answer":
        await asyncio.sleep(fault.seconds)
    record(response.status)
    return response


async def _answer(
    request: web.Request,
    state: EmulatorState,
    fault: Fault | None,
    target: Target | None,
    handlers: dict[tuple[str, bool], Handler] | None,
    item: str,
    request_id: str,
) -> web.StreamResponse:
    if fault is not None and fault.kind == "status":
        raise ApiError(fault.status, fault.code or "", fault.message or "")
    if fault is not None and fault.kind == "business_error":
        fields = {"Code": fault.code or "", "Message": fault.message or "", "State": "Failed"}
        return xml_response(document("Response", fields))
    if target is None:
        raise ApiError(
            400,
            "InvalidURI",
            f"Host {request.headers.get('Host', '')!r} is not <bucket>.ci.<region>.myqcloud.com, "
            "<bucket>.cos.<region>.myqcloud.com or ci.<region>.myqcloud.com",
        )
    account = verify(
        method=request.method,
        path=request.path,
        query=request.query,
        headers=request.headers,
        service=target.service,
        credentials={state.config.secret_id: state.config.secret_key},
        token=state.config.token,
        now=time.time(),
    )
    if target.service == "ci":
        state.throttle.admit(account)
    if target.bucket and not state.storage.has_bucket(target.bucket):
        raise ApiError(404, "NoSuchBucket", f"The specified bucket {target.bucket} does not exist.")
    if handlers is None:
        raise ApiError(404, "NoSuchResource", f"there is no API at {request.path}")
    resource = request.path[1:].partition("/")[0]
    if target.service == "ci" and target.bucket in state.pic_disabled and resource != ACTIVATION_RESOURCE:
        raise ApiError(
            403,
            "PicProcessNotEnabled",
            f"asynchronous image processing is not enabled for bucket {target.bucket}: "
            "enable it with POST /picbucket or in the CI console",
        )
    handler = handlers.get((request.method, bool(item)))
    if handler is None:
        raise ApiError(405, "MethodNotAllowed", f"{request.method} is not allowed on {request.path}")
    context = Context(request, state, target.region, target.bucket, request_id, item)
    return await handler(context)


def _target(host: str) -> Target | None:
    match = _HOST.match(host.rpartition(":")[0] if ":" in host else host)
    if match is None or (match["service"] == "cos" and not match["bucket"]):
        return None
    return Target(match["service"], match["region"], match["bucket"] or "")


def _route(method: str, path: str, target: Target | None) -> tuple[str, dict[tuple[str, bool], Handler] | None, str]:
    """(route name for the log and stats, the resource's handlers, the item after it)."""
    if target is None:
        return f"{method} (unknown host)", None, ""
    if target.service == "cos":
        item = path[1:]
        return f"{method} /{{key}}" if item else f"{method} /", cos_api.ROUTES, item
    resource, _, item = path[1:].partition("/")
    routes = CI_ROUTES if target.bucket else SERVICE_ROUTES
    name = f"{method} /{resource}/{{id}}" if item else f"{method} /{resource}"
    return name, routes.get(resource), item


def _error_response(exc: ApiError, service: str, request_id: str, resource: str) -> web.Response:
    trace_id = base64.b64encode(uuid.uuid4().bytes * 2).decode()
    body = error_document(exc.code, exc.message, request_id, trace_id, resource=resource if service == "cos" else None)
    response = xml_response(body, status=exc.status)
    response.headers[f"x-{service}-trace-id"] = trace_id
    return response


def _garbled(response: web.StreamResponse) -> web.Response:
    """A 200 whose body is the first half of the real one (or a broken start tag if empty)."""
    body = response.body if isinstance(response, web.Response) and isinstance(response.body, bytes) else b""
    garbled = web.Response(body=body[: len(body) // 2] or b"<Response><JobsDet", content_type=XML)
    for name in ("x-ci-request-id", "x-cos-request-id", "Server"):
        if name in response.headers:
            garbled.headers[name] = response.headers[name]
    return garbled


def _abort(request: web.Request, record: Callable[[int | None], None]) -> web.Response:
    """Reset the connection (RST, via SO_LINGER 0) so the client gets no answer at all."""
    transport = request.transport
    if transport is not None:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
    record(None)
    return web.Response()


def _new_id() -> str:
    """A request id shaped like the service's (base64 of time, process and counter)."""
    return base64.b64encode(f"{int(time.time()):x}_{_PID:x}_{next(_ids):x}".encode()).decode()

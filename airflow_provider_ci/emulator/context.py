"""What a route handler receives once the request passed host routing and the signature check."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from .state import EmulatorState
from .xmlio import document

XML = "application/xml"


@dataclass(frozen=True)
class Context:
    request: web.Request
    state: EmulatorState
    region: str
    #: The bucket the ``Host`` names; empty on the service host ``ci.<region>.myqcloud.com``.
    bucket: str
    request_id: str
    #: The path after the resource: the ids in ``/jobs/<ids>``, the key in ``/<key>`` on COS.
    item: str


Handler = Callable[[Context], Awaitable[web.StreamResponse]]


def xml_response(body: bytes | str, status: int = 200) -> web.Response:
    return web.Response(body=body.encode() if isinstance(body, str) else body, status=status, content_type=XML)


def response_document(ctx: Context, fields: dict[str, Any]) -> web.Response:
    """``<Response><RequestId/>...</Response>``, the envelope of the template/queue/bucket routes."""
    return xml_response(document("Response", {"RequestId": ctx.request_id, **fields}))

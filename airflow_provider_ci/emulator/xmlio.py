"""Wire formats: CI's XML documents and its ``2022-07-18T15:16:43+0800`` timestamps.

Responses are rendered from plain ordered dicts by string building rather than through an
XML tree: element order matters to clients (it follows the service's samples), the output is
byte-stable, and it is several times faster, which counts on the hot polling path.
Requests are parsed with lxml with entity resolution and network access turned off.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import TypeAlias
from xml.sax.saxutils import escape

from lxml import etree

from .errors import ApiError, invalid_argument

#: A response tree: text, a mapping of child elements in order, or a list meaning the element
#: repeats once per item (``{"JobsDetail": [a, b]}`` gives two ``<JobsDetail>``).
Node: TypeAlias = "str | Mapping[str, Node] | Sequence[Node]"

#: The service reports times in China Standard Time whatever the region.
CST = timezone(timedelta(hours=8))
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S%z"
NO_TIME = "-"

_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, remove_comments=True)


def element(tag: str, value: Node) -> str:
    """Render ``value`` as ``<tag>...</tag>``; empty text gives ``<tag/>`` like the service."""
    if isinstance(value, str):
        return f"<{tag}>{escape(value)}</{tag}>" if value else f"<{tag}/>"
    if isinstance(value, Mapping):
        inner = "".join(element(k, v) for k, v in value.items())
        return f"<{tag}>{inner}</{tag}>" if inner else f"<{tag}/>"
    return "".join(element(tag, item) for item in value)


def document(tag: str, value: Node) -> bytes:
    return element(tag, value).encode()


def error_document(code: str, message: str, request_id: str, trace_id: str, resource: str | None = None) -> bytes:
    """``<Error>`` as CI hosts send it; COS hosts add ``<Resource>`` after ``<Message>``."""
    fields = {"Code": code, "Message": message}
    if resource is not None:
        fields["Resource"] = resource
    fields |= {"RequestId": request_id, "TraceId": trace_id}
    return document("Error", fields)


def parse_request(body: bytes) -> etree._Element:
    """Parse a ``<Request>`` body; 400 ``BadRequest`` when it is not well-formed XML."""
    if not body.strip():
        raise ApiError(400, "BadRequest", "the request body is empty; expected a <Request> XML document")
    try:
        root = etree.fromstring(body, _PARSER)
    except etree.XMLSyntaxError as exc:
        raise ApiError(400, "BadRequest", f"the request body is not well-formed XML: {exc}") from None
    if root.tag != "Request":
        raise ApiError(400, "BadRequest", f"the root element must be <Request>, not <{root.tag}>")
    return root


def text(parent: etree._Element | None, path: str) -> str | None:
    """Text of the element at ``path`` below ``parent``; ``None`` when absent or empty."""
    if parent is None:
        return None
    found = parent.find(path)
    if found is None or not found.text:
        return None
    return found.text


def format_time(epoch: float | None) -> str:
    """``2022-07-18T15:16:43+0800``, or ``-`` for a time that has not happened yet."""
    if epoch is None:
        return NO_TIME
    return datetime.fromtimestamp(epoch, CST).strftime(TIME_FORMAT)


def parse_time(value: str, name: str) -> float:
    """Epoch seconds of a ``2001-01-01T00:00:00+0800`` value; 400 naming ``name`` otherwise."""
    try:
        return datetime.strptime(value, TIME_FORMAT).timestamp()
    except ValueError:
        raise invalid_argument(
            f"{name} {value!r} is not a time like 2001-01-01T00:00:00+0800 (%Y-%m-%dT%H:%M:%S%z)"
        ) from None

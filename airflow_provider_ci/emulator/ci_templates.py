"""The PicProcess template routes: ``POST /template``, ``GET /template``, ``PUT``/``DELETE /template/<id>``.

An unknown template id in the path → 404 ``NoSuchTemplate`` (UNCONFIRMED code). ``DELETE``
answers ``<Response><RequestId/><TemplateId/></Response>`` (UNCONFIRMED body).
"""

from __future__ import annotations

import re
import time

from aiohttp import web
from lxml import etree

from .context import Context, Handler, response_document
from .errors import ApiError, invalid_argument
from .jobs import TAG
from .templates import CATEGORY, Template
from .validation import boolean, comma_list, one_of, page, process_rule, required
from .xmlio import parse_request, text

MAX_NAME = 64
#: "Chinese, English letters, digits, _, - and *" (\w covers CJK ideographs).
_NAME = re.compile(r"^[\w\-*]+$")


async def create(ctx: Context) -> web.StreamResponse:
    name, rule, is_pic_info = _template_fields(parse_request(await ctx.request.read()))
    template = ctx.state.templates.create(ctx.bucket, name, rule, is_pic_info, time.time())
    return response_document(ctx, {"Template": template.detail()})


async def update(ctx: Context) -> web.StreamResponse:
    template = _existing(ctx)
    template.name, template.rule, template.is_pic_info = _template_fields(parse_request(await ctx.request.read()))
    template.updated = time.time()
    return response_document(ctx, {"Template": template.detail()})


async def delete(ctx: Context) -> web.StreamResponse:
    template = _existing(ctx)
    ctx.state.templates.delete(ctx.bucket, template.template_id)
    return response_document(ctx, {"TemplateId": template.template_id})


async def describe(ctx: Context) -> web.StreamResponse:
    query = ctx.request.query
    number, size = page(query)
    tag = query.get("tag") or "All"
    category = one_of(query.get("category") or CATEGORY, (CATEGORY, "Official"), "category")
    ids = comma_list(query.get("ids"))
    prefix = query.get("name") or ""
    selected = [
        template
        for template in ctx.state.templates.all(ctx.bucket)
        if tag in ("All", TAG)
        and category == CATEGORY
        and (not ids or template.template_id in ids)
        and template.name.startswith(prefix)
    ]
    shown = selected[(number - 1) * size : number * size]
    return response_document(
        ctx,
        {
            "TotalCount": str(len(selected)),
            "PageNumber": str(number),
            "PageSize": str(size),
            "TemplateList": [template.detail() for template in shown],
        },
    )


ROUTES: dict[tuple[str, bool], Handler] = {
    ("POST", False): create,
    ("GET", False): describe,
    ("PUT", True): update,
    ("DELETE", True): delete,
}


def _existing(ctx: Context) -> Template:
    template = ctx.state.templates.get(ctx.bucket, ctx.item)
    if template is None:
        raise ApiError(404, "NoSuchTemplate", f"template {ctx.item!r} does not exist in bucket {ctx.bucket}")
    return template


def _template_fields(root: etree._Element) -> tuple[str, str, bool]:
    """``(Name, ProcessRule, IsPicInfo)`` of a create/update body."""
    one_of(required(root, "Tag"), (TAG,), "Tag")
    name = required(root, "Name")
    if len(name) > MAX_NAME or not _NAME.match(name):
        raise invalid_argument(
            f"Name must be at most {MAX_NAME} Chinese or English letters, digits, '_', '-' or '*', got {name!r}"
        )
    rule = process_rule(required(root, "PicProcess/ProcessRule"), "PicProcess/ProcessRule")
    return name, rule, boolean(text(root, "PicProcess/IsPicInfo"), "PicProcess/IsPicInfo")

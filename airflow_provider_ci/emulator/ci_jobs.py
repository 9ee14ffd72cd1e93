"""The CI job routes: ``POST /jobs``, ``GET /jobs/<id>[,<id>...]``, ``GET /jobs``, ``PUT /jobs/<id>?cancel``.

``/pic_jobs`` (the older path cos-python-sdk-v5's ``ci_*_media_pic_jobs`` use) is served by the
same handlers: one job store, so a job submitted on either path is read and listed on both.

Choices where the real service's behaviour is UNCONFIRMED (ci_api.md):

- unknown ``Operation/TemplateId`` → 400 ``InvalidArgument`` (the URL is fine, the body names
  something missing);
- cancelling a job a worker has taken (``Running``) or a finished one → 400 ``InvalidArgument``,
  "only jobs that have not started can be cancelled"; an unknown id → 404 ``NoSuchJob``;
- ``GET /jobs/<ids>`` answers 200 even when no id is known, listing them in ``NonExistJobIds``;
  with ``max_ids_per_get`` set, more ids than that → 400 ``InvalidArgument`` (the service's
  largest batch is undocumented; the knob lets clients test how they split).
"""

from __future__ import annotations

import string

from aiohttp import web
from lxml import etree

from .context import Context, Handler, xml_response
from .errors import ApiError, invalid_argument
from .jobs import STATES, TAG, JobSpec, ListQuery, token_seq
from .storage import bucket_name_problem, key_problem
from .validation import boolean, comma_list, integer, one_of, required
from .xmlio import element, parse_request, parse_time, text

MAX_USER_DATA = 1024
_PRINTABLE_ASCII = frozenset(string.printable) - frozenset("\t\n\r\x0b\x0c")
CALLBACK_FORMATS = ("JSON", "XML")
CALLBACK_TYPES = ("Url", "TDMQ")


async def submit(ctx: Context) -> web.StreamResponse:
    spec = _job_spec(ctx, parse_request(await ctx.request.read()))
    faults = ctx.state.faults
    forced = faults.take_job_failure() if faults else None
    job = ctx.state.scheduler.submit(
        ctx.bucket, ctx.region, spec, (forced.code or "", forced.message or "") if forced else None
    )
    return xml_response(f"<Response>{job.detail_xml()}</Response>")


async def describe(ctx: Context) -> web.StreamResponse:
    store = ctx.state.jobs
    found, missing = [], []
    ids = comma_list(ctx.item)
    cap = ctx.state.max_ids_per_get
    if cap and len(ids) > cap:
        raise invalid_argument(f"JobIds: at most {cap} job ids per request, got {len(ids)}")
    for job_id in ids:
        job = store.get(ctx.bucket, job_id)
        if job is None:
            missing.append(job_id)
        else:
            found.append(job.detail_xml())
    body = "".join(found) + element("NonExistJobIds", missing)
    return xml_response(f"<Response>{body}</Response>")


async def list_jobs(ctx: Context) -> web.StreamResponse:
    jobs, token = ctx.state.jobs.page(ctx.bucket, _list_query(ctx))
    body = "".join(job.detail_xml() for job in jobs) + (element("NextToken", token) if token else "")
    return xml_response(f"<Response>{body}</Response>")


async def cancel(ctx: Context) -> web.StreamResponse:
    if "cancel" not in ctx.request.query:
        raise invalid_argument("PUT /jobs/<JobId> needs the cancel parameter: PUT /jobs/<JobId>?cancel")
    job = ctx.state.jobs.get(ctx.bucket, ctx.item)
    if job is None:
        raise ApiError(404, "NoSuchJob", f"job {ctx.item!r} does not exist in bucket {ctx.bucket}")
    if not ctx.state.scheduler.cancel(job):
        raise invalid_argument(
            f"job {job.job_id} is {job.state}: only jobs that have not started (Submitted or Pause) can be cancelled"
        )
    return web.Response()


ROUTES: dict[tuple[str, bool], Handler] = {
    ("POST", False): submit,
    ("GET", False): list_jobs,
    ("GET", True): describe,
    ("PUT", True): cancel,
}


def _job_spec(ctx: Context, root: etree._Element) -> JobSpec:
    """Validate a ``POST /jobs`` body into a :class:`JobSpec`; errors name the element."""
    one_of(required(root, "Tag"), (TAG,), "Tag")
    input_object = _object_key(required(root, "Input/Object"), "Input/Object")
    operation = root.find("Operation")
    if operation is None:
        raise invalid_argument("Operation is required")
    output_region = required(root, "Operation/Output/Region")
    output_bucket = required(root, "Operation/Output/Bucket")
    problem = bucket_name_problem(output_bucket)
    if problem:
        raise invalid_argument(f"Operation/Output/Bucket: {problem}")
    if not ctx.state.storage.has_bucket(output_bucket):
        raise invalid_argument(f"Operation/Output/Bucket {output_bucket!r} does not exist")
    output_object = _object_key(required(root, "Operation/Output/Object"), "Operation/Output/Object")

    pic_process, is_pic_info, rule = None, False, None
    if operation.find("PicProcess") is not None:
        is_pic_info = boolean(text(operation, "PicProcess/IsPicInfo"), "Operation/PicProcess/IsPicInfo")
        # A rule the engine cannot run is accepted here and fails the job (Failed, with the
        # engine's Code and Message), as the service does; templates are checked on creation.
        rule = text(operation, "PicProcess/ProcessRule")
        pic_process = (str(is_pic_info).lower(), rule or "")
    template_id, template_name = text(operation, "TemplateId"), None
    if template_id is not None:  # "TemplateId is used first" when both are given
        template = ctx.state.templates.get(ctx.bucket, template_id)
        if template is None:
            raise invalid_argument(f"Operation/TemplateId {template_id!r} does not exist in bucket {ctx.bucket}")
        template_name, rule, is_pic_info = template.name, template.rule, template.is_pic_info
    elif rule is None:
        raise invalid_argument("Operation needs TemplateId or PicProcess/ProcessRule")

    _check_callback(root)
    queue_id = text(root, "QueueId")
    if queue_id is not None and queue_id != ctx.state.scheduler.queue_for(ctx.bucket).queue_id:
        raise invalid_argument(f"QueueId {queue_id!r} is not the picture queue of bucket {ctx.bucket}")
    return JobSpec(
        input_object=input_object,
        output_region=output_region,
        output_bucket=output_bucket,
        output_object=output_object,
        rule=rule,
        is_pic_info=is_pic_info,
        template_id=template_id,
        template_name=template_name,
        pic_process=pic_process,
        user_data=_user_data(text(operation, "UserData")),
        job_level=int(one_of(text(operation, "JobLevel") or "0", ("0", "1", "2"), "Operation/JobLevel")),
    )


def _object_key(key: str, name: str) -> str:
    problem = key_problem(key)
    if problem:
        raise invalid_argument(f"{name}: {problem}")
    return key


def _user_data(value: str | None) -> str:
    value = value or ""
    if len(value) > MAX_USER_DATA:
        raise invalid_argument(f"Operation/UserData is longer than {MAX_USER_DATA} characters")
    if not set(value) <= _PRINTABLE_ASCII:
        raise invalid_argument("Operation/UserData must be printable ASCII")
    return value


def _check_callback(root: etree._Element) -> None:
    """Callback settings are validated and accepted but never delivered by the emulator."""
    one_of(text(root, "CallBackFormat") or "XML", CALLBACK_FORMATS, "CallBackFormat")
    if one_of(text(root, "CallBackType") or "Url", CALLBACK_TYPES, "CallBackType") == "TDMQ":
        for field in ("MqMode", "MqRegion", "MqName"):
            required(root, f"CallBackMqConfig/{field}")


def _list_query(ctx: Context) -> ListQuery:
    """Validate the ``GET /jobs`` parameters; empty values count as absent (the SDK sends them)."""
    query = {name: value for name, value in ctx.request.query.items() if value}
    one_of(query.get("tag", ""), (TAG,), "tag")
    states = comma_list(query.get("states"))
    for state in states:
        one_of(state, ("All", *STATES), "states")
    token = query.get("nextToken")
    try:
        after_seq = token_seq(token) if token else None
    except ValueError:
        raise invalid_argument(f"nextToken {token!r} is not a token this service returned") from None
    start, end = query.get("startCreationTime"), query.get("endCreationTime")
    return ListQuery(
        size=integer(query, "size", 10, 1, 100),
        descending=one_of(query.get("orderByTime", "Desc"), ("Desc", "Asc"), "orderByTime") == "Desc",
        states=frozenset(STATES if not states or "All" in states else states),
        after_seq=after_seq,
        start=int(parse_time(start, "startCreationTime")) if start else None,
        end=int(parse_time(end, "endCreationTime")) if end else None,
        input_object=query.get("inputObject"),
        queue_id=query.get("queueId"),
        triggered_only=bool(query.get("workflowId") or query.get("inventoryTriggerJobId")),
    )

"""Service activation and the picture queue: ``/picbucket`` and ``/picqueue``.

Every bucket has asynchronous image processing enabled and one queue unless a test switches
it off (``Emulator.disable_pic_processing`` or ``DELETE /picbucket``). While it is off, the job,
template and queue routes of that bucket answer 403 ``PicProcessNotEnabled`` (UNCONFIRMED
code; chosen so a client can tell "enable the service" apart from a signature problem).

Buckets have no region in the emulator: ``GET /picbucket`` on ``ci.<region>.myqcloud.com``
reports every enabled bucket in that region. An unknown queue id → 404 ``NoSuchQueue``
(UNCONFIRMED).
"""

from __future__ import annotations

from aiohttp import web
from lxml import etree

from .context import Context, Handler, response_document
from .errors import ApiError, invalid_argument
from .scheduler import ACTIVE, NOTIFY_FIELDS, PAUSED, PicQueue
from .validation import comma_list, one_of, page
from .xmlio import format_time, parse_request, text

MAX_QUEUE_NAME_BYTES = 128


async def list_queues(ctx: Context) -> web.StreamResponse:
    query = ctx.request.query
    number, size = page(query)
    state = one_of(query.get("state") or "All", ("All", ACTIVE, PAUSED), "state")
    queue = ctx.state.scheduler.queue_for(ctx.bucket)
    ids = comma_list(query.get("queueIds"))
    selected = [queue] if (not ids or queue.queue_id in ids) and state in ("All", queue.state) else []
    shown = selected[(number - 1) * size : number * size]
    fields = {
        "TotalCount": str(len(selected)),
        "PageNumber": str(number),
        "PageSize": str(size),
        "QueueList": [q.detail(ctx.state.scheduler.workers) for q in shown],
        "NonExistPIDs": [queue_id for queue_id in ids if queue_id != queue.queue_id],
    }
    return response_document(ctx, fields)


async def update_queue(ctx: Context) -> web.StreamResponse:
    scheduler = ctx.state.scheduler
    queue = scheduler.queue_for(ctx.bucket)
    if ctx.item != queue.queue_id:
        raise ApiError(404, "NoSuchQueue", f"queue {ctx.item!r} does not exist in bucket {ctx.bucket}")
    root = parse_request(await ctx.request.read())
    name = text(root, "Name")
    if name is not None and len(name.encode()) > MAX_QUEUE_NAME_BYTES:
        raise invalid_argument(f"Name is longer than {MAX_QUEUE_NAME_BYTES} bytes")
    state = text(root, "State")
    if state is not None:
        one_of(state, (ACTIVE, PAUSED), "State")
    notify = _notify_config(root, queue)
    queue.name = name or queue.name
    queue.notify = notify
    scheduler.set_queue_state(queue, state or queue.state)
    return response_document(ctx, {"Queue": queue.detail(scheduler.workers)})


async def enable(ctx: Context) -> web.StreamResponse:
    ctx.state.set_pic_processing(ctx.bucket, enabled=True)
    created = ctx.state.storage.buckets()[ctx.bucket]
    return response_document(ctx, {"PicBucket": _bucket_detail(ctx, ctx.bucket, created)})


async def disable(ctx: Context) -> web.StreamResponse:
    ctx.state.set_pic_processing(ctx.bucket, enabled=False)
    return response_document(ctx, {"BucketId": ctx.bucket})


async def list_buckets(ctx: Context) -> web.StreamResponse:
    """``GET /picbucket`` on the service host: ``bucketNames`` exact, ``bucketName`` prefix."""
    query = ctx.request.query
    number, size = page(query)
    regions = comma_list(query.get("regions"))
    names = comma_list(query.get("bucketNames"))
    prefix = query.get("bucketName") or ""
    buckets = ctx.state.storage.buckets()
    selected = [
        bucket
        for bucket in buckets
        if bucket not in ctx.state.pic_disabled
        and (not regions or ctx.region in regions)
        and (not names or bucket in names)
        and bucket.startswith(prefix)
    ]
    shown = selected[(number - 1) * size : number * size]
    fields = {
        "TotalCount": str(len(selected)),
        "PageNumber": str(number),
        "PageSize": str(size),
        "PicBucketList": [_bucket_detail(ctx, bucket, buckets[bucket]) for bucket in shown],
    }
    return response_document(ctx, fields)


ROUTES: dict[tuple[str, bool], Handler] = {("GET", False): list_queues, ("PUT", True): update_queue}
BUCKET_ROUTES: dict[tuple[str, bool], Handler] = {("POST", False): enable, ("DELETE", False): disable}
SERVICE_ROUTES: dict[tuple[str, bool], Handler] = {("GET", False): list_buckets}


def _bucket_detail(ctx: Context, bucket: str, created: float) -> dict[str, str]:
    return {
        "BucketId": bucket,
        "Name": bucket.rpartition("-")[0],
        "Region": ctx.region,
        "CreateTime": format_time(created),
    }


def _notify_config(root: etree._Element, queue: PicQueue) -> dict[str, str]:
    """The queue's ``NotifyConfig`` updated from the body; stored and echoed, never delivered."""
    notify = dict(queue.notify)
    for field in NOTIFY_FIELDS:
        value = text(root, f"NotifyConfig/{field}")
        if value is not None:
            notify[field] = value
    return notify

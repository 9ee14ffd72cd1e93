"""The plugin's FastAPI app: the task-instance page, its JSON twin and the thumbnails.

Every route depends on Airflow's own security dependencies: ``requires_access_dag`` with the
TASK_INSTANCE and XCOM entities of the DAG in the path, so the configured auth manager decides
(JWT bearer token, or the UI's token cookie). Nothing here checks a permission by itself, and
nothing is written: the routes read the metadata DB, CI's job API and COS objects.
"""

from __future__ import annotations

import inspect
import logging
import math
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from airflow_provider_ci.exceptions import CloudInfiniteError
from airflow_provider_ci.hooks.ci import CloudInfiniteHook
from airflow_provider_ci.plugins import records, thumbnails, views

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Asgi = Callable[[Scope, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]]

TEMPLATES = Path(__file__).parent / "templates"
#: Pages are framed by the Airflow UI (same origin) and load only their own thumbnails.
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "SAMEORIGIN",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": (
        "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'self'; base-uri 'none'"
    ),
}
IMAGE_HEADERS = {
    "Cache-Control": thumbnails.CACHE_CONTROL,
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; sandbox",
}
COOKIE = "_token"


def _access() -> list[Any]:
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
    from airflow.api_fastapi.core_api.security import requires_access_dag

    return [
        Depends(requires_access_dag("GET", DagAccessEntity.TASK_INSTANCE)),
        Depends(requires_access_dag("GET", DagAccessEntity.XCOM)),
    ]


def _jinja() -> Any:
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(default=True))
    env.filters["duration"] = _duration
    return env


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    whole = math.ceil(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h {minutes:02d}m" if hours else (f"{minutes}m {secs:02d}s" if minutes else f"{secs}s")


def _cookie_is_read_by_airflow() -> bool:
    """Airflow 3.3's ``get_user`` reads the UI's token cookie itself; 3.1 and 3.2 read only the header."""
    from airflow.api_fastapi.core_api.security import get_user

    return "request" in inspect.signature(get_user).parameters


class CookieToBearer:
    """Hand the UI's token cookie to Airflow's own ``get_user`` as a bearer header (Airflow < 3.3).

    The token is validated by the auth manager exactly as an API call's would be; an explicit
    ``Authorization`` header always wins. The token is never logged or echoed.
    """

    def __init__(self, app: Asgi) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            headers = list(scope.get("headers") or [])
            names = {name.lower() for name, _ in headers}
            if b"authorization" not in names:
                token = _cookie(headers, COOKIE)
                if token:
                    scope = {**scope, "headers": [*headers, (b"authorization", b"Bearer " + token.encode())]}
        await self.app(scope, receive, send)


def _cookie(headers: list[tuple[bytes, bytes]], name: str) -> str | None:
    from http.cookies import SimpleCookie

    for key, value in headers:
        if key.lower() == b"cookie":
            jar: SimpleCookie = SimpleCookie()
            try:
                jar.load(value.decode("latin-1"))
            except Exception:
                continue
            if name in jar:
                return jar[name].value
    return None


def _base(request: Request) -> str:
    return str(request.scope.get("root_path", "")).rstrip("/")


def _ti_path(dag_id: str, run_id: str, task_id: str) -> str:
    return "/".join(quote(part, safe="") for part in (dag_id, run_id, task_id))


def preview_urls(request: Request, record: records.TaskRecord) -> views.PreviewUrl:
    """Thumbnail paths on this server for one task instance's objects (no host, no credential)."""
    prefix = f"{_base(request)}/thumbnails/{_ti_path(record.dag_id, record.run_id, record.task_id)}"

    def url(job_id: str, key: str) -> str:
        return f"{prefix}?{urlencode({'map_index': record.map_index, 'job_id': job_id, 'key': key})}"

    return url


def _map_index(value: str) -> int:
    return -1 if value == UNMAPPED else int(value)


def _record(dag_id: str, run_id: str, task_id: str, map_index: str) -> records.TaskRecord:
    try:
        record = records.load(dag_id, run_id, task_id, _map_index(map_index))
    except records.NoSuchTaskInstance:
        raise HTTPException(404, "No such task instance") from None
    if not record.jobs:
        raise HTTPException(404, "This task instance has no Tencent CI job")
    return record


def _data(
    request: Request, record: records.TaskRecord, page: int, per_page: int, state: str | None, q: str | None
) -> dict[str, Any]:
    urls = preview_urls(request, record)
    if record.batch:
        return views.batch(record, urls, page=page, per_page=per_page, state=state or None, query=q or None)
    return views.single(record, urls)


#: The UI leaves ``{MAP_INDEX}`` unreplaced on the page of a task that is not mapped (Airflow 3.3).
UNMAPPED = "{MAP_INDEX}"


def _preview(
    hook: CloudInfiniteHook, record: records.TaskRecord, job: records.RecordedJob, key: str
) -> thumbnails.Thumbnail:
    """The thumbnail of ``key`` if it is ``job``'s input or output; HTTP errors otherwise (no secret in them)."""
    try:
        default_bucket = hook.settings().bucket
    except Exception as exc:
        log.warning("Tencent CI thumbnail: connection %r unusable: %s", record.conn_id, exc)
        raise HTTPException(502, f"The task's connection is unusable: {type(exc).__name__}") from None
    where = views.object_location(record, job, key, record.detail, default_bucket)
    if where is None and not (job.input_object and job.output_object):  # keys not recorded: ask CI
        live = views.fetch_live(hook, record, [str(job.job_id)])
        where = views.object_location(record, job, key, live.details.get(str(job.job_id)), default_bucket)
    if where is None:
        raise HTTPException(404, "Not an object of this job")
    bucket, region = where
    if not bucket:
        raise HTTPException(404, "The job's bucket is not known")
    try:
        return thumbnails.thumbnail(hook, bucket, region, key)
    except thumbnails.PreviewError as exc:
        raise HTTPException(exc.status, exc.reason) from None
    except CloudInfiniteError as exc:
        log.warning("Tencent CI thumbnail: %s", exc)
        raise HTTPException(502, f"Could not read the object: {type(exc).__name__}") from None


MapIndex = Query("-1", pattern=r"^(-1|\d{1,9}|\{MAP_INDEX\})$", description="The map index; -1 when not mapped")
Page = Query(1, ge=1, le=1_000_000)
PerPage = Query(views.PER_PAGE, ge=1, le=views.MAX_PER_PAGE)
StateFilter = Query(None, max_length=32, pattern=r"^[A-Za-z]*$")
Search = Query(None, max_length=200)


def create_app() -> FastAPI:
    """The app Airflow mounts under the plugin's ``url_prefix``."""
    access = _access()
    jinja = _jinja()
    app = FastAPI(title="Tencent CI", docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(HTTPException)
    async def _error(request: Request, exc: HTTPException) -> Response:
        """JSON for the API and images; a small page for the tab (it signs the 3.1/3.2 UI in, see docs)."""
        headers = dict(exc.headers or {})
        if request.url.path.startswith(f"{_base(request)}/task-instances/"):
            html = jinja.get_template("error.html").render(status=exc.status_code, detail=exc.detail)
            return HTMLResponse(html, exc.status_code, headers={**PAGE_HEADERS, **headers})
        return JSONResponse({"detail": exc.detail}, exc.status_code, headers={"Cache-Control": "no-store", **headers})

    @app.get("/task-instances/{dag_id}/{run_id}/{task_id}", response_class=HTMLResponse, dependencies=access)
    def task_instance_page(
        request: Request,
        dag_id: str,
        run_id: str,
        task_id: str,
        map_index: str = MapIndex,
        page: int = Page,
        per_page: int = PerPage,
        state: str | None = StateFilter,
        q: str | None = Search,
    ) -> HTMLResponse:
        """The "Tencent CI" tab of a task instance."""
        record = _record(dag_id, run_id, task_id, map_index)
        data = _data(request, record, page, per_page, state, q)
        template = "batch.html" if record.batch else "job.html"
        here = f"{_base(request)}/task-instances/{_ti_path(dag_id, run_id, task_id)}"

        def link(**changes: Any) -> str:
            params = {
                "map_index": _map_index(map_index),
                "per_page": per_page,
                "state": state or "",
                "q": q or "",
                "page": 1,
            }
            params.update(changes)
            return f"{here}?{urlencode({k: v for k, v in params.items() if v not in ('', None)})}"

        html = jinja.get_template(template).render(**data, link=link, here=here)
        return HTMLResponse(html, headers=PAGE_HEADERS)

    @app.get("/api/task-instances/{dag_id}/{run_id}/{task_id}", dependencies=access)
    def task_instance_json(
        request: Request,
        dag_id: str,
        run_id: str,
        task_id: str,
        map_index: str = MapIndex,
        page: int = Page,
        per_page: int = PerPage,
        state: str | None = StateFilter,
        q: str | None = Search,
    ) -> JSONResponse:
        """``{"jobs": [JobsDetail + input_preview_url + output_preview_url], "summary": {...}}``."""
        record = _record(dag_id, run_id, task_id, map_index)
        return JSONResponse(_data(request, record, page, per_page, state, q), headers={"Cache-Control": "no-store"})

    @app.get("/thumbnails/{dag_id}/{run_id}/{task_id}", dependencies=access)
    def thumbnail(
        dag_id: str,
        run_id: str,
        task_id: str,
        job_id: str = Query(..., min_length=1, max_length=64, pattern=r"^[A-Za-z0-9]+$"),
        key: str = Query(..., min_length=1, max_length=1024),
        map_index: str = MapIndex,
    ) -> Response:
        """A preview of one input or output object of one of this task instance's jobs."""
        why = thumbnails.refusal(key)
        if why:
            raise HTTPException(400, f"Refused: {why}")
        record = _record(dag_id, run_id, task_id, map_index)
        job = record.job(job_id)
        if job is None:
            raise HTTPException(404, "Not a job of this task instance")
        hook = views.ui_hook(record.conn_id)
        try:
            preview = _preview(hook, record, job, key)
        finally:
            hook.close()
        return Response(preview.data, media_type=preview.content_type, headers={**IMAGE_HEADERS, "ETag": preview.etag})

    if not _cookie_is_read_by_airflow():
        app.add_middleware(CookieToBearer)
    return app

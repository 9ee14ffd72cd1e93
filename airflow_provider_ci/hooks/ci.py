"""CloudInfiniteHook: the ``tencent_ci`` connection and the CI PicProcess job API, sync and async.

Each API call is described once (an :class:`ApiRequest` and a parser); only the sending
differs between the blocking methods (operator, sensor poke) and the ``a``-prefixed
coroutines (triggers), which read the connection the async way and never block the loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook

from airflow_provider_ci import cos_objects
from airflow_provider_ci import validation as check
from airflow_provider_ci.connection import DEFAULT_MAX_QPS, ConnectionSettings, parse_extra
from airflow_provider_ci.exceptions import (
    CloudInfiniteJobNotFoundError,
    CloudInfiniteServiceError,
    CloudInfiniteSubmitUncertainError,
    CloudInfiniteValidationError,
)
from airflow_provider_ci.model import TAG, JobsPage, MqConfig, PicProcessJob, jobs_page, template_xml
from airflow_provider_ci.ratelimit import AdaptiveRateLimiter, limiter_for
from airflow_provider_ci.states import JobState
from airflow_provider_ci.transport import (
    ApiRequest,
    ApiResult,
    AsyncTransport,
    Credentials,
    Endpoint,
    RetryPolicy,
    SyncTransport,
    may_have_been_processed,
    retry_async,
    retry_sync,
)

if TYPE_CHECKING:
    from qcloud_cos import CosS3Client

log = logging.getLogger(__name__)

#: UserData of a submit whose caller gave none: makes a possibly-created job findable.
SUBMIT_TOKEN_PREFIX = "airflow-ci-submit:"
#: CI's time format for list filters (``2001-01-01T00:00:00+0800``).
CI_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S%z"
CI_TZ = timezone(timedelta(hours=8))
LIST_STATES = ("All", *(state.value for state in JobState))
LIST_PAGE_MAX = 100


def _job_ids(job_ids: Iterable[str]) -> list[str]:
    ids = list(dict.fromkeys(job_ids))
    if not ids:
        raise CloudInfiniteValidationError("job_ids", "must name at least one job")
    for job_id in ids:
        if not isinstance(job_id, str) or not job_id.isalnum():
            raise CloudInfiniteValidationError("job_id", f"{job_id!r} is not a CI job id (letters and digits)")
    return ids


def _ci_time(value: datetime | str | None, field: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if value.tzinfo is None:
        raise CloudInfiniteValidationError(field, "must be timezone-aware")
    return value.astimezone(CI_TZ).strftime(CI_TIME_FORMAT)


def _with_request_id(details: Iterable[dict[str, Any]], result: ApiResult) -> list[dict[str, Any]]:
    """Each JobsDetail plus ``RequestId``, the request id of the answer that carried it."""
    return [{**detail, "RequestId": result.request_id} for detail in details]


def _found_or_raise(ids: Sequence[str], result: ApiResult) -> dict[str, dict[str, Any]]:
    page = jobs_page(result.data)
    found = {detail["JobId"]: detail for detail in _with_request_id(page.jobs, result)}
    missing = [job_id for job_id in ids if job_id not in found]
    if missing:
        raise CloudInfiniteJobNotFoundError(missing, found)
    return {job_id: found[job_id] for job_id in ids}


class CloudInfiniteHook(BaseHook):
    """Talks to Tencent Cloud Infinite with the credentials of a ``tencent_ci`` connection.

    Building one does no I/O: the connection is read on first use and cached. ``timeout`` is
    (connect, read) seconds per request; ``retry`` bounds how transient failures (5xx, 429,
    connection errors, timeouts) are retried. ``jobs_path`` is ``/jobs``, or ``/pic_jobs``
    for the older generation of the API.

    Every request, sync or async, goes through the process's adaptive rate limiter of the
    connection's account and region (:mod:`airflow_provider_ci.ratelimit`), shared with every
    other hook, trigger and task of that account here; ``max_qps`` (default: the connection's
    ``max_qps`` extra, else CI's 100) is its ceiling, every attempt counting.

    :param tencent_ci_conn_id: the ``tencent_ci`` connection to use.
    :param timeout: (connect, read) timeout of one request, in seconds.
    :param retry: attempts, backoff and overall time bound for transient failures; default
        :class:`~airflow_provider_ci.transport.RetryPolicy`'s.
    :param jobs_path: ``/jobs`` (default) or ``/pic_jobs``, the older API generation.
    :param max_qps: ceiling of the shared rate limiter of this connection's account and
        region, in requests per second; default the connection's ``max_qps`` extra, else 100.
    """

    conn_name_attr = "tencent_ci_conn_id"
    default_conn_name = "tencent_ci_default"
    conn_type = "tencent_ci"
    hook_name = "Tencent Cloud Infinite"

    def __init__(
        self,
        tencent_ci_conn_id: str = default_conn_name,
        *,
        timeout: tuple[float, float] = (5.0, 30.0),
        retry: RetryPolicy | None = None,
        jobs_path: str = "/jobs",
        max_qps: float | None = None,
    ) -> None:
        super().__init__()
        self.tencent_ci_conn_id = tencent_ci_conn_id
        self.retry = retry or RetryPolicy()
        self.jobs_path = jobs_path
        if max_qps is not None and (isinstance(max_qps, bool) or not isinstance(max_qps, int | float) or max_qps <= 0):
            raise CloudInfiniteValidationError("max_qps", f"must be requests per second > 0, got {max_qps!r}")
        self.max_qps = max_qps
        self._sync = SyncTransport(timeout, self.retry, self._limiter)
        self._async = AsyncTransport(timeout, self.retry, self._limiter)
        self._settings: ConnectionSettings | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(tencent_ci_conn_id={self.tencent_ci_conn_id!r})"

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """The connection form's extra fields for Airflow 3.1 (3.2+ reads ``conn-fields`` instead).

        Built from the provider info's ``conn-fields``, so both forms show the same fields.
        Needs WTForms (FAB brings it); without it Airflow 3.1 shows the generic form.

        :return: WTForms fields keyed by the extra key each is saved under.
        """
        from airflow_provider_ci.connection_form import form_widgets

        return form_widgets()

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Hidden, relabelled and placeholder fields of the connection form (Airflow 3.1).

        :return: ``hidden_fields``, ``relabeling`` and ``placeholders``, from ``ui-field-behaviour``.
        """
        from airflow_provider_ci.connection_form import ui_field_behaviour

        return ui_field_behaviour()

    def get_conn(self) -> ConnectionSettings:
        """The connection's checked settings (read once; blocking, see :meth:`asettings` in triggers).

        The hook keeps no session object: requests are signed per call. Secrets stay out of the
        result's ``repr``.

        :return: credentials, region, bucket, scheme, endpoint URL, ``max_qps`` and ``poll_batch_size``.
        :raises CloudInfiniteValidationError: a field of the connection breaks its rule.
        """
        return self.settings()

    # -- connection -------------------------------------------------------------------------

    def settings(self) -> ConnectionSettings:
        """The connection's settings, read once (blocking; not for triggers, see :meth:`asettings`).

        :return: the checked settings of the connection.
        """
        if self._settings is None:
            conn = self.get_connection(self.tencent_ci_conn_id)
            # extra_dejson (not the raw JSON) so Airflow masks the token in task logs.
            self._settings = ConnectionSettings.parse(
                self.tencent_ci_conn_id, conn.login, conn.password, conn.extra_dejson
            )
        return self._settings

    async def asettings(self) -> ConnectionSettings:
        """The connection's settings, read the async way (no sync lookup or masking on the loop).

        :return: the checked settings of the connection.
        """
        if self._settings is None:
            try:
                conn = await self.aget_connection(self.tencent_ci_conn_id)
            except ImportError:
                # Airflow 3.1 outside a task or triggerer (a script, a test): its async lookup
                # needs the supervisor channel. Look up in a thread; the loop stays free.
                conn = await asyncio.to_thread(self.get_connection, self.tencent_ci_conn_id)
            self._settings = ConnectionSettings.parse(
                self.tencent_ci_conn_id, conn.login, conn.password, parse_extra(conn.extra)
            )
        return self._settings

    def _limiter(self, endpoint: Endpoint, credentials: Credentials) -> AdaptiveRateLimiter | None:
        """The shared limiter a CI request to ``endpoint`` goes through (settings are loaded by
        then); COS object calls have limits of their own and do not spend CI's."""
        if endpoint.service != "ci":
            return None
        max_qps = self.max_qps or (self._settings.max_qps if self._settings else None) or DEFAULT_MAX_QPS
        return limiter_for(credentials.secret_id, endpoint.region, max_qps)

    def close(self) -> None:
        """Close the blocking HTTP session (the hook opens a new one if used again)."""
        self._sync.close()

    async def aclose(self) -> None:
        """Close the async HTTP client."""
        await self._async.aclose()

    def _call(self, request: ApiRequest, bucket: str | None, region: str | None, service: str = "ci") -> ApiResult:
        settings = self.settings()
        return self._sync.call(request, settings.endpoint(bucket, region, service=service), settings.credentials)

    async def _acall(
        self, request: ApiRequest, bucket: str | None, region: str | None, service: str = "ci"
    ) -> ApiResult:
        settings = await self.asettings()
        return await self._async.call(request, settings.endpoint(bucket, region, service=service), settings.credentials)

    # -- submit -----------------------------------------------------------------------------

    def submit_pic_process_job(
        self,
        *,
        input_object: str,
        output_object: str,
        template_id: str | None = None,
        process_rule: str | None = None,
        is_pic_info: bool | str | None = None,
        bucket: str | None = None,
        region: str | None = None,
        output_bucket: str | None = None,
        output_region: str | None = None,
        user_data: str | None = None,
        job_level: int | str | None = None,
        callback: str | None = None,
        callback_format: str | None = None,
        callback_type: str | None = None,
        callback_mq_config: MqConfig | Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """Submit one PicProcess job (``POST /jobs``) and return its JobsDetail.

        Every field is checked before anything is sent. A failure after which the job may
        exist (timeout, reset after sending, 5xx, unreadable answer) is never answered by a
        blind re-send, which could bill a second job: the hook first looks for the job it
        may have created, and adopts it. Without ``user_data`` the job carries a unique
        submit token there, so that lookup is exact; with ``user_data``, jobs identical in
        every field created since this call began count as ours, and more than one raises
        :class:`CloudInfiniteSubmitUncertainError` rather than guessing.

        :param input_object: key of the source image, without a leading ``/``.
        :param output_object: key the result is written to.
        :param template_id: id of a saved PicProcess template; give this or ``process_rule``.
        :param process_rule: an inline imageMogr2 rule; give this or ``template_id``.
        :param is_pic_info: also return image info in ``PicProcessResult``.
        :param bucket: the input's bucket as ``name-APPID``; default the connection's.
        :param region: the bucket's region; default the connection's.
        :param output_bucket: the output's bucket; default ``bucket``.
        :param output_region: the output bucket's region; default ``region``.
        :param user_data: up to 1024 printable ASCII characters stored with the job.
        :param job_level: queue priority: 0, 1 or 2, higher first.
        :param callback: an http(s) URL CI calls when the job ends, or ``"no"``.
        :param callback_format: ``XML`` or ``JSON``.
        :param callback_type: ``Url`` or ``TDMQ``.
        :param callback_mq_config: with ``TDMQ``: ``MqMode``, ``MqRegion`` and ``MqName``.
        :return: the submitted job's JobsDetail (``JobId``, ``State``...) plus ``RequestId``.
        :raises CloudInfiniteValidationError: a field breaks its rule; nothing was sent.
        :raises CloudInfiniteServiceError: CI refused the job (Code, Message, request id).
        """
        spec = {name: value for name, value in locals().items() if name != "self"}
        settings = self.settings()
        endpoint, job, request = self._submission(settings, spec)
        started = time.time()

        def recover(exc: Exception) -> dict[str, Any] | None:
            if not may_have_been_processed(exc):
                return None
            return _adopt(job, self.list_jobs(**_lookup_filter(job, endpoint, started)))

        detail = retry_sync(
            lambda: _submitted(self._sync.send_once(request, endpoint, settings.credentials), request),
            self.retry,
            request.operation,
            recover,
        )
        log.info("Submitted CI job %s (%s)", detail["JobId"], job.input_object)
        return detail

    async def asubmit_pic_process_job(self, **spec: Any) -> dict[str, Any]:
        """:meth:`submit_pic_process_job` without blocking: same arguments, checks and safety.

        :return: the submitted job's JobsDetail plus ``RequestId``.
        """
        settings = await self.asettings()
        endpoint, job, request = self._submission(settings, spec)
        started = time.time()

        async def attempt() -> dict[str, Any]:
            return _submitted(await self._async.send_once(request, endpoint, settings.credentials), request)

        async def recover(exc: Exception) -> dict[str, Any] | None:
            if not may_have_been_processed(exc):
                return None
            return _adopt(job, await self.alist_jobs(**_lookup_filter(job, endpoint, started)))

        detail = await retry_async(attempt, self.retry, request.operation, recover)
        log.debug("Submitted CI job %s (%s)", detail["JobId"], job.input_object)
        return detail

    def validate_pic_process_job(self, **spec: Any) -> PicProcessJob:
        """The job :meth:`submit_pic_process_job` would send for ``spec``; raises on bad input.

        Reads the connection (for default bucket and region) but sends nothing: operators
        use it to check every item of a batch before the first submit.

        :return: the checked job, with defaults from the connection filled in.
        :raises CloudInfiniteValidationError: a field breaks its rule.
        """
        return self._submission(self.settings(), spec)[1]

    def _submission(
        self, settings: ConnectionSettings, spec: dict[str, Any]
    ) -> tuple[Endpoint, PicProcessJob, ApiRequest]:
        """Check every field of a submit and build its request; nothing is sent."""
        spec = dict(spec)
        endpoint = settings.endpoint(spec.pop("bucket", None), spec.pop("region", None))
        mq = spec.pop("callback_mq_config", None)
        job = PicProcessJob(
            output_bucket=spec.pop("output_bucket", None) or endpoint.bucket or "",
            output_region=spec.pop("output_region", None) or endpoint.region,
            callback_mq_config=None if mq is None else MqConfig.from_value(mq),
            **spec,
        ).validated()
        if job.user_data is None:
            job = replace(job, user_data=f"{SUBMIT_TOKEN_PREFIX}{uuid.uuid4().hex}")
        return endpoint, job, ApiRequest("POST", self.jobs_path, "submit PicProcess job", body=job.to_xml())

    # -- read and cancel ----------------------------------------------------------------------

    def _get_request(self, job_ids: Iterable[str]) -> tuple[list[str], ApiRequest]:
        ids = _job_ids(job_ids)
        return ids, ApiRequest("GET", f"{self.jobs_path}/{','.join(ids)}", "get jobs")

    def get_jobs(
        self, job_ids: Iterable[str], *, bucket: str | None = None, region: str | None = None
    ) -> dict[str, dict[str, Any]]:
        """JobsDetail of each id, in one request (``GET /jobs/<id1>,<id2>``).

        Ids the service does not know raise :class:`CloudInfiniteJobNotFoundError`, which
        lists them and still carries the details that were found.

        :param job_ids: the jobs to read (duplicates are asked for once).
        :param bucket: their bucket; default the connection's.
        :param region: the bucket's region; default the connection's.
        :return: ``job id -> JobsDetail`` (plus ``RequestId``), in the order asked.
        """
        ids, request = self._get_request(job_ids)
        return _found_or_raise(ids, self._call(request, bucket, region))

    async def aget_jobs(
        self, job_ids: Iterable[str], *, bucket: str | None = None, region: str | None = None
    ) -> dict[str, dict[str, Any]]:
        """:meth:`get_jobs` without blocking.

        :param job_ids: the jobs to read.
        :param bucket: their bucket; default the connection's.
        :param region: the bucket's region; default the connection's.
        :return: ``job id -> JobsDetail``, in the order asked.
        """
        ids, request = self._get_request(job_ids)
        return _found_or_raise(ids, await self._acall(request, bucket, region))

    def get_job(self, job_id: str, *, bucket: str | None = None, region: str | None = None) -> dict[str, Any]:
        """One job's JobsDetail (``GET /jobs/<id>``).

        :param job_id: the job to read.
        :param bucket: its bucket; default the connection's.
        :param region: the bucket's region; default the connection's.
        :return: the JobsDetail, keyed by the API's element names, plus ``RequestId``.
        :raises CloudInfiniteJobNotFoundError: CI does not know the job.
        """
        return self.get_jobs([job_id], bucket=bucket, region=region)[job_id]

    async def aget_job(self, job_id: str, *, bucket: str | None = None, region: str | None = None) -> dict[str, Any]:
        """:meth:`get_job` without blocking.

        :param job_id: the job to read.
        :param bucket: its bucket; default the connection's.
        :param region: the bucket's region; default the connection's.
        :return: the JobsDetail plus ``RequestId``.
        """
        return (await self.aget_jobs([job_id], bucket=bucket, region=region))[job_id]

    def _cancel_request(self, job_id: str) -> ApiRequest:
        (job_id,) = _job_ids([job_id])
        return ApiRequest("PUT", f"{self.jobs_path}/{job_id}", "cancel job", params={"cancel": None})

    def cancel_job(self, job_id: str, *, bucket: str | None = None, region: str | None = None) -> None:
        """Cancel a job that has not started (CI cannot cancel running or finished jobs).

        Cancel is safe to repeat: if a retried cancel is refused because the job is already
        ``Cancel`` (an earlier attempt went through), that counts as success.

        :param job_id: the job to cancel.
        :param bucket: its bucket; default the connection's.
        :param region: the bucket's region; default the connection's.
        :raises CloudInfiniteServiceError: CI refused (e.g. the job is already running).
        """
        try:
            self._call(self._cancel_request(job_id), bucket, region)
        except CloudInfiniteServiceError as exc:
            if exc.status >= 500 or self.get_job(job_id, bucket=bucket, region=region).get("State") != JobState.CANCEL:
                raise
        log.info("Cancelled CI job %s", job_id)

    async def acancel_job(self, job_id: str, *, bucket: str | None = None, region: str | None = None) -> None:
        """:meth:`cancel_job` without blocking.

        :param job_id: the job to cancel.
        :param bucket: its bucket; default the connection's.
        :param region: the bucket's region; default the connection's.
        """
        try:
            await self._acall(self._cancel_request(job_id), bucket, region)
        except CloudInfiniteServiceError as exc:
            if (
                exc.status >= 500
                or (await self.aget_job(job_id, bucket=bucket, region=region)).get("State") != JobState.CANCEL
            ):
                raise
        log.info("Cancelled CI job %s", job_id)

    def _list_request(
        self,
        *,
        states: Iterable[str] | str | None = None,
        input_object: str | None = None,
        queue_id: str | None = None,
        order_by_time: str = "Desc",
        start_creation_time: datetime | str | None = None,
        end_creation_time: datetime | str | None = None,
        page_size: int = LIST_PAGE_MAX,
        bucket: str | None = None,
        region: str | None = None,
    ) -> tuple[str | None, str | None, ApiRequest]:
        if order_by_time not in ("Desc", "Asc"):
            raise CloudInfiniteValidationError("order_by_time", f"must be Desc or Asc, got {order_by_time!r}")
        if isinstance(page_size, bool) or not isinstance(page_size, int) or not 1 <= page_size <= LIST_PAGE_MAX:
            raise CloudInfiniteValidationError("page_size", f"must be an int from 1 to {LIST_PAGE_MAX}")
        state_list = [states] if isinstance(states, str) else list(states or ["All"])
        for state in state_list:
            if state not in LIST_STATES:
                raise CloudInfiniteValidationError("states", f"{state!r} is not one of {', '.join(LIST_STATES)}")
        params: dict[str, str | None] = {
            "tag": TAG,
            "states": ",".join(state_list),
            "size": str(page_size),
            "orderByTime": order_by_time,
        }
        optional = {
            "inputObject": input_object,
            "queueId": queue_id,
            "startCreationTime": _ci_time(start_creation_time, "start_creation_time"),
            "endCreationTime": _ci_time(end_creation_time, "end_creation_time"),
        }
        params.update({k: v for k, v in optional.items() if v is not None})
        return bucket, region, ApiRequest("GET", self.jobs_path, "list jobs", params=params)

    def list_jobs(self, *, max_jobs: int | None = None, **filters: Any) -> list[dict[str, Any]]:
        """PicProcess jobs matching the filters, following ``NextToken`` until done or ``max_jobs``.

        Filters: ``states`` (names, default All), ``input_object``, ``queue_id``,
        ``order_by_time`` (Desc/Asc), ``start_creation_time``/``end_creation_time`` (aware
        datetimes or CI time strings), ``page_size`` (1-100), ``bucket``, ``region``.

        :param max_jobs: stop after this many jobs; ``None``: every page.
        :return: the JobsDetail of each job found, newest first unless ``order_by_time="Asc"``.
        """
        bucket, region, request = self._list_request(**filters)
        jobs: list[dict[str, Any]] = []
        while True:
            page = _page(self._call(request, bucket, region))
            jobs.extend(page.jobs)
            if not page.next_token or (max_jobs is not None and len(jobs) >= max_jobs):
                return jobs[:max_jobs]
            request = replace(request, params={**request.params, "nextToken": page.next_token})

    async def alist_jobs(self, *, max_jobs: int | None = None, **filters: Any) -> list[dict[str, Any]]:
        """:meth:`list_jobs` without blocking; the same filters.

        :param max_jobs: stop after this many jobs; ``None``: every page.
        :return: the JobsDetail of each job found.
        """
        bucket, region, request = self._list_request(**filters)
        jobs: list[dict[str, Any]] = []
        while True:
            page = _page(await self._acall(request, bucket, region))
            jobs.extend(page.jobs)
            if not page.next_token or (max_jobs is not None and len(jobs) >= max_jobs):
                return jobs[:max_jobs]
            request = replace(request, params={**request.params, "nextToken": page.next_token})

    # -- templates ---------------------------------------------------------------------------------

    def get_templates(
        self, *, name: str | None = None, bucket: str | None = None, region: str | None = None
    ) -> list[dict[str, Any]]:
        """The bucket's custom PicProcess templates, optionally those whose name starts with ``name``.

        :param name: only templates whose name starts with this.
        :param bucket: the bucket; default the connection's.
        :param region: the bucket's region; default the connection's.
        :return: each template (``TemplateId``, ``Name``, ``PicProcess``...), every page followed.
        """
        params: dict[str, str | None] = {"tag": TAG, "category": "Custom", "pageSize": "100", "pageNumber": "1"}
        if name:
            params["name"] = name
        templates: list[dict[str, Any]] = []
        while True:
            result = self._call(ApiRequest("GET", "/template", "list templates", params=params), bucket, region)
            page = result.data.get("TemplateList", [])
            templates.extend(page)
            if not page or len(templates) >= int(result.data.get("TotalCount") or 0):
                return templates
            params["pageNumber"] = str(int(params["pageNumber"] or 1) + 1)

    def create_template(
        self,
        *,
        name: str,
        process_rule: str,
        is_pic_info: bool | None = None,
        bucket: str | None = None,
        region: str | None = None,
    ) -> dict[str, Any]:
        """Create a PicProcess template; returns it (``TemplateId``, ``Name``, ``PicProcess``...).

        Like a submit, a create that may have gone through is not re-sent before looking for
        a template of that exact name.

        :param name: the template's name.
        :param process_rule: the imageMogr2 rule it applies.
        :param is_pic_info: whether jobs using it return image info.
        :param bucket: the bucket; default the connection's.
        :param region: the bucket's region; default the connection's.
        :return: the created template.
        """
        settings = self.settings()
        endpoint = settings.endpoint(bucket, region)
        request = ApiRequest("POST", "/template", "create template", body=template_xml(name, process_rule, is_pic_info))

        def attempt() -> dict[str, Any]:
            return dict(self._sync.send_once(request, endpoint, settings.credentials).data["Template"])

        def recover(exc: Exception) -> dict[str, Any] | None:
            if not may_have_been_processed(exc):
                return None
            found = [t for t in self.get_templates(name=name, bucket=bucket, region=region) if t.get("Name") == name]
            return found[0] if found else None

        return retry_sync(attempt, self.retry, request.operation, recover)

    # -- COS objects (the bucket's own host; same signing, retries and rate limit) -----------------

    def list_objects(
        self, prefix: str, *, bucket: str | None = None, region: str | None = None, max_objects: int | None = None
    ) -> list[dict[str, Any]]:
        """Objects whose key starts with ``prefix``, in key order, following every page.

        Signed ``GET /?prefix=`` requests to ``<bucket>.cos.<region>.myqcloud.com``; nothing
        outside ``prefix`` is requested or returned, and folder placeholders (``dir/``) are left out.

        :param prefix: key prefix to list under, e.g. ``"incoming/2026-12-01/"``; ``""`` lists the
            whole bucket.
        :param bucket: bucket in ``name-APPID`` form; default: the connection's ``extra.bucket``.
        :param region: COS region, e.g. ``ap-chongqing``; default: the connection's ``extra.region``.
        :param max_objects: stop after this many objects (one page is up to 1,000); default: all.
        :return: one dict per object: ``Key``, ``Size``, ``ETag``, ``LastModified`` (ISO 8601 UTC).
        """
        prefix = cos_objects.prefix("prefix", prefix)
        objects: list[dict[str, Any]] = []
        marker: str | None = ""
        while marker is not None and (max_objects is None or len(objects) < max_objects):
            result = self._call(cos_objects.list_request(prefix, marker), bucket, region, "cos")
            page = cos_objects.objects_page(result, prefix)
            objects.extend(page.objects)
            marker = page.next_marker
        return objects[:max_objects]

    async def alist_objects(
        self, prefix: str, *, bucket: str | None = None, region: str | None = None, max_objects: int | None = None
    ) -> list[dict[str, Any]]:
        """:meth:`list_objects` without blocking (for triggers): same requests and result.

        :param prefix: key prefix to list under; ``""`` lists the whole bucket.
        :param bucket: bucket in ``name-APPID`` form; default: the connection's ``extra.bucket``.
        :param region: COS region; default: the connection's ``extra.region``.
        :param max_objects: stop after this many objects; default: all.
        :return: one dict per object: ``Key``, ``Size``, ``ETag``, ``LastModified`` (ISO 8601 UTC).
        """
        prefix = cos_objects.prefix("prefix", prefix)
        objects: list[dict[str, Any]] = []
        marker: str | None = ""
        while marker is not None and (max_objects is None or len(objects) < max_objects):
            result = await self._acall(cos_objects.list_request(prefix, marker), bucket, region, "cos")
            page = cos_objects.objects_page(result, prefix)
            objects.extend(page.objects)
            marker = page.next_marker
        return objects[:max_objects]

    def head_object(self, key: str, *, bucket: str | None = None, region: str | None = None) -> dict[str, Any] | None:
        """The object ``key`` (``HEAD /<key>`` on the COS host), or ``None`` if it does not exist.

        :param key: the exact object key, e.g. ``"incoming/cat.jpg"``.
        :param bucket: bucket in ``name-APPID`` form; default: the connection's ``extra.bucket``.
        :param region: COS region; default: the connection's ``extra.region``.
        :return: ``Key``, ``Size``, ``ETag``, ``LastModified`` (ISO 8601 UTC), or ``None`` on 404.
        """
        key = cos_objects.object_key("key", key)
        try:
            return cos_objects.head_object(self._call(cos_objects.head_request(key), bucket, region, "cos"), key)
        except CloudInfiniteServiceError as exc:
            if exc.status == 404:
                return None
            raise

    async def ahead_object(
        self, key: str, *, bucket: str | None = None, region: str | None = None
    ) -> dict[str, Any] | None:
        """:meth:`head_object` without blocking (for triggers).

        :param key: the exact object key.
        :param bucket: bucket in ``name-APPID`` form; default: the connection's ``extra.bucket``.
        :param region: COS region; default: the connection's ``extra.region``.
        :return: ``Key``, ``Size``, ``ETag``, ``LastModified`` (ISO 8601 UTC), or ``None`` on 404.
        """
        key = cos_objects.object_key("key", key)
        try:
            result = await self._acall(cos_objects.head_request(key), bucket, region, "cos")
        except CloudInfiniteServiceError as exc:
            if exc.status == 404:
                return None
            raise
        return cos_objects.head_object(result, key)

    def update_template(
        self,
        template_id: str,
        *,
        name: str,
        process_rule: str,
        is_pic_info: bool | None = None,
        bucket: str | None = None,
        region: str | None = None,
    ) -> dict[str, Any]:
        """Rewrite a PicProcess template (``PUT /template/<id>``, safe to repeat); returns it.

        :param template_id: the template to rewrite.
        :param name: its name (at most 64 letters, digits, ``_``, ``-``, ``*``).
        :param process_rule: its imageMogr2 rule.
        :param is_pic_info: whether jobs return image info; omitted = the service's default (false).
        :param bucket: bucket in ``name-APPID`` form; default the connection's.
        :param region: region; default the connection's.
        :return: the template as the service now holds it (``TemplateId``, ``Name``, ``PicProcess``...).
        """
        body = template_xml(name, process_rule, is_pic_info)  # checked before the id, as the fields come first
        request = ApiRequest("PUT", f"/template/{check.template_id(template_id)}", "update template", body=body)
        return dict(self._call(request, bucket, region).data["Template"])

    def delete_template(self, template_id: str, *, bucket: str | None = None, region: str | None = None) -> None:
        """Delete a PicProcess template (``DELETE /template/<id>``).

        A retried delete that finds the template gone (an earlier attempt went through) is a
        success; a template that never existed raises :class:`CloudInfiniteServiceError` (404).

        :param template_id: the template to delete.
        :param bucket: bucket in ``name-APPID`` form; default the connection's.
        :param region: region; default the connection's.
        """
        request = ApiRequest("DELETE", f"/template/{check.template_id(template_id)}", "delete template")
        settings = self.settings()
        endpoint = settings.endpoint(bucket, region)
        attempts = 0

        def attempt() -> ApiResult:
            nonlocal attempts
            attempts += 1
            try:
                return self._sync.send_once(request, endpoint, settings.credentials)
            except CloudInfiniteServiceError as exc:
                if exc.status == 404 and attempts > 1:
                    return ApiResult({}, exc.request_id)
                raise

        retry_sync(attempt, self.retry, request.operation)
        log.info("Deleted CI template %s", template_id)

    # -- checks and object access -------------------------------------------------------------

    def test_connection(self) -> tuple[bool, str]:
        """Check credentials, then the service, then the job API; ``(False, why)``, never raises.

        Two signed reads: ``GET /picbucket`` on the region's service host tells bad credentials
        apart from a bucket whose asynchronous image processing is not enabled, and a
        one-job ``GET /jobs`` proves the job API answers for this bucket.

        :return: ``(True, what answered)`` or ``(False, why not)``, as Airflow's "Test" button shows.
        """
        try:
            settings = self.settings()
            endpoint = settings.endpoint(None, None)
            service = replace(endpoint, bucket=None)
            params: dict[str, str | None] = {"bucketNames": endpoint.bucket, "regions": endpoint.region}
            enabled = self._sync.call(
                ApiRequest("GET", "/picbucket", "check image processing", params=params), service, settings.credentials
            )
            names = {item.get("BucketId") or item.get("Name") for item in enabled.data.get("PicBucketList", [])}
            if endpoint.bucket not in names:
                return False, (
                    f"Credentials work, but asynchronous image processing is not enabled for bucket {endpoint.bucket} "
                    f"in {endpoint.region}: enable it in the CI console (or POST /picbucket) first"
                )
            request = ApiRequest("GET", self.jobs_path, "test connection", params={"tag": TAG, "size": "1"})
            result = self._sync.call(request, endpoint, settings.credentials)
        except Exception as exc:
            return False, str(exc)
        return True, (
            f"Connected: bucket {endpoint.bucket} in {endpoint.region} answered (request id {result.request_id})"
        )

    def get_cos_client(self, region: str | None = None, **config: Any) -> CosS3Client:
        """A cos-python-sdk-v5 ``CosS3Client`` from this connection, for object work.

        Credentials, STS token, region and ``endpoint_url`` carry over; the SDK's DEBUG logs
        are redacted (see :mod:`airflow_provider_ci.cos_sdk`). ``config`` goes to ``CosConfig``.

        :param region: the COS region; default the connection's.
        :return: a client for COS object calls (upload, download, list).
        """
        from airflow_provider_ci.cos_sdk import cos_client

        return cos_client(self.settings(), region, **config)

    def get_ci_client(self, bucket: str | None = None, region: str | None = None, **config: Any) -> CosS3Client:
        """A cos-python-sdk-v5 ``CosS3Client`` for the SDK's own ``ci_*`` calls on the bucket's CI host.

        :meth:`get_cos_client` names the COS host, which is right for objects; through
        ``endpoint_url`` its ``ci_*`` calls would reach the COS host too. This client names
        ``<bucket>.ci.<region>.myqcloud.com`` in every request (logs redacted alike).

        :param bucket: bucket in ``name-APPID`` form; default the connection's ``bucket``.
        :param region: region; default the connection's ``region``.
        :param config: more ``CosConfig`` arguments.
        :return: the client.
        """
        from airflow_provider_ci.cos_sdk import ci_client

        return ci_client(self.settings(), bucket, region, **config)


def _submitted(result: ApiResult, request: ApiRequest) -> dict[str, Any]:
    """The one JobsDetail a submit answers with."""
    details = _with_request_id(jobs_page(result.data).jobs, result)
    if len(details) != 1:
        raise CloudInfiniteServiceError(
            status=200,
            code="UnexpectedResponse",
            message=f"submit answered with {len(details)} JobsDetail elements, expected 1",
            request_id=result.request_id,
            operation=request.operation,
        )
    return details[0]


def _page(result: ApiResult) -> JobsPage:
    page = jobs_page(result.data)
    return replace(page, jobs=_with_request_id(page.jobs, result))


def _lookup_filter(job: PicProcessJob, endpoint: Endpoint, since: float) -> dict[str, Any]:
    """List filters that find the job a failed submit may have created (clock skew tolerated)."""
    return {
        "input_object": job.input_object,
        "start_creation_time": datetime.fromtimestamp(since - 60, tz=CI_TZ),
        "bucket": endpoint.bucket,
        "region": endpoint.region,
    }


def _adopt(job: PicProcessJob, listed: Iterable[dict[str, Any]]) -> dict[str, Any] | None:
    """The job an earlier attempt of this submit created, if any (see submit_pic_process_job)."""
    candidates = [detail for detail in listed if _same_job(detail, job)]
    if len(candidates) > 1:
        raise CloudInfiniteSubmitUncertainError(
            f"A submit for {job.input_object!r} failed after it may have been sent, and {len(candidates)} "
            "identical jobs exist; not re-sending. Give each submit distinct user_data to make this exact.",
            [detail["JobId"] for detail in candidates],
        )
    if candidates:
        log.warning("The failed submit had created job %s; using it, not re-sending", candidates[0]["JobId"])
    return candidates[0] if candidates else None


def _same_job(detail: Mapping[str, Any], job: PicProcessJob) -> bool:
    """Whether a listed JobsDetail is exactly ``job`` as submitted."""
    operation = detail.get("Operation") or {}
    output = operation.get("Output") or {}
    rule = (operation.get("PicProcess") or {}).get("ProcessRule")
    return (
        (detail.get("Input") or {}).get("Object") == job.input_object
        and output.get("Object") == job.output_object
        and output.get("Bucket") == job.output_bucket
        and output.get("Region") == job.output_region
        and operation.get("TemplateId") == job.template_id
        and rule == job.process_rule
        and operation.get("UserData") == job.user_data
    )

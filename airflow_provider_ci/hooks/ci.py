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

    # -- connection -------------------------------------------------------------------------

    def settings(self) -> ConnectionSettings:
        """The connection's settings, read once (blocking; not for triggers, see :meth:`asettings`)."""
        if self._settings is None:
            conn = self.get_connection(self.tencent_ci_conn_id)
            # extra_dejson (not the raw JSON) so Airflow masks the token in task logs.
            self._settings = ConnectionSettings.parse(
                self.tencent_ci_conn_id, conn.login, conn.password, conn.extra_dejson
            )
        return self._settings

    async def asettings(self) -> ConnectionSettings:
        """The connection's settings, read the async way (no sync lookup or masking on the loop)."""
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

    def _limiter(self, endpoint: Endpoint, credentials: Credentials) -> AdaptiveRateLimiter:
        """The shared limiter a request to ``endpoint`` goes through (settings are loaded by then)."""
        max_qps = self.max_qps or (self._settings.max_qps if self._settings else None) or DEFAULT_MAX_QPS
        return limiter_for(credentials.secret_id, endpoint.region, max_qps)

    def close(self) -> None:
        self._sync.close()

    async def aclose(self) -> None:
        await self._async.aclose()

    def _call(self, request: ApiRequest, bucket: str | None, region: str | None) -> ApiResult:
        settings = self.settings()
        return self._sync.call(request, settings.endpoint(bucket, region), settings.credentials)

    async def _acall(self, request: ApiRequest, bucket: str | None, region: str | None) -> ApiResult:
        settings = await self.asettings()
        return await self._async.call(request, settings.endpoint(bucket, region), settings.credentials)

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
        """:meth:`submit_pic_process_job` without blocking: same arguments, checks and safety."""
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
        """
        ids, request = self._get_request(job_ids)
        return _found_or_raise(ids, self._call(request, bucket, region))

    async def aget_jobs(
        self, job_ids: Iterable[str], *, bucket: str | None = None, region: str | None = None
    ) -> dict[str, dict[str, Any]]:
        ids, request = self._get_request(job_ids)
        return _found_or_raise(ids, await self._acall(request, bucket, region))

    def get_job(self, job_id: str, *, bucket: str | None = None, region: str | None = None) -> dict[str, Any]:
        return self.get_jobs([job_id], bucket=bucket, region=region)[job_id]

    async def aget_job(self, job_id: str, *, bucket: str | None = None, region: str | None = None) -> dict[str, Any]:
        return (await self.aget_jobs([job_id], bucket=bucket, region=region))[job_id]

    def _cancel_request(self, job_id: str) -> ApiRequest:
        (job_id,) = _job_ids([job_id])
        return ApiRequest("PUT", f"{self.jobs_path}/{job_id}", "cancel job", params={"cancel": None})

    def cancel_job(self, job_id: str, *, bucket: str | None = None, region: str | None = None) -> None:
        """Cancel a job that has not started (CI cannot cancel running or finished jobs).

        Cancel is safe to repeat: if a retried cancel is refused because the job is already
        ``Cancel`` (an earlier attempt went through), that counts as success.
        """
        try:
            self._call(self._cancel_request(job_id), bucket, region)
        except CloudInfiniteServiceError as exc:
            if exc.status >= 500 or self.get_job(job_id, bucket=bucket, region=region).get("State") != "Cancel":
                raise
        log.info("Cancelled CI job %s", job_id)

    async def acancel_job(self, job_id: str, *, bucket: str | None = None, region: str | None = None) -> None:
        try:
            await self._acall(self._cancel_request(job_id), bucket, region)
        except CloudInfiniteServiceError as exc:
            if (
                exc.status >= 500
                or (await self.aget_job(job_id, bucket=bucket, region=region)).get("State") != "Cancel"
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
        """The bucket's custom PicProcess templates, optionally those whose name starts with ``name``."""
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

    # -- checks and object access -------------------------------------------------------------

    def test_connection(self) -> tuple[bool, str]:
        """Check credentials, then the service, then the job API; ``(False, why)``, never raises.

        Two signed reads: ``GET /picbucket`` on the region's service host tells bad credentials
        apart from a bucket whose asynchronous image processing is not enabled, and a
        one-job ``GET /jobs`` proves the job API answers for this bucket.
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
        """
        from airflow_provider_ci.cos_sdk import cos_client

        return cos_client(self.settings(), region, **config)


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

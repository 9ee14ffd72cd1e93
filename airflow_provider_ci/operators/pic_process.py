"""CloudInfinitePicProcessOperator: submit a PicProcess job, then wait for it (deferrable or not).

Order of work, and why: submit, then record the job id (XCom ``job_id``) and the console link
at once, so a crash or kill never loses track of a billed job; then one status check, so a
job that is already over is handled without a deferral; then wait.

Retries: a retry of this task does not bill a second job while its earlier job is still
waiting or has succeeded. Each submit carries this task instance's identity (dag, task, run,
map index, try) in ``UserData`` (:mod:`airflow_provider_ci.identity`); a retry lists the
input's jobs and reattaches to the newest one of its own that has not failed. Jobs of other
task instances with the same input are never adopted. Passing your own ``user_data`` turns
this off (the field then holds yours).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.providers.common.compat.sdk import BaseOperator, conf

from airflow_provider_ci import identity
from airflow_provider_ci import validation as check
from airflow_provider_ci.assets.events import Produced, emits_assets, produced_by_job
from airflow_provider_ci.exceptions import CloudInfiniteError, CloudInfiniteValidationError
from airflow_provider_ci.hooks.ci import CloudInfiniteHook
from airflow_provider_ci.links.job import CloudInfiniteJobLink
from airflow_provider_ci.model import SUBMIT_FIELDS
from airflow_provider_ci.transport import RetryPolicy
from airflow_provider_ci.waiting import (
    DEFAULT_MAX_CONSECUTIVE_FAILURES,
    FAILURE,
    WAITING,
    JobWatch,
    classify,
    deferral_timeout,
    describe_result,
    event_error,
    job_error,
    read_event,
    timeout_fields,
    wait_limit,
)

if TYPE_CHECKING:
    from airflow.sdk import Context

#: Bounds a best-effort cancel from on_kill or after a timeout.
CANCEL_TIMEOUT = (3.0, 5.0)
CANCEL_RETRY = RetryPolicy(max_attempts=2, base_delay=0.5, max_delay=1.0, max_elapsed=10.0)


class CloudInfinitePicProcessOperator(BaseOperator):
    """Process ``input_object`` into ``output_object`` with a template or an inline imageMogr2 rule.

    Returns the final JobsDetail (the submitted one with ``wait_for_completion=False``).
    A job that ends Failed or Cancel raises :class:`CloudInfiniteJobError` with the job id,
    Code, Message and request id. ``timeout`` bounds the wait: when it passes, the job is
    cancelled (if it has not started) and the task fails. ``cancel_on_kill`` cancels the job
    when the task is killed on a worker or, on Airflow 3.3+, when a deferred task is marked
    failed or cleared.

    Asset events: name an ``AssetAlias`` in ``outlets`` and each successful run adds the output
    as ``cos://<bucket>/<key>`` to it; or declare ``Asset("cos://<bucket>/<key>")`` in
    ``outlets`` when the key is static (its event then carries the job id, input and output
    size in its extra). See docs/assets.md.

    :param input_object: key of the source image in ``bucket``, without a leading ``/`` (templated).
    :param output_object: key the result is written to in ``output_bucket`` (templated).
    :param template_id: id of a saved PicProcess template; give this or ``process_rule`` (templated).
    :param process_rule: an inline imageMogr2 rule, e.g. ``imageMogr2/thumbnail/400x/format/webp``;
        give this or ``template_id`` (templated).
    :param is_pic_info: also return the input's and output's image info in ``PicProcessResult``
        (templated; ``True``/``False`` or ``"true"``/``"false"``).
    :param bucket: bucket of the input as ``name-APPID``; default the connection's ``bucket``
        extra (templated).
    :param region: region of ``bucket``, e.g. ``ap-chongqing``; default the connection's
        ``region`` extra (templated).
    :param output_bucket: bucket of the output; default ``bucket`` (templated).
    :param output_region: region of ``output_bucket``; default ``region`` (templated).
    :param user_data: up to 1024 printable ASCII characters stored with the job. By default the
        task instance's identity goes there, so a retry reattaches to its own earlier job;
        giving your own turns that off (templated).
    :param job_level: queue priority: 0, 1 or 2, higher first (templated).
    :param callback: an http(s) URL CI calls when the job ends, or ``"no"`` to suppress the
        queue's callback for this job (templated).
    :param callback_format: ``XML`` or ``JSON`` body of the callback (templated).
    :param callback_type: ``Url`` (default) or ``TDMQ`` (templated).
    :param callback_mq_config: required with ``callback_type="TDMQ"``: ``MqMode`` (Queue or
        Topic), ``MqRegion`` (sh, bj, gz, cd, hk) and ``MqName`` (templated).
    :param wait_for_completion: wait until the job ends (default); ``False`` returns the
        submitted JobsDetail right away (the job id is in XCom ``job_id`` either way).
    :param deferrable: wait in the triggerer instead of on the worker; default
        ``[operators] default_deferrable``.
    :param poll_interval: seconds (or a ``timedelta``) between two looks at the job; mind CI's
        100 requests/s per account when many tasks wait at once.
    :param timeout: how long to wait (seconds or ``timedelta``, default 24 h, cut to
        ``execution_timeout`` when that is shorter); then the job is
        cancelled if it has not started and the task fails.
    :param cancel_on_kill: cancel the job when the task is killed (see above).
    :param max_consecutive_failures: failed polls in a row (after the hook's own retries) that
        end the wait, deferred or not; a permanent error (4xx) ends it at once (default 5).
    :param tencent_ci_conn_id: the ``tencent_ci`` connection to use (templated).
    """

    template_fields: Sequence[str] = ("tencent_ci_conn_id", *SUBMIT_FIELDS)
    template_fields_renderers: ClassVar[dict[str, str]] = {"callback_mq_config": "json"}
    operator_extra_links = (CloudInfiniteJobLink(),)
    ui_color = "#dff1ff"

    def __init__(
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
        callback_mq_config: Mapping[str, str] | None = None,
        wait_for_completion: bool = True,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float | timedelta = 10.0,
        timeout: float | timedelta = timedelta(hours=24),
        cancel_on_kill: bool = True,
        max_consecutive_failures: int = DEFAULT_MAX_CONSECUTIVE_FAILURES,
        tencent_ci_conn_id: str = CloudInfiniteHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if (template_id is None) == (process_rule is None):
            raise CloudInfiniteValidationError(
                "template_id/process_rule", "give exactly one: template_id or process_rule"
            )
        self.input_object = input_object
        self.output_object = output_object
        self.template_id = template_id
        self.process_rule = process_rule
        self.is_pic_info = is_pic_info
        self.bucket = bucket
        self.region = region
        self.output_bucket = output_bucket
        self.output_region = output_region
        self.user_data = user_data
        self.job_level = job_level
        self.callback = callback
        self.callback_format = callback_format
        self.callback_type = callback_type
        self.callback_mq_config = callback_mq_config
        self.wait_for_completion = wait_for_completion
        self.deferrable = deferrable
        self.poll_interval = check.seconds("poll_interval", poll_interval)
        self.timeout = check.seconds("timeout", timeout)
        self.cancel_on_kill = cancel_on_kill
        self.max_consecutive_failures = check.failure_budget(max_consecutive_failures)
        self.tencent_ci_conn_id = tencent_ci_conn_id
        self.job_id: str | None = None

    @property
    def hook(self) -> CloudInfiniteHook:
        return CloudInfiniteHook(self.tencent_ci_conn_id)

    # -- execute ---------------------------------------------------------------------------------

    @emits_assets
    def execute(self, context: Context) -> dict[str, Any]:
        hook = self.hook
        detail = self._reattach(context, hook) or self._submit(context, hook)
        self._record(context, detail)
        if not self.wait_for_completion:
            return detail
        if classify(detail) == WAITING:
            detail = hook.get_job(detail["JobId"], bucket=self.bucket, region=self.region)
        if classify(detail) != WAITING:
            return self._finish(detail)
        limit = wait_limit(self.timeout, self.execution_timeout)
        if self.deferrable:
            from airflow_provider_ci.triggers.job import CloudInfiniteJobTrigger  # only when deferring: cheap parse

            self.defer(
                trigger=CloudInfiniteJobTrigger(
                    job_id=detail["JobId"],
                    tencent_ci_conn_id=self.tencent_ci_conn_id,
                    bucket=self.bucket,
                    region=self.region,
                    poll_interval=self.poll_interval,
                    end_time=time.time() + limit,
                    cancel_on_kill=self.cancel_on_kill,
                    max_consecutive_failures=self.max_consecutive_failures,
                ),
                method_name="execute_complete",
                timeout=deferral_timeout(limit, self.poll_interval),
            )
        return self._wait(hook, detail, limit)

    def _submit(self, context: Context, hook: CloudInfiniteHook) -> dict[str, Any]:
        spec = {name: getattr(self, name) for name in SUBMIT_FIELDS}
        if self.user_data is None:
            spec["user_data"] = identity.user_data(context)
        return hook.submit_pic_process_job(**spec)

    def _reattach(self, context: Context, hook: CloudInfiniteHook) -> dict[str, Any] | None:
        """This task instance's own job from an earlier try, if one is still waiting or succeeded."""
        if self.user_data is not None or context["ti"].try_number <= 1:
            return None
        listed = hook.list_jobs(
            input_object=self.input_object,
            start_creation_time=identity.jobs_since(context),
            bucket=self.bucket,
            region=self.region,
            max_jobs=1000,
        )
        job = identity.own_jobs(context, listed).get(None)
        if job is not None:
            self.log.info("Reattaching to CI job %s (%s) from an earlier try of this task", job["JobId"], job["State"])
        return job

    def _record(self, context: Context, detail: dict[str, Any]) -> None:
        self.job_id = detail["JobId"]
        context["ti"].xcom_push(key="job_id", value=self.job_id)
        source = detail.get("Input") or {}
        bucket, region = source.get("BucketId") or self.bucket, source.get("Region") or self.region
        if bucket and region:
            CloudInfiniteJobLink.persist(context, job_id=detail["JobId"], bucket=bucket, region=region)

    def _wait(self, hook: CloudInfiniteHook, detail: dict[str, Any], limit: float) -> dict[str, Any]:
        """Poll on the worker, with the same state logic and failure policy as the trigger."""
        job_id = detail["JobId"]
        watch = JobWatch(job_id, self.log, self.max_consecutive_failures)
        watch.observe(detail)
        deadline = time.time() + limit
        while True:
            time.sleep(max(0.0, min(self.poll_interval, deadline - time.time())))
            try:
                if watch.observe(hook.get_job(job_id, bucket=self.bucket, region=self.region)) != WAITING:
                    return self._finish(watch.last or detail)
            except CloudInfiniteError as exc:
                if watch.failed_poll(exc):
                    raise
            if time.time() >= deadline:
                return self._resume({"status": "timeout", **timeout_fields(job_id, watch.last, limit)})

    # -- after the trigger -------------------------------------------------------------------------

    @emits_assets
    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """Resume after the trigger; a fresh operator instance, so all state comes from ``event``."""
        event = read_event(event)
        if not event.get("job_id"):
            raise CloudInfiniteError(f"Unexpected trigger event: {event!r}")
        self.job_id = event["job_id"]
        return self._resume(event)

    def _resume(self, event: dict[str, Any]) -> dict[str, Any]:
        """The end of a wait, deferred or not: the result, or the error after a cancel if due."""
        if event["status"] == "success":
            return self._finish(event["detail"])
        if event["status"] == "timeout" or event.get("state") is None:
            # Out of time, or the wait itself failed: the job may still be queued.
            self._cancel(event["job_id"])
        if event["status"] == "timeout":
            event = {**event, "message": f"{event.get('message')}; cancel requested (works only before it starts)"}
        raise event_error(event)

    def _finish(self, detail: dict[str, Any]) -> dict[str, Any]:
        if classify(detail) == FAILURE:
            raise job_error(detail)
        self.log.info(describe_result(detail))
        return detail

    # -- cancelling ----------------------------------------------------------------------------------

    def _cancel(self, job_id: str) -> None:
        """Best effort, bounded: CI can only cancel jobs that have not started."""
        hook = CloudInfiniteHook(self.tencent_ci_conn_id, timeout=CANCEL_TIMEOUT, retry=CANCEL_RETRY)
        try:
            hook.cancel_job(job_id, bucket=self.bucket, region=self.region)
            self.log.info("Cancelled CI job %s", job_id)
        except Exception as exc:
            self.log.warning("Could not cancel CI job %s: %s", job_id, exc)
        finally:
            hook.close()

    def on_kill(self) -> None:
        if self.cancel_on_kill and self.job_id:
            self._cancel(self.job_id)

    # -- assets and lineage ------------------------------------------------------------------------------

    def produced_objects(self, result: dict[str, Any]) -> list[Produced]:
        """The output object, once the job succeeded (not with ``wait_for_completion=False``)."""
        return produced_by_job(result, self.output_bucket or self.bucket)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """Input and output objects as ``cos://<bucket>`` datasets; None without OpenLineage installed."""
        try:
            from airflow.providers.common.compat.openlineage.facet import Dataset
            from airflow.providers.openlineage.extractors import OperatorLineage
        except ImportError:
            return None
        settings = self.hook.settings()
        source = settings.endpoint(self.bucket, self.region)
        target_bucket = self.output_bucket or source.bucket
        return OperatorLineage(
            inputs=[Dataset(namespace=f"cos://{source.bucket}", name=self.input_object)],
            outputs=[Dataset(namespace=f"cos://{target_bucket}", name=self.output_object)],
        )

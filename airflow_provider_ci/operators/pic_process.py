"""CloudInfinitePicProcessOperator: submit a PicProcess job, then wait for it (deferrable or not).

Order of work, and why: submit, then record the job id (XCom ``job_id``) and the console link
at once, so a crash or kill never loses track of a billed job; then one status check, so a
job that is already over is handled without a deferral; then wait.

Retries: a retry of this task does not bill a second job while its earlier job is still
waiting or has succeeded. Each submit carries this task instance's identity (dag, task, run,
map index, try) in ``UserData``; a retry lists the input's jobs and reattaches to the newest
one of its own that has not failed. Jobs of other task instances with the same input are
never adopted. Passing your own ``user_data`` turns this off (the field then holds yours).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.providers.common.compat.sdk import BaseOperator, conf

from airflow_provider_ci import validation as check
from airflow_provider_ci.assets.events import Produced, emits_assets, produced_by_job
from airflow_provider_ci.exceptions import CloudInfiniteError, CloudInfiniteJobError, CloudInfiniteValidationError
from airflow_provider_ci.hooks.ci import CloudInfiniteHook
from airflow_provider_ci.links.job import CloudInfiniteJobLink
from airflow_provider_ci.transport import RetryPolicy
from airflow_provider_ci.waiting import EVENT_STATUSES, FAILURE, WAITING, JobWatch, classify, describe_result, job_error

if TYPE_CHECKING:
    from airflow.sdk import Context

IDENTITY_PREFIX = "airflow-ti:"
#: Bounds a best-effort cancel from on_kill or after a timeout.
CANCEL_TIMEOUT = (3.0, 5.0)
CANCEL_RETRY = RetryPolicy(max_attempts=2, base_delay=0.5, max_delay=1.0, max_elapsed=10.0)


def task_identity(context: Context) -> str:
    """``airflow-ti:<hash>:`` naming this task instance (all tries), for UserData."""
    ti = context["ti"]
    raw = f"{ti.dag_id}\n{ti.task_id}\n{ti.run_id}\n{getattr(ti, 'map_index', -1)}"
    return f"{IDENTITY_PREFIX}{hashlib.sha256(raw.encode()).hexdigest()[:32]}:"


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
    """

    template_fields: Sequence[str] = (
        "tencent_ci_conn_id",
        "bucket",
        "region",
        "input_object",
        "output_object",
        "output_bucket",
        "output_region",
        "template_id",
        "process_rule",
        "is_pic_info",
        "user_data",
        "job_level",
        "callback",
        "callback_format",
        "callback_type",
        "callback_mq_config",
    )
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
        if self.deferrable:
            from airflow_provider_ci.triggers.job import CloudInfiniteJobTrigger  # only when deferring: cheap parse

            self.defer(
                trigger=CloudInfiniteJobTrigger(
                    job_id=detail["JobId"],
                    tencent_ci_conn_id=self.tencent_ci_conn_id,
                    bucket=self.bucket,
                    region=self.region,
                    poll_interval=self.poll_interval,
                    end_time=time.time() + self.timeout,
                    cancel_on_kill=self.cancel_on_kill,
                ),
                method_name="execute_complete",
                # Only a backstop: the trigger's own deadline fires first and lets us cancel.
                timeout=timedelta(seconds=self.timeout + self.poll_interval + 60),
            )
        return self._wait(hook, detail)

    def _submit(self, context: Context, hook: CloudInfiniteHook) -> dict[str, Any]:
        user_data = self.user_data
        if user_data is None:
            user_data = f"{task_identity(context)}try{context['ti'].try_number}"
        return hook.submit_pic_process_job(
            input_object=self.input_object,
            output_object=self.output_object,
            template_id=self.template_id,
            process_rule=self.process_rule,
            is_pic_info=self.is_pic_info,
            bucket=self.bucket,
            region=self.region,
            output_bucket=self.output_bucket,
            output_region=self.output_region,
            user_data=user_data,
            job_level=self.job_level,
            callback=self.callback,
            callback_format=self.callback_format,
            callback_type=self.callback_type,
            callback_mq_config=self.callback_mq_config,
        )

    def _reattach(self, context: Context, hook: CloudInfiniteHook) -> dict[str, Any] | None:
        """This task instance's own job from an earlier try, if one is still waiting or succeeded."""
        if self.user_data is not None or context["ti"].try_number <= 1:
            return None
        identity = task_identity(context)
        started = getattr(context.get("dag_run"), "start_date", None)
        jobs = hook.list_jobs(
            input_object=self.input_object,
            start_creation_time=None if started is None else started - timedelta(minutes=10),
            bucket=self.bucket,
            region=self.region,
            max_jobs=1000,
        )
        mine = [
            job
            for job in jobs
            if str((job.get("Operation") or {}).get("UserData") or "").startswith(identity) and classify(job) != FAILURE
        ]
        if not mine:
            return None
        job = max(mine, key=lambda j: str(j.get("CreationTime") or ""))
        self.log.info("Reattaching to CI job %s (%s) from an earlier try of this task", job["JobId"], job["State"])
        return job

    def _record(self, context: Context, detail: dict[str, Any]) -> None:
        self.job_id = detail["JobId"]
        context["ti"].xcom_push(key="job_id", value=self.job_id)
        source = detail.get("Input") or {}
        bucket, region = source.get("BucketId") or self.bucket, source.get("Region") or self.region
        if bucket and region:
            CloudInfiniteJobLink.persist(context, job_id=detail["JobId"], bucket=bucket, region=region)

    def _wait(self, hook: CloudInfiniteHook, detail: dict[str, Any]) -> dict[str, Any]:
        """Poll on the worker, with the same state logic as the trigger."""
        job_id = detail["JobId"]
        watch = JobWatch(job_id, self.log)
        watch.observe(detail)
        deadline = time.time() + self.timeout
        while True:
            time.sleep(max(0.0, min(self.poll_interval, deadline - time.time())))
            try:
                if watch.observe(hook.get_job(job_id, bucket=self.bucket, region=self.region)) != WAITING:
                    return self._finish(watch.last or detail)
            except CloudInfiniteError as exc:
                if watch.failed_poll(exc):
                    raise
            if time.time() >= deadline:
                self._cancel(job_id)
                raise self._timeout_error(job_id, watch.last)

    # -- after the trigger -------------------------------------------------------------------------

    @emits_assets
    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """Resume after the trigger; a fresh operator instance, so all state comes from ``event``."""
        if not isinstance(event, dict) or event.get("status") not in EVENT_STATUSES or not event.get("job_id"):
            raise CloudInfiniteError(f"Unexpected trigger event: {event!r}")
        self.job_id = event["job_id"]
        if event["status"] == "success":
            return self._finish(event["detail"])
        if event["status"] == "timeout":
            self._cancel(event["job_id"])
            raise self._timeout_error(event["job_id"], event.get("detail"))
        if event.get("state") is None:  # the wait itself failed: the job may still be queued
            self._cancel(event["job_id"])
        raise CloudInfiniteJobError(
            job_id=event["job_id"],
            state=event.get("state"),
            code=event.get("code"),
            message=event.get("message"),
            request_id=event.get("request_id"),
        )

    def _finish(self, detail: dict[str, Any]) -> dict[str, Any]:
        if classify(detail) == FAILURE:
            raise job_error(detail)
        self.log.info(describe_result(detail))
        return detail

    def _timeout_error(self, job_id: str, detail: dict[str, Any] | None) -> CloudInfiniteJobError:
        return CloudInfiniteJobError(
            job_id=job_id,
            state=(detail or {}).get("State"),
            code="WaitTimeout",
            message=f"not finished after {self.timeout:.0f} s; cancel requested (works only before it starts)",
            request_id=(detail or {}).get("RequestId"),
        )

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

"""CloudInfiniteBatchPicProcessOperator: many images, one rule or template, one task.

Mapping one task per image costs a task instance, a worker start and a trigger per image; at
thousands of images that is the bottleneck, not CI. This operator submits them all from one
task with bounded concurrency under a client-side rate limit (``max_qps``, default the
connection's ``max_qps`` extra or CI's 100/s), records every job id (XCom ``jobs``), waits for
all of them in one deferral (coalesced polling), and returns a summary: counts by state and
each failure with its input, job id, Code and Message. ``allow_failures`` (a count, or a ratio
below 1) decides whether failures fail the task.

Retries resubmit nothing that already has a job: every job carries this task instance's
identity and its item's index in ``UserData``, and a retry adopts its earlier jobs that are
still waiting or succeeded, submitting only items whose job failed or never started.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from datetime import timedelta
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.providers.common.compat.sdk import BaseOperator, conf

from airflow_provider_ci import identity
from airflow_provider_ci import validation as check
from airflow_provider_ci.assets.cos import cos_uri
from airflow_provider_ci.assets.events import Produced, emits_assets
from airflow_provider_ci.assets.lineage import batch_lineage
from airflow_provider_ci.batch import Progress, submit_all
from airflow_provider_ci.exceptions import CloudInfiniteError, CloudInfiniteValidationError
from airflow_provider_ci.hooks.ci import CloudInfiniteHook
from airflow_provider_ci.model import SUBMIT_FIELDS
from airflow_provider_ci.states import (
    ENDED_STATES,
    NOT_SUBMITTED,
    UNFINISHED,
    UNKNOWN,
    WAITING_STATES,
    JobState,
)
from airflow_provider_ci.waiting import (
    BATCH_EVENT_STATUSES,
    DEFAULT_MAX_CONSECUTIVE_FAILURES,
    WAIT_TIMEOUT,
    deferral_timeout,
    read_event,
    wait_limit,
)

if TYPE_CHECKING:
    from airflow.sdk import Context

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".heic", ".avif")
#: Job fields that differ per item (or that the batch sets itself); the rest apply to every item.
PER_ITEM_FIELDS = ("input_object", "output_object", "user_data")
#: Callbacks are per job in CI; a batch of thousands is watched by its one wait instead.
UNSUPPORTED_FIELDS = ("callback", "callback_format", "callback_type", "callback_mq_config")
SHARED_FIELDS = tuple(name for name in SUBMIT_FIELDS if name not in PER_ITEM_FIELDS + UNSUPPORTED_FIELDS)


class CloudInfiniteBatchError(CloudInfiniteError):
    """More jobs of a batch failed than ``allow_failures`` allows; ``summary`` has them all."""

    def __init__(self, message: str, summary: dict[str, Any]) -> None:
        super().__init__(message)
        self.summary = summary


def output_key(template: str, key: str) -> str:
    """``template`` with {key}, {dir}, {name}, {stem} and {ext} of the input ``key`` filled in."""
    path = PurePosixPath(key)
    parent = "" if str(path.parent) == "." else str(path.parent)
    return template.format(key=key, dir=parent, name=path.name, stem=path.stem, ext=path.suffix.lstrip("."))


class CloudInfiniteBatchPicProcessOperator(BaseOperator):
    """Process many images with one rule or template; see the module docstring.

    Give ``items`` (dicts with ``input_object`` and ``output_object``), or ``input_prefix``
    plus ``output_key_template`` (e.g. ``"thumbs/{stem}.webp"``; fields {key} {dir} {name}
    {stem} {ext}) to process every image under a prefix.

    Asset events: name an ``AssetAlias`` in ``outlets`` and every output of a successful job is
    added to it as ``cos://<bucket>/<key>`` (extra: job id and input). OpenLineage gets the
    inputs and outputs, the first :data:`~airflow_provider_ci.assets.lineage.MAX_LINEAGE_DATASETS`
    of each as datasets and the totals in the ``cloudInfiniteBatch`` run facet. See docs/assets.md.

    :param items: the images to process, each a dict with ``input_object`` and
        ``output_object``; give this or ``input_prefix`` (templated).
    :param input_prefix: process every image whose key starts with this prefix; give this or
        ``items`` (templated).
    :param output_key_template: the output key of each image under ``input_prefix``, from the
        fields ``{key}`` (the input key), ``{dir}``, ``{name}``, ``{stem}`` and ``{ext}``
        (templated; required with ``input_prefix``).
    :param template_id: id of a saved PicProcess template; give this or ``process_rule`` (templated).
    :param process_rule: an inline imageMogr2 rule; give this or ``template_id`` (templated).
    :param is_pic_info: also return image info in each job's ``PicProcessResult`` (templated).
    :param bucket: bucket of the inputs as ``name-APPID``; default the connection's ``bucket``
        extra (templated).
    :param region: region of ``bucket``; default the connection's ``region`` extra (templated).
    :param output_bucket: bucket of the outputs; default ``bucket`` (templated).
    :param output_region: region of ``output_bucket``; default ``region`` (templated).
    :param job_level: queue priority of every job: 0, 1 or 2, higher first (templated).
    :param allow_failures: how many jobs may fail before the task does: a count (int >= 0) or
        a ratio of all items (0 <= float < 1); default 0.
    :param max_qps: client-side cap on requests per second, retries included; default the
        connection's ``max_qps`` extra, else CI's 100/s.
    :param max_concurrency: submits in flight at once (default 16).
    :param wait_for_completion: wait until every job ends (default); ``False`` returns once
        all are submitted (their ids are in XCom ``jobs`` either way).
    :param deferrable: wait in the triggerer instead of on the worker; default
        ``[operators] default_deferrable``.
    :param poll_interval: seconds (or a ``timedelta``) between two polls of the waiting jobs.
    :param timeout: how long to wait for all jobs (seconds or ``timedelta``, default 24 h, cut
        to ``execution_timeout`` when that is shorter);
        then jobs that have not started are cancelled and the task fails.
    :param cancel_on_kill: cancel the jobs that have not started when the task is killed.
    :param max_consecutive_failures: failed polls of one job in a row (after the hook's own
        retries) that end that job's wait as failed; a permanent error (4xx) ends it at once.
    :param tencent_ci_conn_id: the ``tencent_ci`` connection to use (templated).
    """

    template_fields: Sequence[str] = (
        "tencent_ci_conn_id",
        "items",
        "input_prefix",
        "output_key_template",
        *SHARED_FIELDS,
    )
    template_fields_renderers: ClassVar[dict[str, str]] = {"items": "json"}
    ui_color = "#dff1ff"

    def __init__(
        self,
        *,
        items: Sequence[Mapping[str, str]] | None = None,
        input_prefix: str | None = None,
        output_key_template: str | None = None,
        template_id: str | None = None,
        process_rule: str | None = None,
        is_pic_info: bool | str | None = None,
        bucket: str | None = None,
        region: str | None = None,
        output_bucket: str | None = None,
        output_region: str | None = None,
        job_level: int | str | None = None,
        allow_failures: int | float = 0,
        max_qps: float | None = None,
        max_concurrency: int = 16,
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
        if (items is None) == (input_prefix is None):
            raise CloudInfiniteValidationError("items/input_prefix", "give exactly one: items or input_prefix")
        if input_prefix is not None and not output_key_template:
            raise CloudInfiniteValidationError("output_key_template", "is required with input_prefix")
        if (template_id is None) == (process_rule is None):
            raise CloudInfiniteValidationError("template_id/process_rule", "give exactly one")
        if isinstance(allow_failures, bool) or not (
            (isinstance(allow_failures, int) and allow_failures >= 0)
            or (isinstance(allow_failures, float) and 0 <= allow_failures < 1)
        ):
            raise CloudInfiniteValidationError(
                "allow_failures", f"must be a count (int >= 0) or a ratio (0 <= float < 1), got {allow_failures!r}"
            )
        if max_concurrency < 1:
            raise CloudInfiniteValidationError("max_concurrency", "must be at least 1")
        self.items = items
        self.input_prefix = input_prefix
        self.output_key_template = output_key_template
        self.template_id = template_id
        self.process_rule = process_rule
        self.is_pic_info = is_pic_info
        self.bucket = bucket
        self.region = region
        self.output_bucket = output_bucket
        self.output_region = output_region
        self.job_level = job_level
        self.allow_failures = allow_failures
        self.max_qps = max_qps
        self.max_concurrency = max_concurrency
        self.wait_for_completion = wait_for_completion
        self.deferrable = deferrable
        self.poll_interval = check.seconds("poll_interval", poll_interval)
        self.timeout = check.seconds("timeout", timeout)
        self.cancel_on_kill = cancel_on_kill
        self.max_consecutive_failures = check.failure_budget(max_consecutive_failures)
        self.tencent_ci_conn_id = tencent_ci_conn_id
        self._waiting: list[str] = []
        self._outcome: list[dict[str, Any]] = []  # every item with its final state, for assets and lineage

    # -- execute ---------------------------------------------------------------------------------------

    @emits_assets
    def execute(self, context: Context) -> dict[str, Any]:
        hook = CloudInfiniteHook(self.tencent_ci_conn_id)
        settings = hook.settings()
        pairs = self._pairs(hook)
        try_number = context["ti"].try_number
        specs = [self._spec(pair, identity.user_data(context, index)) for index, pair in enumerate(pairs)]
        for index, spec in enumerate(specs):  # every item checked before anything is sent
            try:
                hook.validate_pic_process_job(**spec)
            except CloudInfiniteValidationError as exc:
                raise CloudInfiniteValidationError(f"items[{index}].{exc.field}", exc.rule) from None
        jobs: list[dict[str, Any]] = [
            {"input_object": p["input_object"], "output_object": p["output_object"], "job_id": None} for p in pairs
        ]
        adopted = self._adopt(context, hook, len(jobs)) if try_number > 1 else {}
        for index, detail in adopted.items():
            jobs[index].update(job_id=detail["JobId"], state=detail.get("State"))
        todo = [index for index in range(len(jobs)) if index not in adopted]
        self.log.info(
            "Submitting %d CI jobs (%d adopted from earlier tries) at most %.0f/s",
            len(todo),
            len(adopted),
            self.max_qps or settings.max_qps,
        )
        results = asyncio.run(self._submit([specs[i] for i in todo], self.max_qps or settings.max_qps))
        for index, result in zip(todo, results, strict=True):
            if isinstance(result, dict):
                jobs[index].update(job_id=result["JobId"], state=result.get("State"))
            else:
                jobs[index].update(state=NOT_SUBMITTED, code=getattr(result, "code", None), message=str(result))
        context["ti"].xcom_push(key="jobs", value=jobs)
        waiting = [j["job_id"] for j in jobs if j["job_id"] and JobState.parse(j.get("state")) not in ENDED_STATES]
        self._waiting = waiting
        if not self.wait_for_completion:
            return self._summary(jobs, judge=False)
        from airflow_provider_ci.triggers.batch import CloudInfiniteBatchJobTrigger  # not at DAG parse time

        limit = wait_limit(self.timeout, self.execution_timeout)
        trigger = CloudInfiniteBatchJobTrigger(
            job_ids=waiting,
            tencent_ci_conn_id=self.tencent_ci_conn_id,
            bucket=self.bucket,
            region=self.region,
            poll_interval=self.poll_interval,
            end_time=time.time() + limit,
            max_consecutive_failures=self.max_consecutive_failures,
        )
        if self.deferrable and waiting:
            self.defer(
                trigger=trigger, method_name="execute_complete", timeout=deferral_timeout(limit, self.poll_interval)
            )
        event = asyncio.run(_first_event(trigger)) if waiting else {"status": "success", "succeeded": [], "failed": {}}
        return self._complete(jobs, event)

    @emits_assets
    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """Resume after the trigger: the job list comes back from this task's own XCom."""
        event = read_event(event, BATCH_EVENT_STATUSES)
        jobs = context["ti"].xcom_pull(task_ids=self.task_id, key="jobs")
        return self._complete(list(jobs or []), event)

    # -- pieces ----------------------------------------------------------------------------------------

    def _pairs(self, hook: CloudInfiniteHook) -> list[dict[str, str]]:
        if self.items is not None:
            pairs = []
            for index, item in enumerate(self.items):
                if not isinstance(item, Mapping) or not {"input_object", "output_object"} <= set(item):
                    raise CloudInfiniteValidationError(f"items[{index}]", "needs input_object and output_object")
                pairs.append({"input_object": item["input_object"], "output_object": item["output_object"]})
            return pairs
        keys = self._list_keys(hook, str(self.input_prefix))
        return [{"input_object": key, "output_object": output_key(str(self.output_key_template), key)} for key in keys]

    def _list_keys(self, hook: CloudInfiniteHook, prefix: str) -> list[str]:
        """The images under ``prefix``: the hook's own signed listing, every page."""
        listed = hook.list_objects(prefix, bucket=self.bucket, region=self.region)
        return [obj["Key"] for obj in listed if obj["Key"].lower().endswith(IMAGE_SUFFIXES)]

    def _spec(self, pair: Mapping[str, str], user_data: str) -> dict[str, Any]:
        return {**{name: getattr(self, name) for name in SHARED_FIELDS}, **pair, "user_data": user_data}

    def _adopt(self, context: Context, hook: CloudInfiniteHook, count: int) -> dict[int, dict[str, Any]]:
        """Earlier tries' jobs of this task instance that are still waiting or succeeded, by item."""
        listed = hook.list_jobs(
            start_creation_time=identity.jobs_since(context), bucket=self.bucket, region=self.region
        )
        return {
            item: job for item, job in identity.own_jobs(context, listed).items() if item is not None and item < count
        }

    async def _submit(self, specs: list[dict[str, Any]], max_qps: float) -> list[Any]:
        hook = CloudInfiniteHook(self.tencent_ci_conn_id, max_qps=max_qps)
        try:
            return await submit_all(
                hook.asubmit_pic_process_job,
                specs,
                concurrency=self.max_concurrency,
                progress=Progress(len(specs), "Submitted CI jobs"),
            )
        finally:
            await hook.aclose()

    def _complete(self, jobs: list[dict[str, Any]], event: dict[str, Any]) -> dict[str, Any]:
        succeeded = set(event.get("succeeded", []))
        failed: dict[str, dict[str, Any]] = event.get("failed", {})
        pending = set(event.get("pending", []))
        for job in jobs:
            job_id = job.get("job_id")
            if job_id in succeeded:
                job["state"] = JobState.SUCCESS.value
            elif job_id in failed:
                record = failed[job_id]
                job.update(state=record.get("state") or UNKNOWN, code=record.get("code"), message=record.get("message"))
            elif job_id in pending:
                job.update(state=UNFINISHED, code=WAIT_TIMEOUT, message="not over when the wait timed out")
        if event["status"] == "timeout":
            self._cancel([job["job_id"] for job in jobs if job.get("state") == UNFINISHED])
        self._outcome = jobs
        return self._summary(jobs, judge=True)

    def _summary(self, jobs: list[dict[str, Any]], *, judge: bool) -> dict[str, Any]:
        by_state: dict[str, int] = {}
        for job in jobs:
            by_state[str(job.get("state"))] = by_state.get(str(job.get("state")), 0) + 1
        not_failed = WAITING_STATES | {JobState.SUCCESS}
        failures = [
            {k: job.get(k) for k in ("input_object", "job_id", "state", "code", "message")}
            for job in jobs
            if JobState.parse(job.get("state")) not in not_failed
        ]
        summary = {"total": len(jobs), "by_state": by_state, "failures": failures}
        self.log.info("CI batch: %s", ", ".join(f"{count} {state}" for state, count in sorted(by_state.items())))
        if not judge or not failures:
            return summary
        allowed = self.allow_failures if isinstance(self.allow_failures, int) else self.allow_failures * len(jobs)
        for failure in failures[:20]:
            self.log.warning(
                "Failed: %s (job %s): %s %s", *(failure[k] for k in ("input_object", "job_id", "code", "message"))
            )
        if len(failures) > allowed:
            raise CloudInfiniteBatchError(
                f"{len(failures)} of {len(jobs)} CI jobs failed, more than allow_failures={self.allow_failures}; "
                f"first: {failures[0]['input_object']} (job {failures[0]['job_id']}): "
                f"{failures[0]['code']}: {failures[0]['message']}",
                summary,
            )
        return summary

    def _cancel(self, job_ids: Sequence[str | None]) -> None:
        """Best effort: CI can only cancel jobs that have not started."""
        ids = [job_id for job_id in job_ids if job_id]
        if not ids:
            return

        async def cancel_all() -> None:
            hook = CloudInfiniteHook(self.tencent_ci_conn_id, max_qps=self.max_qps or 100.0)
            try:
                await asyncio.gather(
                    *(hook.acancel_job(i, bucket=self.bucket, region=self.region) for i in ids), return_exceptions=True
                )
            finally:
                await hook.aclose()

        asyncio.run(asyncio.wait_for(cancel_all(), timeout=30))
        self.log.info("Asked CI to cancel %d unfinished jobs", len(ids))

    def on_kill(self) -> None:
        if self.cancel_on_kill:
            self._cancel(self._waiting)

    # -- assets and lineage ----------------------------------------------------------------------------

    def _buckets(self) -> tuple[str, str]:
        """(input bucket, output bucket) of every item."""
        source = CloudInfiniteHook(self.tencent_ci_conn_id).settings().endpoint(self.bucket, self.region).bucket
        return str(source), self.output_bucket or str(source)

    def produced_objects(self, result: dict[str, Any]) -> list[Produced]:
        """The output of every job that succeeded (none before the wait, ``wait_for_completion=False``)."""
        done = [job for job in self._outcome if job.get("state") == JobState.SUCCESS.value]
        if not done:
            return []
        source, target = self._buckets()
        return [
            Produced(
                target, job["output_object"], {"job_id": job["job_id"], "input": cos_uri(source, job["input_object"])}
            )
            for job in done
        ]

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """Inputs of every submitted job and outputs of the successful ones, capped (see the class docstring)."""
        if not self._outcome:
            return None
        source, target = self._buckets()
        return batch_lineage(
            [(source, job["input_object"]) for job in self._outcome if job.get("job_id")],
            [(target, job["output_object"]) for job in self._outcome if job.get("state") == JobState.SUCCESS.value],
        )


async def _first_event(trigger: Any) -> dict[str, Any]:
    """Run the trigger's wait on the worker: the sync path shares the deferred path's logic."""
    async for event in trigger.run():
        return dict(event.payload)
    raise CloudInfiniteError("the batch wait ended without an event")

"""CloudInfiniteJobLink: the "Tencent CI Job" button on a task, opening the job's bucket in the CI console.

In Airflow 3 links are computed on the worker and stored in XCom, so the operator persists
the job's coordinates right after submitting, before any wait: the link works while the task
is deferred and after a crash. No job yet means an empty link, never an error.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator, Context
    from airflow.sdk.types import TaskInstanceKey

#: The CI console's documented page for a bucket. No public documentation names a query that
#: opens one job, so none is guessed: the job itself is shown by the "Tencent CI" tab of the
#: task instance (``airflow_provider_ci.plugins``), which also links here.
CONSOLE_URL = "https://console.cloud.tencent.com/ci/bucket"


def console_url(bucket: str, region: str) -> str:
    """The console page of ``bucket`` in ``region`` (only the documented ``bucket`` and ``region`` parameters).

    :param bucket: the bucket, ``name-APPID``.
    :param region: its region.
    :return: the URL.
    """
    return f"{CONSOLE_URL}?{urlencode({'bucket': bucket, 'region': region})}"


class CloudInfiniteJobLink(BaseOperatorLink):
    """The "Tencent CI Job" button of the operators' task instances, opening the job's bucket in the CI console."""

    name = "Tencent CI Job"
    key = "ci_job_link"

    @classmethod
    def persist(cls, context: Context, *, job_id: str, bucket: str, region: str) -> None:
        """Store the job's coordinates in XCom, where :meth:`get_link` finds them.

        :param context: the running task's context.
        :param job_id: the submitted job.
        :param bucket: its bucket.
        :param region: its region.
        """
        context["ti"].xcom_push(key=cls.key, value={"job_id": job_id, "bucket": bucket, "region": region})

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        """The console URL of the bucket of the task instance's job (the job itself is in the "Tencent CI" tab).

        :param operator: the task the link is shown on.
        :param ti_key: the task instance, whose XCom holds the job's coordinates.
        :return: the URL, or ``""`` when the task has no job yet (never raises).
        """
        from airflow.sdk.execution_time.xcom import XCom

        try:
            value: Any = XCom.get_value(key=self.key, ti_key=ti_key)
            return console_url(value["bucket"], value["region"]) if value else ""
        except Exception:  # a link must never fail a task
            return ""

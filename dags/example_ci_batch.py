"""Thousands of images in one task: the batch operator under CI's request rate limit.

Needs: a ``tencent_ci_default`` connection (Tencent Cloud, or the local emulator that
``make demo`` starts) whose bucket holds images under ``input/`` (the DAG param ``prefix``).

One task lists the prefix, submits one job per image at most ``max_qps`` requests/s (the
connection's ``max_qps`` extra, else CI's 100/s), waits for all of them in one deferral whose
polls are coalesced (one request per 50 jobs a round), and returns a summary. Up to 1 % of
the jobs may fail without failing the task; each failure is listed with its Code and Message.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Param, dag

from airflow_provider_ci.operators.batch import CloudInfiniteBatchPicProcessOperator


@dag(
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["example", "tencent-ci"],
    params={"prefix": Param("input/", type="string", description="process every image under this prefix")},
)
def example_ci_batch():
    CloudInfiniteBatchPicProcessOperator(
        task_id="thumbnails",
        input_prefix="{{ params.prefix }}",
        output_key_template="output/batch/{stem}.webp",
        process_rule="imageMogr2/auto-orient/thumbnail/320x320>/format/webp/strip",
        allow_failures=0.01,
        deferrable=True,
    )


example_ci_batch()

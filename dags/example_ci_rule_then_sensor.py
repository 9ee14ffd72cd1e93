"""Rotate, shrink and convert an image with an inline imageMogr2 rule, then wait with the sensor.

Needs: a ``tencent_ci_default`` connection (Tencent Cloud, or the local emulator that
``make demo`` starts) whose bucket holds an image at ``input/deer.jpg``.

The operator only submits (``wait_for_completion=False``) and pushes the job id to XCom; the
deferrable sensor waits for it in the triggerer, holding no worker slot. One task can also
do both (the default ``wait_for_completion=True``); the split shows the sensor on an XCom.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import dag

from airflow_provider_ci.operators.pic_process import CloudInfinitePicProcessOperator
from airflow_provider_ci.sensors.job import CloudInfiniteJobSensor


@dag(
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["example", "tencent-ci"],
)
def example_ci_rule_then_sensor():
    submit = CloudInfinitePicProcessOperator(
        task_id="rotate_shrink_webp",
        input_object="input/deer.jpg",
        output_object="output/rule/deer-rotated.webp",
        process_rule="imageMogr2/rotate/90/thumbnail/!50p/format/webp/quality/80",
        is_pic_info=True,
        wait_for_completion=False,
    )
    wait = CloudInfiniteJobSensor(
        task_id="wait_for_job",
        job_id="{{ ti.xcom_pull(task_ids='rotate_shrink_webp', key='job_id') }}",
        deferrable=True,
        poke_interval=10,
        timeout=60 * 60,
    )
    submit >> wait


example_ci_rule_then_sensor()

"""Wait for images to arrive, then make a WebP thumbnail of each: CosKeySensor, then mapped jobs.

Needs: a ``tencent_ci_default`` connection (Tencent Cloud, or the local emulator that
``make demo`` starts); images arrive in its bucket under ``input/`` (the DAG param ``prefix``).

The sensor waits until at least ``min_images`` keys ending in ``.jpg`` are under the prefix
(polling every 30 s, in the triggerer when deferrable) and returns the keys it found; one
mapped task per key then submits a job and waits for it. Nothing is listed at parse time.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Param, dag, task

from airflow_provider_ci.operators.pic_process import CloudInfinitePicProcessOperator
from airflow_provider_ci.sensors.cos import CosKeySensor


@dag(
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["example", "tencent-ci", "cos"],
    params={
        "prefix": Param("input/", type="string", description="wait for images under this key prefix"),
        "min_images": Param(1, type="integer", minimum=1, description="how many images to wait for"),
    },
)
def example_cos_wait_for_images():
    images = CosKeySensor(
        task_id="wait_for_images",
        prefix="{{ params.prefix }}",
        pattern="*.jpg",
        min_keys="{{ params.min_images }}",
        poke_interval=30,
        timeout=6 * 3600,
    )

    @task
    def thumbnail_jobs(keys: list[str]) -> list[dict[str, str]]:
        """One operator kwargs dict per image the sensor found."""
        return [{"input_object": key, "output_object": f"output/arrived/{key.rsplit('/')[-1]}.webp"} for key in keys]

    CloudInfinitePicProcessOperator.partial(
        task_id="thumbnail",
        process_rule="imageMogr2/thumbnail/256x256/format/webp",
    ).expand_kwargs(thumbnail_jobs(images.output))


example_cos_wait_for_images()

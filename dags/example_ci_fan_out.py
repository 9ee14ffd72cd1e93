"""Fan out: one mapped task per image under a prefix, all converted to WebP thumbnails.

Needs: a ``tencent_ci_default`` connection (Tencent Cloud, or the local emulator that
``make demo`` starts) whose bucket holds images under ``input/`` (the DAG param ``prefix``).

Listing happens in a task, not at parse time: DAG files must not call the service. Each
mapped task submits one job and, when deferrable, waits in the triggerer; mind CI's rate
limit (100 requests/s per account) when mapping over many images.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Param, dag, task

from airflow_provider_ci.operators.pic_process import CloudInfinitePicProcessOperator

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp")


@dag(
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["example", "tencent-ci"],
    params={"prefix": Param("input/", type="string", description="list images under this key prefix")},
)
def example_ci_fan_out():
    @task
    def list_images(params: dict | None = None) -> list[dict[str, str]]:
        """One operator kwargs dict per image under the prefix."""
        from airflow_provider_ci.hooks.ci import CloudInfiniteHook

        hook = CloudInfiniteHook()
        listing = hook.get_cos_client().list_objects(Bucket=hook.settings().bucket, Prefix=(params or {})["prefix"])
        keys = [item["Key"] for item in listing.get("Contents", []) if item["Key"].lower().endswith(IMAGE_SUFFIXES)]
        return [
            {"input_object": key, "output_object": f"output/fan-out/{key.rsplit('/', 1)[-1].rsplit('.', 1)[0]}.webp"}
            for key in keys
        ]

    @task
    def report(details: list[dict]) -> list[dict]:
        """Each job's output: key, format, size and dimensions."""
        from airflow_provider_ci.model import output_info

        outputs = [output_info(detail) for detail in details]
        for info in outputs:
            print(f"{info['Object']}: {info['Format']} {info['Width']}x{info['Height']}, {info['Size']} bytes")
        return outputs

    thumbnails = CloudInfinitePicProcessOperator.partial(
        task_id="thumbnail",
        process_rule="imageMogr2/thumbnail/256x256/format/webp",
    ).expand_kwargs(list_images())
    report(thumbnails.output)


example_ci_fan_out()

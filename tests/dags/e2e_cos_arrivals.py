"""Test-only DAG for the real-process suite: a run for each batch of images landing under a prefix.

Needs: the CI emulator behind ``tencent_ci_default`` and a triggerer. Like
``example_cos_new_images``, but on its own prefix (``e2e-cos-arrivals/``) and polling every
two seconds, so the deployment test waits seconds, not minutes. Paused until that test unpauses it.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Asset, AssetWatcher, dag, task

from airflow_provider_ci.operators.pic_process import CloudInfinitePicProcessOperator
from airflow_provider_ci.triggers.cos import CosKeyEventTrigger

PREFIX = "e2e-cos-arrivals/"

arrivals = Asset(
    "e2e_cos_arrivals",
    watchers=[
        AssetWatcher(
            name="e2e_cos_arrivals_watcher",
            trigger=CosKeyEventTrigger(prefix=f"{PREFIX}in/", pattern="*.jpg", poll_interval=2),
        )
    ],
)


@dag(
    schedule=[arrivals], start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False, is_paused_upon_creation=True
)
def e2e_cos_arrivals():
    @task
    def arrived(triggering_asset_events=None) -> list[dict[str, str]]:
        from airflow_provider_ci.triggers.cos import arrived_keys

        keys = arrived_keys(triggering_asset_events)
        return [{"input_object": key, "output_object": f"{PREFIX}out/{key.rsplit('/')[-1]}.webp"} for key in keys]

    CloudInfinitePicProcessOperator.partial(
        task_id="process",
        process_rule="imageMogr2/thumbnail/!50p/format/webp",
        poll_interval=1,
        retries=1,
        retry_delay=timedelta(seconds=1),
    ).expand_kwargs(arrived())


e2e_cos_arrivals()

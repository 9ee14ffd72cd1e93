"""Event-driven: a run for the images that land under a prefix, each image processed once.

Needs: a ``tencent_ci_default`` connection (Tencent Cloud, or the local emulator that
``make demo`` starts) and a running triggerer. Images uploaded to the connection's bucket under
``incoming/`` start a run; images already there when the DAG is first unpaused do not.

An ``AssetWatcher`` runs :class:`~airflow_provider_ci.triggers.cos.CosKeyEventTrigger` in
the triggerer: it lists ``incoming/`` every 30 s, and each poll that finds new ``.jpg`` keys
fires one asset event listing them. The scheduler starts a run with the events queued for
the asset; the run reads their keys and makes a WebP thumbnail of each. Airflow 3.3+ keeps the watch's state in
the asset's state store, so a triggerer restart neither re-fires old images nor misses the
ones that landed meanwhile (see docs/cos-sensor.md for 3.1/3.2).
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Asset, AssetWatcher, dag, task

from airflow_provider_ci.operators.pic_process import CloudInfinitePicProcessOperator
from airflow_provider_ci.triggers.cos import CosKeyEventTrigger

incoming_images = Asset(
    "cos_incoming_images",
    watchers=[
        AssetWatcher(
            name="cos_incoming_images_watcher",
            trigger=CosKeyEventTrigger(prefix="incoming/", pattern="*.jpg", poll_interval=30),
        )
    ],
)


@dag(
    schedule=[incoming_images],
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["example", "tencent-ci", "cos"],
)
def example_cos_new_images():
    @task
    def arrived(triggering_asset_events=None) -> list[dict[str, str]]:
        """One operator kwargs dict per image whose arrival started this run."""
        from airflow_provider_ci.triggers.cos import arrived_keys

        keys = arrived_keys(triggering_asset_events)
        print(f"{len(keys)} new image(s): {', '.join(keys)}")
        return [{"input_object": key, "output_object": f"output/incoming/{key.rsplit('/')[-1]}.webp"} for key in keys]

    CloudInfinitePicProcessOperator.partial(
        task_id="thumbnail",
        process_rule="imageMogr2/thumbnail/256x256/format/webp",
    ).expand_kwargs(arrived())


example_cos_new_images()

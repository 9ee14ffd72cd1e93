"""Outputs as assets: one DAG makes thumbnails, the next runs when they arrive and sees which.

Needs: a ``tencent_ci_default`` connection (Tencent Cloud, or the local emulator that
``make demo`` starts) whose bucket is ``examplebucket-1250000000`` (change ``BUCKET`` for
yours) and holds images under ``input/`` (the producer's param ``prefix``), one of them
``input/deer.jpg`` (param ``cover``).

``example_ci_assets_producer`` processes every image under the prefix with the batch
operator, which adds each output to the asset alias ``ci-example-thumbnails`` as
``cos://<bucket>/<key>`` (keys known only at run time), and makes a cover image whose key is
fixed, declared as an ``Asset`` outlet. ``example_ci_assets_consumer`` is scheduled on the
alias: each producer run that wrote thumbnails starts it, and it reads which keys arrived
from ``triggering_asset_events``, then makes half-size PNG copies of exactly those.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Asset, AssetAlias, Param, dag, task

from airflow_provider_ci.operators.batch import CloudInfiniteBatchPicProcessOperator
from airflow_provider_ci.operators.pic_process import CloudInfinitePicProcessOperator

BUCKET = "examplebucket-1250000000"
THUMBNAILS = AssetAlias("ci-example-thumbnails")
COVER = Asset(uri=f"cos://{BUCKET}/output/assets/cover.webp")


@dag(
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["example", "tencent-ci", "assets"],
    params={
        "prefix": Param("input/", type="string", description="make a thumbnail of every image under this prefix"),
        "cover": Param("input/deer.jpg", type="string", description="the image the cover is made from"),
    },
)
def example_ci_assets_producer():
    CloudInfiniteBatchPicProcessOperator(
        task_id="thumbnails",
        input_prefix="{{ params.prefix }}",
        output_key_template="output/assets/{stem}.webp",
        process_rule="imageMogr2/thumbnail/320x320>/format/webp",
        outlets=[THUMBNAILS],
    )
    CloudInfinitePicProcessOperator(
        task_id="cover",
        input_object="{{ params.cover }}",
        output_object="output/assets/cover.webp",
        process_rule="imageMogr2/thumbnail/!50p/format/webp",
        bucket=BUCKET,
        outlets=[COVER],
    )


@dag(
    schedule=THUMBNAILS,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["example", "tencent-ci", "assets"],
)
def example_ci_assets_consumer():
    @task
    def arrived(triggering_asset_events=None) -> list[dict]:
        """The thumbnails this run was started for (none when triggered by hand)."""
        from airflow_provider_ci.assets.events import arrived_objects

        objects = arrived_objects(triggering_asset_events[THUMBNAILS]) if triggering_asset_events else []
        for obj in objects:
            print(f"arrived {obj['uri']} from {obj['source_dag_id']}/{obj['source_run_id']}: {obj['extra']}")
        return objects

    @task
    def half_size(objects: list[dict]) -> list[dict[str, str]]:
        """One item per arrived thumbnail: ``output/assets/x.webp`` -> ``output/assets/half/x.png``."""
        return [
            {
                "input_object": obj["key"],
                "output_object": f"output/assets/half/{obj['key'].rsplit('/', 1)[-1].rsplit('.', 1)[0]}.png",
            }
            for obj in objects
        ]

    CloudInfiniteBatchPicProcessOperator(
        task_id="halves",
        items=half_size(arrived()),
        process_rule="imageMogr2/thumbnail/!50p/format/png",
    )


example_ci_assets_producer()
example_ci_assets_consumer()

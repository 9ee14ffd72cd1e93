"""Outputs as assets in a real deployment: the producer's outputs start the consumer, which sees the keys.

Nothing is triggered by hand but the producer: the scheduler creates the consumer's run from
the asset events the producer's batch task added to the alias ``ci-example-thumbnails``.
"""

from __future__ import annotations

import io
import json

import pytest
from PIL import Image

from airflow_provider_ci.emulator.pytest_plugin import DEFAULT_BUCKET
from tests.deployment.airflow_deployment import Deployment, wait_for
from tests.deployment.conftest import put_images
from tests.support import jpeg

pytestmark = [pytest.mark.deployment, pytest.mark.airflow_e2e]

PRODUCER, CONSUMER = "example_ci_assets_producer", "example_ci_assets_consumer"
PREFIX = "deploy-assets/"


def _consumer_run_for(deployment: Deployment, producer_run: str) -> tuple[str, list[dict]] | None:
    """The consumer run whose triggering asset events came from ``producer_run``, with those events."""
    runs = deployment.api("GET", f"/dags/{CONSUMER}/dagRuns", params={"limit": 100})["dag_runs"]
    for run in runs:
        if run["run_type"] != "asset_triggered":
            continue
        events = deployment.api("GET", f"/dags/{CONSUMER}/dagRuns/{run['dag_run_id']}/upstreamAssetEvents")
        if any(event["source_run_id"] == producer_run for event in events["asset_events"]):
            return run["dag_run_id"], events["asset_events"]
    return None


def _xcom(deployment: Deployment, dag_id: str, run_id: str, task_id: str):
    entry = deployment.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/return_value")
    value = entry["value"]
    return json.loads(value) if isinstance(value, str) else value


def test_the_producers_outputs_start_the_consumer_which_sees_which_keys_arrived(deployment, emulator):
    inputs = put_images(emulator, PREFIX, 3)
    emulator.put_object(DEFAULT_BUCKET, "input/deer.jpg", jpeg(64, 48))

    producer_run = deployment.trigger(PRODUCER, {"prefix": PREFIX})
    assert deployment.wait_for_run(PRODUCER, producer_run) == "success", deployment.task_instances(
        PRODUCER, producer_run
    )

    consumer_run, events = wait_for(
        "the scheduler to start the consumer from the producer's asset events",
        lambda: _consumer_run_for(deployment, producer_run),
        timeout=120,
        interval=1,
    )
    expected = {f"cos://{DEFAULT_BUCKET}/output/assets/{n}.webp" for n in range(len(inputs))}
    # Every thumbnail event of this producer run triggered this one consumer run.
    mine = [event for event in events if event["source_run_id"] == producer_run]
    assert {event["uri"] for event in mine} == expected
    assert {event["source_task_id"] for event in mine} == {"thumbnails"}

    assert deployment.wait_for_run(CONSUMER, consumer_run) == "success", deployment.task_instances(
        CONSUMER, consumer_run
    )
    arrived = _xcom(deployment, CONSUMER, consumer_run, "arrived")
    assert {obj["uri"] for obj in arrived} >= expected
    by_key = {obj["key"]: obj for obj in arrived}
    for n, key in enumerate(inputs):
        obj = by_key[f"output/assets/{n}.webp"]
        assert (obj["source_dag_id"], obj["extra"]["input"]) == (PRODUCER, f"cos://{DEFAULT_BUCKET}/{key}")
        half = Image.open(io.BytesIO(emulator.get_object(DEFAULT_BUCKET, f"output/assets/half/{n}.png")))
        assert half.format == "PNG"
    for dag_id, run_id in ((PRODUCER, producer_run), (CONSUMER, consumer_run)):
        assert deployment.unexplained_retries(dag_id, run_id) == []

"""The example DAGs, triggered through the REST API and run by the real scheduler, workers and triggerer."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from airflow_provider_ci.emulator.pytest_plugin import DEFAULT_BUCKET
from tests.deployment.conftest import EXAMPLE_DAGS, put_images
from tests.support import jpeg, png

pytestmark = [pytest.mark.deployment, pytest.mark.airflow_e2e]


def test_examples_run_through_the_rest_api_and_defer_to_the_triggerer(deployment, emulator):
    emulator.put_object(DEFAULT_BUCKET, "input/deer.jpg", jpeg(64, 48))
    emulator.put_object(DEFAULT_BUCKET, "input/cat.png", png(30, 20))
    put_images(emulator, "deploy-fan-out/", 3)
    conf = {"example_ci_fan_out": {"prefix": "deploy-fan-out/"}, "example_ci_batch": {"prefix": "deploy-fan-out/"}}
    emulator.pause_queue()  # so every wait is still open when its task checks, and defers
    runs = {dag_id: deployment.trigger(dag_id, conf.get(dag_id)) for dag_id in EXAMPLE_DAGS}
    deployment.wait_for_states("example_ci_fan_out", runs["example_ci_fan_out"], {"deferred"}, 3)
    emulator.resume_queue()

    states = {dag_id: deployment.wait_for_run(dag_id, run_id) for dag_id, run_id in runs.items()}

    failed = {
        dag_id: [(ti["task_id"], ti["map_index"], ti["state"]) for ti in deployment.task_instances(dag_id, run_id)]
        for dag_id, run_id in runs.items()
        if states[dag_id] != "success"
    }
    assert not failed, failed
    for dag_id, run_id in runs.items():
        assert deployment.unexplained_retries(dag_id, run_id) == []
    out = Image.open(io.BytesIO(emulator.get_object(DEFAULT_BUCKET, "output/rule/deer-rotated.webp")))
    assert (out.format, out.size) == ("WEBP", (24, 32))
    # The fan-out's mapped waits (deferrable by the deployment's default) ran in the triggerer
    # process, which wrote each one's log: the job's end and the one event fired.
    waits = deployment.trigger_logs("example_ci_fan_out", runs["example_ci_fan_out"])
    assert sorted(waits) == [0, 1, 2]
    for by_triggerer in waits.values():
        (log,) = by_triggerer.values()
        assert "ended Success" in log and log.count("Trigger fired event") == 1

"""Event-driven scheduling on COS in a real deployment: uploads start runs that process exactly them.

The watcher (``CosKeyEventTrigger`` in an ``AssetWatcher`` of ``tests/dags/e2e_cos_arrivals.py``)
runs in the triggerer process, lists its prefix every second, and fires one asset event per new
``.jpg``; the scheduler starts runs from those events and each run submits one job per key.
"""

from __future__ import annotations

import json

import pytest

from airflow_provider_ci.emulator.pytest_plugin import CONN_ENV, DEFAULT_BUCKET, DEFAULT_REGION
from airflow_provider_ci.hooks.ci import CloudInfiniteHook
from tests.deployment.airflow_deployment import TERMINAL_RUN_STATES, wait_for
from tests.deployment.conftest import jobs_for
from tests.support import jpeg

pytestmark = [pytest.mark.deployment, pytest.mark.airflow_e2e]

DAG_ID = "e2e_cos_arrivals"
WATCHED = "e2e-cos-arrivals/in/"


def test_images_uploaded_with_the_cos_sdk_start_runs_that_process_exactly_those_images(
    deployment, emulator, monkeypatch
):
    old = [f"{WATCHED}old-{n}.jpg" for n in range(2)]
    for key in old:  # there before the watch starts: the baseline, never processed
        emulator.put_object(DEFAULT_BUCKET, key, jpeg(40, 30))

    def watcher_listed() -> bool:
        return any(r.query.get("prefix") == WATCHED for r in list(emulator.requests))

    deployment.wait_for_dags([DAG_ID])  # unpaused: the dag-processor registers the watcher
    wait_for("the watcher's first listing (its baseline)", watcher_listed, timeout=240)

    monkeypatch.setenv(CONN_ENV, json.dumps(emulator.airflow_connection(DEFAULT_BUCKET, DEFAULT_REGION)))
    cos = CloudInfiniteHook().get_cos_client()
    new = [f"{WATCHED}new-{n}.jpg" for n in range(3)]  # grows with the images expected
    for n, key in enumerate(new):
        cos.put_object(Bucket=DEFAULT_BUCKET, Key=key, Body=jpeg(40 + n, 30))
    cos.put_object(Bucket=DEFAULT_BUCKET, Key=f"{WATCHED}notes.txt", Body=b"not an image")

    def all_processed() -> list[dict] | None:
        jobs = jobs_for(emulator, WATCHED)
        return jobs if len(jobs) >= len(new) and all(job["State"] == "Success" for job in jobs) else None

    wait_for("a job for every uploaded image", all_processed, timeout=240)

    # A triggerer restart: images that land while it is down fire after it is back; none fires twice.
    deployment.stop("triggerer")
    later = [f"{WATCHED}while-down-{n}.jpg" for n in range(2)]
    for key in later:
        cos.put_object(Bucket=DEFAULT_BUCKET, Key=key, Body=jpeg(50, 30))
    deployment.start("triggerer", "triggerer")
    new += later
    wait_for("a job for every image, also those uploaded while the triggerer was down", all_processed, timeout=240)

    def runs_done() -> list[dict] | None:
        runs = deployment.api("GET", f"/dags/{DAG_ID}/dagRuns", params={"limit": 100})["dag_runs"]
        return runs if runs and all(run["state"] in TERMINAL_RUN_STATES for run in runs) else None

    runs = wait_for("the asset-triggered runs to finish", runs_done, timeout=120)
    assert {run["state"] for run in runs} == {"success"}
    assert {run["run_type"] for run in runs} == {"asset_triggered"}
    # Every new image once, nothing else: not the old ones, not the text file.
    assert sorted(job["Input"]["Object"] for job in jobs_for(emulator, WATCHED)) == sorted(new)
    for run in runs:
        assert deployment.unexplained_retries(DAG_ID, run["dag_run_id"]) == []
    # The watch's state went to the asset's state store (Airflow 3.3+), not only to memory.
    triggerer_log = "\n".join(text for path, text in deployment.logs().items() if "triggerer" in path.name)
    assert "state lives in memory only" not in triggerer_log
    deployment.api("PATCH", f"/dags/{DAG_ID}", json={"is_paused": True})  # stop watching

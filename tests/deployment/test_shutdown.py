"""Runs last: everything the deployment leaves behind is free of secrets, and it stops cleanly.

The deployment's connection holds STS credentials made for this run (see ``sts_emulator``),
so finding the SecretKey or the session token anywhere is a leak, not a coincidence; a
``q-signature`` value would be a replayable signature. Scanned: every log file (components,
tasks, triggers, the Celery worker, PostgreSQL's and Redis's own logs), every text value of the
PostgreSQL metadata DB (XCom, rendered template fields, serialized DAGs, Celery's task results,
...), every key and value left in the Redis broker, trigger kwargs as the triggerer reads them
(decrypted), what the REST API shows for each task instance and its XComs, and the UI pages
the browser test fetched.
"""

from __future__ import annotations

import json
import re

import psutil
import pytest
from cryptography.fernet import Fernet

from tests.deployment.airflow_deployment import Deployment, still_running
from tests.deployment.conftest import ARTIFACTS
from tests.deployment.test_crashes import deferred_run

pytestmark = [pytest.mark.deployment, pytest.mark.airflow_e2e]

SIGNATURE = re.compile(r"q-signature=[0-9a-f]{40}")


def test_shutdown_is_clean_and_nothing_left_behind_holds_a_secret(deployment, postgres, redis_broker, emulator):
    places = {"trigger kwargs (decrypted)": _live_trigger_kwargs(deployment, emulator)}
    places.update(_rest_views(deployment))
    processes = [
        process
        for component in deployment.components.values()
        for process in [psutil.Process(component.pid), *psutil.Process(component.pid).children(recursive=True)]
    ]

    assert deployment.stop_all() == [], "components that needed SIGKILL to stop"
    left = still_running(processes, grace=0)
    assert left == [], [p.cmdline()[:3] for p in left]

    places.update({str(path): text for path, text in deployment.logs().items()})
    places.update(_database_text(deployment))
    assert {"trigger", "xcom", "celery_taskmeta"} <= {place.split()[-1] for place in places}, "DB tables not scanned"
    places["redis broker contents"] = redis_broker.contents()
    places.update({f"{server.name} log": server.log.read_text(errors="replace") for server in (postgres, redis_broker)})
    places.update({str(path): path.read_text(errors="replace") for path in ARTIFACTS.rglob("*.html")})
    assert any("ui" in place for place in places), "no UI page was scanned"
    secrets = {"SecretKey": emulator.secret_key, "session token": emulator.token}
    leaks = [
        f"{name} in {place}" for place, text in places.items() for name, secret in secrets.items() if secret in text
    ]
    leaks += [f"a q-signature in {place}" for place, text in places.items() if SIGNATURE.search(text)]
    assert leaks == []
    assert len(places) > 50  # the scan saw the deployment's leavings, not an empty folder


def _live_trigger_kwargs(deployment: Deployment, emulator) -> str:
    """The kwargs of waiting triggers, decrypted with the deployment's key, as the triggerer sees them."""
    run_id = deferred_run(deployment, emulator, "scan/", 2)
    fernet = Fernet(deployment.base_env["AIRFLOW__CORE__FERNET_KEY"].encode())
    rows = deployment.query(
        "SELECT t.kwargs FROM trigger t JOIN task_instance ti ON ti.trigger_id = t.id WHERE ti.run_id = ?", run_id
    )
    kwargs = [_decrypt(fernet, value) for (value,) in rows]
    assert len(kwargs) == 2 and all("tencent_ci_conn_id" in text for text in kwargs), kwargs
    emulator.resume_queue()
    assert deployment.wait_for_run("e2e_deferred_jobs", run_id) == "success"
    return "\n".join(kwargs)


def _decrypt(fernet: Fernet, stored: str) -> str:
    value = json.loads(stored) if stored.startswith("{") else stored
    encrypted = value.get("encrypted") if isinstance(value, dict) else value
    return fernet.decrypt(str(encrypted).encode()).decode() if encrypted else str(value)


def _rest_views(deployment: Deployment) -> dict[str, str]:
    """What the REST API (and so the UI) shows for every task instance and XCom of every run."""
    views: dict[str, str] = {}
    for dag in deployment.api("GET", "/dags", params={"limit": 100})["dags"]:
        dag_id = dag["dag_id"]
        for run in deployment.api("GET", f"/dags/{dag_id}/dagRuns", params={"limit": 100})["dag_runs"]:
            run_path = f"/dags/{dag_id}/dagRuns/{run['dag_run_id']}"
            for ti in deployment.task_instances(dag_id, run["dag_run_id"]):
                views[f"REST {run_path} {ti['task_id']}[{ti['map_index']}]"] = json.dumps(ti)
                entries = deployment.api(
                    "GET",
                    f"{run_path}/taskInstances/{ti['task_id']}/xcomEntries",
                    params={"map_index": ti["map_index"]},
                )["xcom_entries"]
                for entry in entries:
                    value = deployment.api(
                        "GET",
                        f"{run_path}/taskInstances/{ti['task_id']}/xcomEntries/{entry['key']}",
                        params={"map_index": ti["map_index"]},
                    )
                    views[f"REST xcom {run_path} {ti['task_id']}[{ti['map_index']}] {entry['key']}"] = json.dumps(value)
    return views


def _database_text(deployment: Deployment) -> dict[str, str]:
    """Every text, binary or JSON value of every table, one place per table."""
    return {
        f"db table {table}": "\n".join(filter(None, map(_text, (v for row in rows for v in row))))
        for table in deployment.tables()
        for rows in [deployment.query(f'SELECT * FROM "{table}"')]
    }


def _text(value: object) -> str | None:
    """A column value as text: bytea and blobs decoded, JSON columns (dicts, lists) dumped."""
    if isinstance(value, str):
        return value
    if isinstance(value, (bytes, memoryview)):
        return bytes(value).decode(errors="replace")
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return None

"""U1: server time to render the "Tencent CI" batch view of a 10,000-item batch.

Everything is real: 10,000 PNGs in the emulator, one ``dag.test()`` run of a DAG with
``CloudInfiniteBatchPicProcessOperator`` over them (10,000 jobs; its task instance and XCom
``jobs`` in a throwaway SQLite DB), then Airflow's own API server app
(``airflow.api_fastapi.app.create_app``, the plugin mounted from its entry point) called
in-process through Starlette's TestClient with an admin token. Each view is timed from request
to last byte (in-process, so this is server time plus a negligible client share).

Run with ``python -m bench u1`` (throwaway AIRFLOW_HOME set up there), or standalone:
``python -m bench.ui_batch`` (sets up its own throwaway AIRFLOW_HOME first).
"""

from __future__ import annotations

import io
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

ITEMS = 10_000
RUNS = 15
BUCKET = "examplebucket-1250000000"
REGION = "ap-chongqing"
DAG_ID = "bench_ui_batch"
DAG_FILE = f"""
import pendulum
from airflow.sdk import dag
from airflow_provider_ci.operators.batch import CloudInfiniteBatchPicProcessOperator

@dag(schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False)
def {DAG_ID}():
    CloudInfiniteBatchPicProcessOperator(
        task_id="batch", input_prefix="bench-ui/", output_key_template="bench-ui-out/{{stem}}.jpg",
        process_rule="imageMogr2/format/jpg", max_qps=2000, max_concurrency=32, allow_failures=0.5,
        deferrable=False, poll_interval=1,
    )

{DAG_ID}()
"""


def _png(n: int) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (8 + n % 5, 6), (n % 256, 90, 160)).save(buffer, "PNG")
    return buffer.getvalue()


def _run_batch(emulator: Any, dags: Path) -> tuple[str, float]:
    """Run the DAG once; its run id and how long the 10,000 jobs took end to end."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager

    try:
        from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db
    except ImportError:  # Airflow < 3.2
        from airflow.models.dagbag import DagBag, sync_bag_to_db  # type: ignore[no-redef]

    (dags / f"{DAG_ID}.py").write_text(DAG_FILE)
    DagBundlesManager().sync_bundles_to_db()
    bag = DagBag(dag_folder=str(dags))
    sync_bag_to_db(bag, "dags-folder", None)
    started = time.monotonic()
    run = bag.get_dag(DAG_ID).test()
    return run.run_id, time.monotonic() - started


def _time(client: Any, url: str, headers: dict[str, str], emulator: Any) -> tuple[list[float], int, int]:
    """Seconds per request over RUNS (the first one is cold), CI requests of one view, bytes."""
    seconds = []
    size = 0
    for _ in range(RUNS):
        emulator.clear_requests()
        started = time.perf_counter()
        response = client.get(url, headers=headers)
        seconds.append(time.perf_counter() - started)
        assert response.status_code == 200, response.text[:300]
        size = len(response.content)
    ci_requests = len([r for r in emulator.requests if ".ci." in r.host])
    return seconds, ci_requests, size


def run() -> Any:
    from airflow.api_fastapi import app as api_app
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from airflow.utils.db import initdb
    from fastapi.testclient import TestClient

    from airflow_provider_ci.emulator import Emulator
    from bench.report import Goal, Section, Table, num

    home = Path(os.environ["AIRFLOW_HOME"])
    dags = home / "dags"
    dags.mkdir(parents=True, exist_ok=True)
    os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(dags)
    os.environ["AIRFLOW__API_AUTH__JWT_ISSUER"] = "bench"
    initdb()
    with Emulator(home / "emulator", buckets=[BUCKET], queue_delay=0.0, run_time=0.0, workers=16) as emulator:
        for n in range(ITEMS):
            emulator.put_object(BUCKET, f"bench-ui/{n:05d}.png", _png(n) if n % 100 else b"not an image")
        os.environ["AIRFLOW_CONN_TENCENT_CI_DEFAULT"] = json.dumps(emulator.airflow_connection(BUCKET, REGION))
        run_id, batch_seconds = _run_batch(emulator, dags)
        api_app.purge_cached_app()
        app = api_app.create_app()
        token = api_app.get_auth_manager().generate_jwt(SimpleAuthManagerUser(username="admin", role="admin"))
        headers = {"Authorization": f"Bearer {token}"}
        base = f"/tencent-ci/task-instances/{DAG_ID}/{run_id}/batch?map_index=-1"
        views = {
            "HTML, page 1 of 200 (50 rows)": base,
            "HTML, last page": base + "&page=200",
            "HTML, 200 rows a page": base + "&per_page=200",
            "HTML, filter state=Failed": base + "&state=Failed",
            "HTML, search one input": base + "&q=bench-ui/04242",
            "JSON twin, page 1": base.replace("/task-instances/", "/api/task-instances/"),
        }
        rows = []
        warm_medians = {}
        with TestClient(app) as client:
            started = time.perf_counter()  # the plugin's app is built on its first request (any route)
            assert client.get(base.replace("/batch?", "/no-such-task?"), headers=headers).status_code == 404
            app_build = time.perf_counter() - started
            for name, url in views.items():
                seconds, ci_requests, size = _time(client, url, headers, emulator)
                warm = seconds[1:]
                warm_medians[name] = statistics.median(warm)
                rows.append(
                    (
                        name,
                        num(seconds[0] * 1000, 0),
                        num(statistics.median(warm) * 1000, 0),
                        num(max(warm) * 1000, 0),
                        str(ci_requests),
                        num(size / 1024, 1),
                    )
                )
    worst = max(warm_medians.values())
    first = float(rows[0][1].replace(",", "")) / 1000
    return Section(
        "u1",
        "UI batch view",
        f"A real {ITEMS:,}-item batch (one `dag.test()` of `CloudInfiniteBatchPicProcessOperator` over {ITEMS:,} "
        f"PNGs in the emulator, 1 % not images so some jobs fail; the batch itself took {batch_seconds:.0f} s), "
        "then the plugin's routes on Airflow's own API server app in-process (TestClient, admin bearer token, "
        f"SQLite). Each view {RUNS} times; the first is cold (the 10,000-item XCom read and parsed), the rest warm. "
        f"Before them, one request to a missing task built the plugin's app (first request of the process): "
        f"{app_build * 1000:.0f} ms, not counted.",
        [
            Table(
                ("view", "first ms", "warm median ms", "warm max ms", "CI requests / view", "KB"),
                rows,
                "Server time per view",
            )
        ],
        [
            Goal("batch view of 10,000 items, first (cold) render", "≤ 1 s", f"{first:.2f} s", first <= 1.0),
            Goal("every view, warm median", "≤ 1 s", f"{worst:.2f} s", worst <= 1.0),
        ],
        ["CI requests per view are the coalesced `GET /jobs/<ids>` for the rows shown: ⌈rows / 50⌉."],
    )


def main() -> None:
    """Standalone: a throwaway AIRFLOW_HOME, then print the section."""
    scratch = Path(tempfile.mkdtemp(prefix="bench-u1-"))
    os.environ["AIRFLOW_HOME"] = str(scratch / "airflow-home")
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    started = time.monotonic()
    section = run()
    section.seconds = time.monotonic() - started
    print(section.markdown())


if __name__ == "__main__":
    main()

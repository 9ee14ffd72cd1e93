"""The Python harness, the control endpoints, the command line, the pytest plugin, and load."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from emulator_client import BUCKET, REGION, CiClient, jpeg, make_emulator, xml_text

from airflow_provider_ci.emulator import DEFAULT_SECRET_ID, DEFAULT_SECRET_KEY, Emulator
from airflow_provider_ci.emulator.pytest_plugin import CONN_ENV, DEFAULT_BUCKET, DEFAULT_REGION


def test_airflow_connection_points_at_the_emulator(emulator: Emulator) -> None:
    assert emulator.airflow_connection(BUCKET, REGION) == {
        "conn_type": "tencent_ci",
        "login": DEFAULT_SECRET_ID,
        "password": DEFAULT_SECRET_KEY,
        "extra": {"region": REGION, "bucket": BUCKET, "endpoint_url": emulator.url},
    }


def test_control_endpoints_report_and_reset(emulator: Emulator, ci: CiClient) -> None:
    base = f"{emulator.url}/_emulator"
    ci.wait(ci.submit_ok())

    stats = requests.get(f"{base}/stats", timeout=5).json()
    log = requests.get(f"{base}/requests", timeout=5).json()["requests"]
    jobs = requests.get(f"{base}/jobs", params={"bucket": BUCKET}, timeout=5).json()["jobs"]

    assert stats["jobs"]["Success"] == 1
    assert stats["requests"]["POST /jobs"] == 1
    assert stats["requests"]["GET /jobs/{id}"] >= 1
    assert BUCKET in stats["buckets"]
    assert log[0]["route"] == "POST /jobs"
    assert log[0]["status"] == 200
    assert log[0]["host"] == ci.host
    assert jobs[0]["State"] == "Success"
    assert jobs[0]["Operation"]["PicProcessResult"]["ObjectName"] == "out/pic.jpg"

    assert requests.delete(f"{base}/requests", timeout=5).status_code == 200
    assert emulator.requests == []
    assert requests.post(f"{base}/reset", timeout=5).status_code == 200
    assert emulator.jobs() == []
    assert emulator.get_object(BUCKET, "out/pic.jpg")  # objects survive a reset


def test_control_endpoints_create_buckets_and_refuse_nonsense(emulator: Emulator) -> None:
    base = f"{emulator.url}/_emulator"

    created = requests.post(f"{base}/buckets", json={"name": "fresh-1250000000", "pic_processing": False}, timeout=5)
    bad_name = requests.post(f"{base}/buckets", json={"name": "Bad_Name"}, timeout=5)
    not_json = requests.post(f"{base}/faults", data=b"{", timeout=5)
    unknown = requests.get(f"{base}/nothing", timeout=5)

    assert created.status_code == 200
    assert "fresh-1250000000" in emulator.stats()["buckets"]
    refused = CiClient(emulator, "fresh-1250000000").call("GET", "/jobs", {"tag": "PicProcess"})
    assert refused.status_code == 403
    assert bad_name.status_code == 400
    assert "BucketName-APPID" in bad_name.json()["error"]
    assert not_json.status_code == 400
    assert unknown.status_code == 404
    assert [record.route for record in emulator.requests] == ["GET /jobs"]  # control calls are not logged


def test_buckets_made_by_hand_in_the_data_dir_are_found(emulator: Emulator) -> None:
    (emulator.config.data_dir / "handmade-1250000000").mkdir(exist_ok=True)

    response = CiClient(emulator, "handmade-1250000000").call("GET", "/jobs", {"tag": "PicProcess"})

    assert response.status_code == 200


def test_two_hundred_concurrent_submits_and_polls_make_exactly_two_hundred_jobs(tmp_path: Path) -> None:
    with make_emulator(tmp_path, queue_delay=0.02, run_time=0.02, workers=20) as emulator:
        emulator.put_object(BUCKET, "in/pic.jpg", jpeg())

        def submit_and_wait(index: int) -> tuple[str, str]:
            ci = CiClient(emulator)
            job_id = ci.submit_ok(output_object=f"out/{index}.jpg", user_data=f"job-{index}")
            return job_id, xml_text(ci.wait(job_id, timeout=30), "State")

        with ThreadPoolExecutor(50) as pool:
            outcomes = list(pool.map(submit_and_wait, range(200)))
        jobs = emulator.jobs()

    assert len({job_id for job_id, _ in outcomes}) == 200
    assert {state for _, state in outcomes} == {"Success"}
    assert len(jobs) == 200
    assert sorted(job["Operation"]["UserData"] for job in jobs) == sorted(f"job-{i}" for i in range(200))
    assert emulator.stats()["jobs"]["Success"] == 200


def test_emulator_refuses_a_second_start_and_stops_twice(tmp_path: Path) -> None:
    emulator = make_emulator(tmp_path).start()
    try:
        with pytest.raises(RuntimeError):
            emulator.start()
    finally:
        emulator.stop()
    emulator.stop()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{emulator.url}/_emulator/health", timeout=2)


def test_command_line_serves_until_sigterm(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "airflow_provider_ci.emulator", "--port", "0", "--data-dir", str(tmp_path)]
    command += ["--bucket", BUCKET, "--token", "tok", "--queue-delay", "0", "--run-time", "0"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=os.environ | {"PYTHONUNBUFFERED": "1"})
    try:
        assert process.stdout is not None
        banner = process.stdout.readline()
        assert banner.startswith("Tencent CI emulator listening on http://127.0.0.1:")
        url = banner.split()[-1]
        rest = [process.stdout.readline() for _ in range(5)]
        assert any(DEFAULT_SECRET_ID in line for line in rest)
        assert any("tok" in line for line in rest)
        assert requests.get(f"{url}/_emulator/health", timeout=5).json() == {"status": "ok"}
        assert requests.get(f"{url}/_emulator/stats", timeout=5).json()["buckets"] == [BUCKET]
    finally:
        process.send_signal(signal.SIGTERM)
        remaining, _ = process.communicate(timeout=10)
    assert process.returncode == 0
    assert "stopped" in remaining


def test_plugin_fixtures_point_the_default_connection_at_the_session_emulator(
    ci_emulator: Emulator, ci_emulator_conn: dict[str, Any]
) -> None:
    assert json.loads(os.environ[CONN_ENV]) == ci_emulator_conn
    assert ci_emulator_conn["extra"]["endpoint_url"] == ci_emulator.url
    assert ci_emulator_conn["extra"]["bucket"] == DEFAULT_BUCKET
    assert ci_emulator_conn["extra"]["region"] == DEFAULT_REGION
    assert DEFAULT_BUCKET in ci_emulator.stats()["buckets"]
    assert ci_emulator.faults.active() == []
    assert ci_emulator.requests == []

"""``make demo``: one example DAG end to end against the local CI emulator, no cloud account.

Starts the emulator on a free port with its data under ``demo-output/``, uploads a generated
photo-like image with cos-python-sdk-v5 (through the hook, as a DAG would), points
``tencent_ci_default`` at the emulator, runs ``airflow dags test example_ci_rule_then_sensor``
in a throwaway AIRFLOW_HOME, prints the job's result and leaves the output image on disk.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from airflow_provider_ci.emulator import Emulator
from airflow_provider_ci.emulator.samples import sample_jpeg

ROOT = Path(__file__).resolve().parent.parent
DAG_ID = "example_ci_rule_then_sensor"
BUCKET = "examplebucket-1250000000"
REGION = "ap-chongqing"
INPUT_KEY = "input/deer.jpg"


def run_demo(output_dir: Path) -> dict[str, Any]:
    """Run the demo; returns the job's JobsDetail plus where the output image lies."""
    data_dir = output_dir / "ci-data"
    data_dir.mkdir(parents=True, exist_ok=True)
    with Emulator(data_dir, port=0, buckets=[BUCKET], queue_delay=0.2, run_time=0.5) as emulator:
        print(f"CI emulator at {emulator.url} (data in {data_dir})", flush=True)
        connection = emulator.airflow_connection(BUCKET, REGION)
        env = {
            **os.environ,
            "AIRFLOW_CONN_TENCENT_CI_DEFAULT": json.dumps(connection),
            "AIRFLOW_HOME": tempfile.mkdtemp(prefix="ci-demo-airflow-"),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        }
        upload(connection, sample_jpeg())
        print(f"Uploaded {INPUT_KEY} to {BUCKET} with cos-python-sdk-v5", flush=True)
        airflow = Path(sys.executable).with_name("airflow")
        subprocess.run([str(airflow), "db", "migrate"], env=env, check=True, capture_output=True)
        started = time.monotonic()
        print(f"Running: airflow dags test {DAG_ID}", flush=True)
        run = subprocess.run([str(airflow), "dags", "test", DAG_ID], env=env, capture_output=True, text=True)
        elapsed = time.monotonic() - started
        if run.returncode != 0:
            print(run.stdout[-6000:], run.stderr[-6000:], sep="\n", file=sys.stderr)
            raise SystemExit(f"airflow dags test {DAG_ID} failed (exit {run.returncode})")
        (job,) = [j for j in emulator.jobs(BUCKET) if j["Input"]["Object"] == INPUT_KEY][-1:]
    result = job["Operation"]["PicProcessResult"]
    output = job["Operation"]["Output"]
    processed = result["ProcessResult"]
    original = result.get("OriginalInfo", {}).get("ImageInfo", {})
    path = data_dir / output["Bucket"] / output["Object"]
    print()
    print(f"DAG {DAG_ID} finished in {elapsed:.1f} s: job {job['JobId']} {job['State']}")
    print(f"  rule    {job['Operation']['PicProcess']['ProcessRule']}")
    print(f"  input   {INPUT_KEY}: {original.get('Format')} {original.get('Width')}x{original.get('Height')}")
    print(
        f"  output  {output['Object']}: {processed['Format']} {processed['Width']}x{processed['Height']}, "
        f"{processed['Size']} bytes"
    )
    print(f"  open it {path}")
    return {**job, "output_path": str(path), "elapsed": elapsed}


def upload(connection: dict[str, Any], data: bytes) -> None:
    """Upload with the cos-python-sdk-v5 client the hook builds from this same connection."""
    from airflow_provider_ci.connection import ConnectionSettings
    from airflow_provider_ci.cos_sdk import cos_client

    settings = ConnectionSettings.parse("demo", connection["login"], connection["password"], connection["extra"])
    # The SDK logs every call at INFO ("put object, url=..., headers=..."); Airflow's logging,
    # configured on import, would print it in the middle of the demo's output.
    logging.getLogger("qcloud_cos").setLevel(logging.WARNING)
    cos_client(settings).put_object(Bucket=BUCKET, Key=INPUT_KEY, Body=data)


if __name__ == "__main__":
    run_demo(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "demo-output")

"""`make demo`'s script, run as CI runs it: emulator, upload, `airflow dags test`, printed result."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from PIL import Image

pytestmark = pytest.mark.demo

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "demo.py"


def test_demo_runs_the_example_dag_end_to_end(tmp_path, capfd):
    spec = importlib.util.spec_from_file_location("ci_demo", SCRIPT)
    assert spec and spec.loader
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)

    job = demo.run_demo(tmp_path)

    out, err = capfd.readouterr()  # fd-level: Airflow's log handlers hold the original streams
    assert job["State"] == "Success"
    assert f"job {job['JobId']} Success" in out
    assert "output  output/rule/deer-rotated.webp: WEBP 240x320" in out
    # cos-python-sdk-v5 logs each call at INFO; the demo's output carries none of it.
    assert "put object" not in out + err and "qcloud_cos" not in out + err
    with Image.open(job["output_path"]) as image:  # left on disk for the user to open
        assert (image.format, image.size) == ("WEBP", (240, 320))
        red, green, _ = image.convert("RGB").getpixel((226, 20))  # the top-left marker, rotated to top right
        assert red > 180 and green < 90

"""The "Tencent CI" tab in a real deployment, seen in headless Chromium (Playwright).

The api-server loads the plugin from the installed package's ``airflow.plugins`` entry point
(nothing is copied into a plugins folder). One run of ``e2e_ui_jobs`` gives a finished
operator task, a failed job and a batch; each tab is opened as a user would, through the task
instance page. Screenshots and HTML go to ``artifacts/ui/``; with ``CI_UPDATE_SCREENSHOTS=1``
the screenshots also replace the ones in ``docs/images/`` (so a normal run leaves git clean).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_ci.emulator.pytest_plugin import DEFAULT_BUCKET
from airflow_provider_ci.emulator.samples import sample_jpeg
from tests.deployment.airflow_deployment import Deployment
from tests.deployment.test_ui import UI, browser, keep  # noqa: F401  (the module-scoped browser fixture)
from tests.support import png

pytestmark = [pytest.mark.deployment, pytest.mark.airflow_e2e]

DAG_ID = "e2e_ui_jobs"
DOCS_IMAGES = Path(__file__).parents[2] / "docs" / "images"


@pytest.fixture(scope="module")
def finished_run(deployment: Deployment, sts_emulator: Any) -> str:
    sts_emulator.put_object(DEFAULT_BUCKET, "ui/deer.jpg", sample_jpeg())
    sts_emulator.put_object(DEFAULT_BUCKET, "ui/cat.png", png(30, 20))
    for n in range(3):
        sts_emulator.put_object(DEFAULT_BUCKET, f"ui/batch/{n}.png", png(120 + 20 * n, 90, (40 * n, 110, 170)))
    deployment.wait_for_dags([DAG_ID])
    run_id = deployment.trigger(DAG_ID)
    assert deployment.wait_for_run(DAG_ID, run_id) == "failed"  # the "fails" task's job fails, as meant
    states = {ti["task_id"]: ti["state"] for ti in deployment.task_instances(DAG_ID, run_id)}
    assert states == {"process": "success", "watch": "success", "fails": "failed", "batch": "success",
                      "no_ci_job": "success"}, states  # fmt: skip
    return run_id


@pytest.fixture
def page(browser: Any, deployment: Deployment) -> Any:  # noqa: F811
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.goto(f"{deployment.base_url}/auth/token/login?next=/")
    yield page
    context.close()


def open_tab(page: Any, deployment: Deployment, run_id: str, task_id: str) -> Any:
    """The task instance page, then its "Tencent CI" tab; the framed view."""
    page.goto(f"{deployment.base_url}/dags/{DAG_ID}/runs/{run_id}/tasks/{task_id}")
    page.get_by_role("tab", name="Tencent CI").or_(page.get_by_role("link", name="Tencent CI")).first.click()
    frame = page.frame_locator("iframe").first
    try:
        frame.locator("h1").wait_for()
    except Exception:
        keep(page, f"tencent-ci-tab-{task_id}-failed")
        raise
    return frame


def shoot(page: Any, name: str, doc_name: str) -> None:
    keep(page, name)
    if os.environ.get("CI_UPDATE_SCREENSHOTS") == "1":
        DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(UI / f"{name}.png", DOCS_IMAGES / doc_name)


def test_the_api_server_lists_the_plugin(deployment):
    plugins = deployment.api("GET", "/plugins")["plugins"]
    (ours,) = [p for p in plugins if p["name"] == "tencent_ci"]
    assert ours["external_views"][0]["name"] == "Tencent CI"
    assert "airflow_provider_ci" in str(ours["source"])


def test_an_operator_tab_shows_the_state_and_both_thumbnails(page, deployment, finished_run):
    frame = open_tab(page, deployment, finished_run, "process")
    assert frame.locator("#job-state").inner_text().strip() == "Success"
    for image in ("#input-thumbnail", "#output-thumbnail"):
        frame.locator(image).wait_for()
        page.wait_for_function(  # each <img> really loaded an image
            "sel => { const f = document.querySelector('iframe'); const i = f && f.contentDocument.querySelector(sel);"
            " return i && i.complete && i.naturalWidth > 0; }",
            arg=image,
        )
    widths = [
        page.evaluate("sel => document.querySelector('iframe').contentDocument.querySelector(sel).naturalWidth", image)
        for image in ("#input-thumbnail", "#output-thumbnail")
    ]
    assert widths == [320, 240]  # 640x480 bounded to 320; the output (rotated, halved) is 240x320
    assert "WEBP 240×320" in frame.locator("body").inner_text()
    shoot(page, "tencent-ci-job", "ui-tencent-ci-job.png")


def test_a_batch_tab_shows_the_counts(page, deployment, finished_run):
    frame = open_tab(page, deployment, finished_run, "batch")
    counts = frame.locator("#counts")
    assert counts.locator("[data-state=Success] b").inner_text() == "3"
    assert counts.locator("[data-state=Failed] b").inner_text() == "1"
    assert "4 / 4 done" in frame.locator("#progress").inner_text()
    shoot(page, "tencent-ci-batch", "ui-tencent-ci-batch.png")


def test_a_failed_job_tab_shows_its_code_and_message(page, deployment, finished_run):
    frame = open_tab(page, deployment, finished_run, "fails")
    assert frame.locator("#job-state").inner_text().strip() == "Failed"
    assert frame.locator("#job-code").inner_text() == "InputObjectNotExist"
    assert "ui/missing.jpg" in frame.locator("#job-message").inner_text()
    shoot(page, "tencent-ci-failed", "ui-tencent-ci-failed.png")

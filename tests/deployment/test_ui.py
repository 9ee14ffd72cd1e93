"""The Airflow UI in a real browser (headless Chromium driven by Playwright) against the deployment.

Screenshots and the HTML of every page looked at are written to ``artifacts/ui/`` (CI keeps
them; the shutdown test scans them for secrets). The browser is the system Chromium that
``make browser`` installs; without one the tests skip, unless ``CI_REQUIRE_BROWSER=1``.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest

from airflow_provider_ci.emulator.pytest_plugin import DEFAULT_BUCKET, DEFAULT_REGION
from tests.deployment.airflow_deployment import Deployment, wait_for
from tests.deployment.conftest import ARTIFACTS
from tests.support import png

pytestmark = [pytest.mark.deployment, pytest.mark.airflow_e2e]

UI = ARTIFACTS / "ui"
FIELDS = {"SecretId", "SecretKey", "Region", "Bucket", "Session token", "Scheme", "Endpoint URL", "Max requests/s"}


def chromium() -> str | None:
    return os.environ.get("CI_CHROMIUM") or next(
        filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None
    )


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    executable = chromium()
    if executable is None:
        if os.environ.get("CI_REQUIRE_BROWSER") == "1":
            pytest.fail("no Chromium found; `make browser` installs it")
        pytest.skip("no Chromium found; `make browser` installs it")
    sync_api = pytest.importorskip("playwright.sync_api")
    UI.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Any, deployment: Deployment) -> Iterator[Any]:
    """A page logged in as the admin (the deployment's auth manager lets everyone in as admin)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.goto(f"{deployment.base_url}/auth/token/login?next=/")
    yield page
    context.close()


def keep(page: Any, name: str) -> None:
    """Screenshot and HTML of what the browser shows now, as artifacts."""
    page.screenshot(path=str(UI / f"{name}.png"), full_page=True)
    (UI / f"{name}.html").write_text(page.content())


def test_a_new_tencent_ci_connection_form_shows_our_fields_and_labels(page, deployment):
    page.goto(f"{deployment.base_url}/connections")
    page.get_by_role("button", name="Add Connection").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_role("combobox").first.click()
    page.keyboard.type("Tencent Cloud Infinite")
    page.get_by_role("option", name="Tencent Cloud Infinite").click()
    dialog.get_by_text("Extra Fields", exact=True).click()
    dialog.get_by_text("Job ids per poll").wait_for()
    keep(page, "connection-form-new")

    labels = _labels(dialog)
    assert labels >= FIELDS | {"Job ids per poll"}, sorted(labels)
    assert not labels & {"Host", "Port", "Schema", "Login", "Password"}, sorted(labels)  # hidden or relabelled
    for name in ("password", "element_token"):  # SecretKey and the STS token are typed blind
        assert dialog.locator(f"input[name='{name}']").get_attribute("type") == "password", name


def test_a_stored_connection_shows_its_secrets_masked(page, deployment, emulator):
    """The deployment's own STS credentials, stored as a DB connection (env connections are not listed)."""
    if _exists(deployment, "tencent_ci_ui"):
        deployment.api("DELETE", "/connections/tencent_ci_ui")
    credentials = emulator.airflow_connection(DEFAULT_BUCKET, DEFAULT_REGION)
    deployment.api(
        "POST",
        "/connections",
        json={
            "connection_id": "tencent_ci_ui",
            "conn_type": "tencent_ci",
            "login": credentials["login"],
            "password": credentials["password"],
            "extra": json.dumps(credentials["extra"]),
        },
    )
    page.goto(f"{deployment.base_url}/connections")
    page.get_by_role("row").filter(has_text="tencent_ci_ui").get_by_role("button", name="Edit Connection").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_text("Extra Fields", exact=True).click()
    dialog.get_by_text("Session token", exact=True).wait_for()
    keep(page, "connection-form-edit")

    # Airflow's edit form lists only the extra fields the connection has.
    assert _labels(dialog) >= {"SecretId", "SecretKey", "Region", "Bucket", "Session token", "Endpoint URL"}
    for name in ("password", "element_token"):
        field = dialog.locator(f"input[name='{name}']")
        assert field.get_attribute("type") == "password", name
        assert field.input_value() not in (emulator.secret_key, emulator.token), f"{name} shows its secret"
    assert emulator.secret_key not in page.content() and str(emulator.token) not in page.content()


def _labels(dialog: Any) -> set[str]:
    return {text.split("\n")[0].strip() for text in dialog.locator("label").all_inner_texts()}


def _exists(deployment: Deployment, connection_id: str) -> bool:
    try:
        deployment.api("GET", f"/connections/{connection_id}")
    except RuntimeError:
        return False
    return True


def test_a_finished_task_shows_the_job_link_and_its_log_the_job_states(page, deployment, emulator):
    dag_id = "example_ci_rule_then_sensor"
    emulator.put_object(DEFAULT_BUCKET, "input/deer.jpg", png(64, 48))
    emulator.pause_queue()
    run_id = deployment.trigger(dag_id)
    wait_for("the sensor's trigger to see the paused queue", lambda: _trigger_saw(deployment, run_id, "is Pause"), 120)
    emulator.resume_queue()
    assert deployment.wait_for_run(dag_id, run_id) == "success"
    job_id = deployment.api(
        "GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/rotate_shrink_webp/xcomEntries/job_id"
    )["value"]
    run_page = f"{deployment.base_url}/dags/{dag_id}/runs/{run_id}/tasks"

    page.goto(f"{run_page}/rotate_shrink_webp/details")  # the task instance's Details tab lists its links
    link = page.get_by_role("link", name="Tencent CI Job")
    link.wait_for()
    keep(page, "task-extra-link")
    href = link.get_attribute("href") or ""
    assert href == f"https://console.cloud.tencent.com/ci/bucket?bucket={DEFAULT_BUCKET}&region={DEFAULT_REGION}", href

    page.goto(f"{run_page}/wait_for_job")
    page.get_by_text(f"CI job {job_id} ended Success").wait_for()
    keep(page, "task-log")
    # The wait's story as the user reads it: the paused queue, the end, then the result.
    log = page.inner_text("body")
    assert f"CI job {job_id} is Pause" in log
    assert f"CI job {job_id} succeeded: output/rule/deer-rotated.webp (WEBP, 24x32" in log, log[-3000:]


def _trigger_saw(deployment: Deployment, run_id: str, text: str) -> bool:
    waits = deployment.trigger_logs("example_ci_rule_then_sensor", run_id)
    return any(text in log for logs in waits.values() for log in logs.values())

"""The "Tencent CI" plugin on Airflow's own API server app: routes, access control, thumbnails.

Task instances and XComs are real (``tests/dags/e2e_ui.py`` run through ``dag.test()`` against
the emulator); the app is ``airflow.api_fastapi.app.create_app()``, which mounts the plugin from
its ``airflow.plugins`` entry point; users and tokens come from the configured auth manager.
"""

from __future__ import annotations

import io
import re
from importlib.metadata import entry_points
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from PIL import Image

from airflow_provider_ci.plugins import thumbnails
from airflow_provider_ci.plugins.ui import CloudInfinitePlugin
from tests.plugins import auth_manager
from tests.plugins.conftest import PREFIX, Runs, token

pytestmark = pytest.mark.airflow_e2e

JOBS = "e2e_ui_jobs"
OTHER = "e2e_ui_other"


def ti_path(runs: Runs, dag_id: str, task_id: str) -> str:
    return f"{quote(dag_id)}/{quote(runs.run_ids[dag_id], safe='')}/{quote(task_id)}"


def routes(runs: Runs, dag_id: str = JOBS, task_id: str = "process") -> dict[str, str]:
    """Every route of the app, for one task instance (the thumbnail of its input)."""
    ti = ti_path(runs, dag_id, task_id)
    job_id = runs.xcom(dag_id, task_id, "job_id") or "c0"
    return {
        "page": f"{PREFIX}/task-instances/{ti}?map_index=-1",
        "json": f"{PREFIX}/api/task-instances/{ti}?map_index=-1",
        "thumbnail": f"{PREFIX}/thumbnails/{ti}?{urlencode({'job_id': job_id, 'key': 'ui/deer.jpg'})}",
    }


def bearer(username: str = "admin", role: str | None = "admin") -> dict[str, str]:
    return {"Authorization": f"Bearer {token(username, role)}"}


def cos_reads(runs: Runs) -> list[Any]:
    return [r for r in runs.emulator.requests if ".cos." in r.host]


def ci_reads(runs: Runs) -> list[Any]:
    return [r for r in runs.emulator.requests if ".ci." in r.host]


# -- registration --------------------------------------------------------------------------------------


def test_the_plugin_is_registered_through_the_airflow_plugins_entry_point():
    (entry,) = [e for e in entry_points(group="airflow.plugins") if e.value.startswith("airflow_provider_ci.")]
    assert entry.load() is CloudInfinitePlugin


def test_the_api_server_lists_the_plugin_its_app_and_its_task_instance_view(client):
    plugins = client.get("/api/v2/plugins", headers=bearer()).json()["plugins"]
    (ours,) = [p for p in plugins if p["name"] == "tencent_ci"]
    assert [app["url_prefix"] for app in ours["fastapi_apps"]] == [PREFIX]
    (view,) = ours["external_views"]
    assert (view["name"], view["destination"]) == ("Tencent CI", "task_instance")
    assert not view["href"].startswith("/")
    assert all(f"{{{name}}}" in view["href"] for name in ("DAG_ID", "RUN_ID", "TASK_ID", "MAP_INDEX"))


# -- access control -------------------------------------------------------------------------------------


@pytest.mark.parametrize("route", ["page", "json", "thumbnail"])
def test_every_route_needs_an_authenticated_user(client, ui_runs, route):
    response = client.get(routes(ui_runs)[route])
    assert response.status_code == 401
    assert ui_runs.emulator.requests == []


@pytest.mark.parametrize("route", ["page", "json", "thumbnail"])
def test_the_ui_token_cookie_authenticates_like_the_bearer_header(client, ui_runs, route):
    client.cookies.set("_token", token("viewer", "viewer"))
    assert client.get(routes(ui_runs)[route]).status_code == 200


@pytest.mark.parametrize("route", ["page", "json", "thumbnail"])
def test_a_user_without_access_to_the_dag_is_refused_and_nothing_is_read(client, ui_runs, route):
    auth_manager.ASKED.clear()
    response = client.get(routes(ui_runs)[route], headers=bearer("limited", "viewer"))
    assert response.status_code == 403
    assert ui_runs.emulator.requests == []  # neither CI nor COS
    # The auth manager was asked about this DAG (not a global permission).
    assert ("limited", "GET", "TASK_INSTANCE", JOBS) in auth_manager.ASKED


def test_the_same_user_reads_the_dag_it_is_allowed(client, ui_runs):
    auth_manager.ASKED.clear()
    response = client.get(routes(ui_runs, OTHER)["json"], headers=bearer("limited", "viewer"))
    assert response.status_code == 200, response.text
    assert {("limited", "GET", entity, OTHER) for entity in ("TASK_INSTANCE", "XCOM")} <= set(auth_manager.ASKED)


def test_a_user_without_a_role_is_refused(client, ui_runs):
    assert client.get(routes(ui_runs)["json"], headers=bearer("nobody", None)).status_code == 403


# -- what is not there ----------------------------------------------------------------------------------


@pytest.mark.parametrize("route", ["page", "json"])
def test_a_task_with_no_ci_job_is_404(client, ui_runs, route):
    response = client.get(routes(ui_runs, task_id="no_ci_job")[route], headers=bearer())
    assert response.status_code == 404
    assert "no Tencent CI job" in response.text
    assert ui_runs.emulator.requests == []


def test_an_unknown_task_instance_is_404(client, ui_runs):
    ti = ti_path(ui_runs, JOBS, "process")
    assert client.get(f"{PREFIX}/api/task-instances/{ti}?map_index=3", headers=bearer()).status_code == 404
    missing = f"{PREFIX}/api/task-instances/{JOBS}/manual__2000-01-01/process"
    assert client.get(missing, headers=bearer()).status_code == 404


# -- the single-job views ---------------------------------------------------------------------------------


def test_a_finished_job_is_shown_from_what_the_task_recorded_without_asking_ci(client, ui_runs):
    body = client.get(routes(ui_runs)["json"], headers=bearer()).json()
    (job,) = body["jobs"]
    assert job["JobId"] == ui_runs.xcom(JOBS, "process", "job_id")
    assert job["State"] == "Success"
    assert body["summary"]["result"] == {
        "Object": "ui/out/deer.webp", "Format": "WEBP", "Width": 240, "Height": 320, "Size": job["Operation"][
            "PicProcessResult"]["ProcessResult"]["Size"], "Etag": job["Operation"]["PicProcessResult"]["ProcessResult"][
            "Etag"],
    }  # fmt: skip
    assert body["summary"]["process_rule"] == "imageMogr2/rotate/90/thumbnail/!50p/format/webp"
    assert body["summary"]["console_url"] == (
        "https://console.cloud.tencent.com/ci/bucket?bucket=examplebucket-1250000000&region=ap-chongqing"
    )
    assert job["input_preview_url"].startswith(f"{PREFIX}/thumbnails/")
    assert "key=ui%2Fout%2Fdeer.webp" in job["output_preview_url"]
    assert ci_reads(ui_runs) == [] and body["summary"]["live_requests"] == 0


def test_a_failed_job_shows_code_message_and_request_id_from_one_live_lookup(client, ui_runs):
    body = client.get(routes(ui_runs, task_id="fails")["json"], headers=bearer()).json()
    (job,) = body["jobs"]
    assert (job["State"], job["Code"]) == ("Failed", "InputObjectNotExist")
    assert "ui/missing.jpg" in job["Message"] and job["RequestId"]
    assert job["output_preview_url"] is None  # no output object to show
    assert [r.path for r in ci_reads(ui_runs)] == [f"/jobs/{job['JobId']}"]

    page = client.get(routes(ui_runs, task_id="fails")["page"], headers=bearer()).text
    assert "InputObjectNotExist" in page and "does not exist" in page and job["JobId"] in page


def test_the_sensor_shows_the_job_it_waited_for(client, ui_runs):
    body = client.get(routes(ui_runs, task_id="watch")["json"], headers=bearer()).json()
    assert body["jobs"][0]["JobId"] == ui_runs.xcom(JOBS, "process", "job_id")
    assert body["summary"]["operator"] == "CloudInfiniteJobSensor"


def test_the_page_shows_state_times_rule_keys_and_both_thumbnails(client, ui_runs):
    response = client.get(routes(ui_runs)["page"], headers=bearer())
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "frame-ancestors 'self'" in response.headers["content-security-policy"]
    page = response.text
    for text in ("Success", "ui/deer.jpg", "ui/out/deer.webp", "imageMogr2/rotate/90", "WEBP 240×320", "Created"):
        assert text in page, text
    assert 'id="input-thumbnail"' in page and 'id="output-thumbnail"' in page


# -- thumbnails ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "size", "content_type"),
    [("ui/deer.jpg", (320, 240), "image/jpeg"), ("ui/out/deer.webp", (240, 320), "image/jpeg")],
)
def test_a_thumbnail_is_bounded_re_encoded_and_cacheable(client, ui_runs, key, size, content_type):
    job_id = ui_runs.xcom(JOBS, "process", "job_id")
    query = urlencode({"job_id": job_id, "key": key})
    response = client.get(f"{PREFIX}/thumbnails/{ti_path(ui_runs, JOBS, 'process')}?{query}", headers=bearer())
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == content_type
    assert "max-age" in response.headers["cache-control"] and response.headers["etag"]
    image = Image.open(io.BytesIO(response.content))
    assert image.size == size and max(image.size) <= thumbnails.MAX_SIDE
    (read,) = cos_reads(ui_runs)
    assert (read.method, read.path) == ("GET", f"/{key}")


@pytest.mark.parametrize(
    "key",
    [
        "ui/secret/other.jpg",  # in the bucket, in no job of this task instance
        "ui/batch/0.png",  # another task's input
        "../ui/deer.jpg",
        "ui/../ui/secret/other.jpg",
        "ui/./deer.jpg",
        "/ui/deer.jpg",
        "ui\\deer.jpg",
        "ui//deer.jpg",
        "ui%2Fdeer.jpg",  # an encoded slash that survived one decoding
        "ui%2fsecret%2fother.jpg",
        "ui/%2e%2e/secret/other.jpg",
        "ui/deer.jpg\x00",
    ],
)
def test_keys_outside_the_task_instances_jobs_are_refused_before_any_cos_read(client, ui_runs, key):
    job_id = ui_runs.xcom(JOBS, "process", "job_id")
    query = urlencode({"job_id": job_id, "key": key})
    response = client.get(f"{PREFIX}/thumbnails/{ti_path(ui_runs, JOBS, 'process')}?{query}", headers=bearer())
    assert response.status_code in (400, 404), (key, response.status_code)
    assert cos_reads(ui_runs) == []


def test_a_raw_encoded_slash_in_the_path_is_refused(client, ui_runs):
    job_id = ui_runs.xcom(JOBS, "process", "job_id")
    url = f"{PREFIX}/thumbnails/{ti_path(ui_runs, JOBS, 'process')}?job_id={job_id}&key=ui%252Fdeer.jpg"
    assert client.get(url, headers=bearer()).status_code == 400
    assert cos_reads(ui_runs) == []


@pytest.mark.parametrize("whose", ["another task", "another dag", "unknown", "not an id"])
def test_job_ids_that_are_not_this_task_instances_are_refused(client, ui_runs, whose):
    batch_job = ui_runs.xcom(JOBS, "batch", "jobs")[0]
    job_id, key = {
        "another task": (batch_job["job_id"], batch_job["input_object"]),
        "another dag": (ui_runs.xcom(OTHER, "process", "job_id"), "ui/cat.png"),
        "unknown": ("c" + "0" * 32, "ui/deer.jpg"),
        "not an id": ("../../jobs", "ui/deer.jpg"),
    }[whose]
    query = urlencode({"job_id": job_id, "key": key})
    response = client.get(f"{PREFIX}/thumbnails/{ti_path(ui_runs, JOBS, 'process')}?{query}", headers=bearer())
    assert response.status_code in (404, 422), response.text
    assert ui_runs.emulator.requests == []


def test_the_refusal_rules():
    assert thumbnails.refusal("in/a b/c.jpg") is None
    cases = [("", "empty"), ("a/../b", "'..'"), ("/a", "'/'"), ("a%5Cb", "percent-encoded"), ("a\tb", "control")]
    for key, why in cases:
        assert why in str(thumbnails.refusal(key)), key


def test_an_object_that_is_not_an_image_is_415_not_a_crash():
    with pytest.raises(thumbnails.PreviewError) as caught:
        thumbnails.shrink(b"not an image")
    assert caught.value.status == 415


def test_no_secret_signature_or_authorization_in_any_page_url_header_or_log(client, ui_runs, caplog):
    caplog.set_level("DEBUG")
    secret = ui_runs.emulator.secret_key
    seen: list[str] = []
    for task_id in ("process", "watch", "fails", "batch"):
        for route in ("page", "json"):
            response = client.get(routes(ui_runs, task_id=task_id)[route], headers=bearer())
            seen += [response.text, str(response.headers)]
        for job in client.get(routes(ui_runs, task_id=task_id)["json"], headers=bearer()).json()["jobs"]:
            for url in filter(None, (job["input_preview_url"], job["output_preview_url"])):
                response = client.get(url, headers=bearer())
                seen += [url, str(response.headers)]
    assert len(cos_reads(ui_runs)) >= 6  # the thumbnails were really read from COS
    seen.append(caplog.text)
    for text in seen:
        assert secret not in text
        assert not re.search(r"q-signature=[0-9a-fA-F]", text)  # cos-python-sdk-v5's DEBUG lines are redacted


def test_the_unreplaced_map_index_placeholder_of_an_unmapped_task_page_means_minus_one(client, ui_runs):
    """Airflow 3.3's UI leaves ``{MAP_INDEX}`` in the href on the page of a task that is not mapped."""
    url = routes(ui_runs)["page"].replace("map_index=-1", "map_index={MAP_INDEX}")
    assert client.get(url, headers=bearer()).status_code == 200
    assert client.get(url.replace("{MAP_INDEX}", "{DAG_ID}"), headers=bearer()).status_code == 422


def test_a_waiting_job_is_shown_live_and_its_output_once_it_exists(client, ui_runs):
    """A task that recorded only its job id (as the operator does right after submitting)."""
    import time

    from airflow.models.xcom import XComModel

    from airflow_provider_ci.hooks.ci import CloudInfiniteHook

    emulator = ui_runs.emulator
    emulator.pause_queue()
    ids = {"dag_id": JOBS, "task_id": "no_ci_job", "run_id": ui_runs.run_ids[JOBS], "map_index": -1}
    try:
        job = CloudInfiniteHook().submit_pic_process_job(
            input_object="ui/cat.png", output_object="ui/out/live.jpg", process_rule="imageMogr2/format/jpg"
        )
        XComModel.set(key="job_id", value=job["JobId"], **ids)
        url = routes(ui_runs, task_id="no_ci_job")["json"]
        waiting = client.get(url, headers=bearer()).json()["jobs"][0]
        assert (waiting["State"], waiting["output_preview_url"]) == ("Pause", None)  # its queue is paused
        assert waiting["input_preview_url"]
        emulator.resume_queue()
        deadline = time.monotonic() + 30
        while (done := client.get(url, headers=bearer()).json()["jobs"][0])["State"] != "Success":
            assert time.monotonic() < deadline, done["State"]
            time.sleep(0.2)
        assert client.get(done["output_preview_url"], headers=bearer()).headers["content-type"] == "image/jpeg"
    finally:
        emulator.resume_queue()
        XComModel.clear(**ids)


def test_an_unusable_connection_shows_the_recorded_state_and_says_why(airflow_db, monkeypatch):
    from airflow_provider_ci.plugins import records, views

    monkeypatch.delenv("AIRFLOW_CONN_TENCENT_CI_NOWHERE", raising=False)
    job = records.RecordedJob("c1", "in/a.jpg", "out/a.jpg")
    record = records.TaskRecord(
        "d", "r", "t", -1, "CloudInfinitePicProcessOperator", "failed", None, None, "tencent_ci_nowhere", jobs=[job]
    )
    body = views.single(record, lambda job_id, key: f"/t?{key}")
    assert body["jobs"][0]["JobId"] == "c1" and body["jobs"][0]["input_preview_url"] == "/t?in/a.jpg"
    assert body["summary"]["live_error"].startswith("live state unavailable: connection 'tencent_ci_nowhere'")


def test_each_mapped_task_instance_shows_and_serves_only_its_own_job(client, ui_runs):
    ti = ti_path(ui_runs, OTHER, "mapped")
    jobs = {
        n: client.get(f"{PREFIX}/api/task-instances/{ti}?map_index={n}", headers=bearer()).json()["jobs"][0]
        for n in (0, 1)
    }
    assert jobs[0]["JobId"] != jobs[1]["JobId"]
    assert [jobs[n]["Operation"]["Output"]["Object"] for n in (0, 1)] == ["ui/out/cat-0.jpg", "ui/out/cat-1.jpg"]
    own = client.get(jobs[1]["output_preview_url"], headers=bearer())
    assert own.status_code == 200 and "map_index=1" in jobs[1]["output_preview_url"]
    ui_runs.emulator.clear_requests()
    query = urlencode({"map_index": 1, "job_id": jobs[0]["JobId"], "key": "ui/out/cat-0.jpg"})
    assert client.get(f"{PREFIX}/thumbnails/{ti}?{query}", headers=bearer()).status_code == 404
    assert cos_reads(ui_runs) == []

"""The batch view: counts, progress, server-side paging and filtering, bounded live lookups.

The small batch is the real one of ``e2e_ui_jobs`` (3 images and a missing one). The
10,000-item batch is that task's XCom ``jobs`` shape written for another real task instance:
submitting 10,000 real jobs would make this a benchmark (see ``bench/ui_batch.py``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest

from tests.plugins.conftest import PREFIX, Runs
from tests.plugins.test_ui_plugin import JOBS, bearer, ci_reads, ti_path

pytestmark = pytest.mark.airflow_e2e

BIG = 10_000


def get(client: Any, runs: Runs, task_id: str = "batch", *, html: bool = False, **params: Any) -> Any:
    route = "task-instances" if html else "api/task-instances"
    response = client.get(f"{PREFIX}/{route}/{ti_path(runs, JOBS, task_id)}?{urlencode(params)}", headers=bearer())
    assert response.status_code == 200, response.text
    return response.text if html else response.json()


def test_counts_progress_and_the_failure_with_its_code(client, ui_runs):
    body = get(client, ui_runs)
    summary = body["summary"]
    assert summary["kind"] == "batch" and summary["final"] is True
    assert summary["by_state"] == {"Failed": 1, "Success": 3}
    assert summary["progress"]["done"] == summary["progress"]["total"] == 4
    (failed,) = [job for job in body["jobs"] if job["State"] == "Failed"]
    assert failed["Code"] == "InputObjectNotExist" and failed["output_preview_url"] is None
    assert all(job["output_preview_url"] for job in body["jobs"] if job["State"] == "Success")


def test_paging_asks_ci_only_for_the_rows_shown(client, ui_runs):
    first = get(client, ui_runs, per_page=2)
    assert [first["summary"][k] for k in ("page", "pages", "matched")] == [1, 2, 4]
    (request,) = ci_reads(ui_runs)
    assert request.path == "/jobs/" + ",".join(job["JobId"] for job in first["jobs"])
    second = get(client, ui_runs, per_page=2, page=2)
    assert {j["JobId"] for j in first["jobs"]}.isdisjoint(j["JobId"] for j in second["jobs"])


def test_filters_by_state_and_by_input(client, ui_runs):
    (failed,) = get(client, ui_runs, state="Failed")["jobs"]
    assert failed["Input"]["Object"] == "ui/missing.jpg"
    (one,) = get(client, ui_runs, q="batch/1")["jobs"]
    assert one["Input"]["Object"] == "ui/batch/1.png"


def test_the_page_shows_counts_progress_and_the_table(client, ui_runs):
    page = get(client, ui_runs, html=True)
    assert 'id="counts"' in page and "4 / 4 done" in page
    assert 'data-state="Failed"><b>1</b>' in page and 'data-state="Success"><b>3</b>' in page
    assert "InputObjectNotExist" in page and page.count('alt="output"') == 3


@pytest.fixture
def big_batch(ui_runs: Runs) -> Iterator[list[dict[str, Any]]]:
    """10,000 recorded items on the ``no_ci_job`` task instance: 3 real jobs, the rest unknown to CI."""
    from airflow.models.xcom import XComModel

    real = ui_runs.xcom(JOBS, "batch", "jobs")[:3]
    items = [
        {
            "input_object": f"big/{n:05d}.jpg",
            "output_object": f"big/out/{n:05d}.webp",
            "job_id": real[n]["job_id"] if n < 3 else f"c{n:032x}",
            "state": "Failed" if n % 100 == 99 else ("Running" if n % 7 == 6 else "Success"),
            **({"code": "InputObjectNotExist", "message": "gone"} if n % 100 == 99 else {}),
        }
        for n in range(BIG)
    ]
    ids = {"dag_id": JOBS, "task_id": "no_ci_job", "run_id": ui_runs.run_ids[JOBS]}
    XComModel.set(key="jobs", value=items, map_index=-1, **ids)
    yield items
    _delete(ids)


def _delete(ids: dict[str, str]) -> None:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import delete

    with create_session() as session:
        session.execute(
            delete(XComModel).where(
                XComModel.dag_id == ids["dag_id"],
                XComModel.task_id == ids["task_id"],
                XComModel.run_id == ids["run_id"],
                XComModel.key == "jobs",
            )
        )


@pytest.mark.parametrize("per_page", [50, 200])
def test_a_10000_item_batch_is_paged_on_the_server(client, ui_runs, big_batch, per_page):
    body = get(client, ui_runs, "no_ci_job", per_page=per_page)
    summary = body["summary"]
    assert summary["total"] == BIG and sum(summary["by_state"].values()) == BIG
    assert summary["pages"] == BIG // per_page and len(body["jobs"]) == per_page
    assert summary["live_requests"] == len(ci_reads(ui_runs)) == math.ceil(per_page / 50)
    assert "no longer knows" in summary["live_error"]  # the made-up ids: recorded state is shown

    page = get(client, ui_runs, "no_ci_job", html=True, per_page=per_page, page=summary["pages"])
    assert page.count("<tr>") == per_page + 1  # header row + the last page's rows, never all 10,000
    assert f"big/{BIG - 1:05d}.jpg" in page and "big/00000.jpg" not in page


def test_a_10000_item_batch_filters_on_the_server(client, ui_runs, big_batch):
    failed = get(client, ui_runs, "no_ci_job", state="Failed", per_page=200)
    assert failed["summary"]["matched"] == BIG // 100
    assert {job["Code"] for job in failed["jobs"]} == {"InputObjectNotExist"}
    found = get(client, ui_runs, "no_ci_job", q="big/04242")
    assert [job["Input"]["Object"] for job in found["jobs"]] == ["big/04242.jpg"]

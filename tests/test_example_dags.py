"""The example DAGs: they parse cheaply, and run end to end through real Airflow against the emulator.

``dag.test()`` runs each task in this process and each trigger inline, so the deferrable
paths are exercised through Airflow's own serialize/re-create of the trigger. Poll intervals
are shortened on the loaded tasks; nothing else is changed.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from PIL import Image

from airflow_provider_ci.emulator.pytest_plugin import DEFAULT_BUCKET
from tests.support import jpeg, png

pytestmark = pytest.mark.airflow_e2e

DAGS = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
DAG_IDS = {
    "example_ci_template",
    "example_ci_rule_then_sensor",
    "example_ci_fan_out",
    "example_ci_batch",
    "example_cos_wait_for_images",
    "example_cos_new_images",
    "example_ci_assets_producer",
    "example_ci_assets_consumer",
}
FAST = 0.2
LISTED = "e2e-examples/"


def dag_bag(*, serialize: bool = False):
    """The example DAGs; with ``serialize``, also written to the DB as the dag-processor would.

    ``dag.test()`` syncs the bundle itself from Airflow 3.2 on; 3.1 expects it done already.
    """
    try:
        from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db
    except ImportError:  # Airflow < 3.2
        from airflow.models.dagbag import DagBag, sync_bag_to_db  # type: ignore[no-redef]
    bag = DagBag(dag_folder=str(DAGS))
    if serialize:
        from airflow.dag_processing.bundles.manager import DagBundlesManager

        DagBundlesManager().sync_bundles_to_db()
        sync_bag_to_db(bag, "dags-folder", None)
    return bag


def test_examples_parse_with_no_connection_lookup_and_at_most_one_query(airflow_db, monkeypatch):
    from airflow.sdk import BaseHook
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    lookups: list[str] = []
    monkeypatch.setattr(BaseHook, "get_connection", classmethod(lambda cls, conn_id: lookups.append(conn_id)))
    queries: list[str] = []

    def count(conn, cursor, statement, *args):
        queries.append(statement)

    event.listen(Engine, "before_cursor_execute", count)
    try:
        bag = dag_bag()
    finally:
        event.remove(Engine, "before_cursor_execute", count)
    assert bag.import_errors == {}
    assert set(bag.dag_ids) >= DAG_IDS
    assert lookups == []
    assert len(queries) <= 1, queries
    for dag_id in DAG_IDS:  # each says what it needs to run
        assert "Needs:" in Path(bag.get_dag(dag_id).fileloc).read_text()


@pytest.fixture
def inputs(ci_emulator, ci_emulator_conn):
    ci_emulator.put_object(DEFAULT_BUCKET, "input/deer.jpg", jpeg(64, 48))
    ci_emulator.put_object(DEFAULT_BUCKET, "input/cat.png", png(30, 20))
    ci_emulator.put_object(DEFAULT_BUCKET, "input/notes.txt", b"not an image, not listed")
    # The listing examples get a prefix of their own: other tests leave images under input/.
    for key, data in (("deer.jpg", jpeg(64, 48)), ("cat.png", png(30, 20)), ("notes.txt", b"not an image")):
        ci_emulator.put_object(DEFAULT_BUCKET, f"{LISTED}{key}", data)
    return ci_emulator


def _image(emulator, key: str) -> Image.Image:
    return Image.open(io.BytesIO(emulator.get_object(DEFAULT_BUCKET, key)))


def run(dag_id: str, *, deferrable: bool | None = None, conf: dict | None = None):
    """dag.test() one example; returns the DagRun and its task instances' states."""
    from airflow.sdk.definitions.mappedoperator import MappedOperator

    dag = dag_bag(serialize=True).get_dag(dag_id)
    for task in dag.tasks:
        if isinstance(task, MappedOperator):
            task.partial_kwargs["poll_interval"] = FAST
            if deferrable is not None:
                task.partial_kwargs["deferrable"] = deferrable
            continue
        for name in ("poll_interval", "poke_interval"):
            if hasattr(task, name):
                setattr(task, name, FAST)
        if deferrable is not None and hasattr(task, "deferrable"):
            task.deferrable = deferrable
    run = dag.test(run_conf=conf)
    return run, {ti.task_id: ti.state for ti in run.get_task_instances()}


@pytest.mark.parametrize("deferrable", [False, True])
def test_template_example(airflow_db, inputs, deferrable):
    run_, states = run("example_ci_template", deferrable=deferrable)
    assert run_.state == "success", states
    out = _image(inputs, "output/template/deer.webp")
    assert (out.format, out.size) == ("WEBP", (64, 48))  # fits 400x400 and only shrinks
    (template,) = [j for j in inputs.jobs() if j["Operation"].get("TemplateName") == "airflow-example-thumbnail"][-1:]
    assert template["State"] == "Success"


def test_rule_then_sensor_example(airflow_db, inputs):
    run_, states = run("example_ci_rule_then_sensor")
    assert run_.state == "success", states
    out = _image(inputs, "output/rule/deer-rotated.webp")
    assert (out.format, out.size) == ("WEBP", (24, 32))  # rotated 90, then half size
    job_id = _xcom(run_, "rotate_shrink_webp", "job_id")
    assert _xcom(run_, "wait_for_job", "return_value")["JobId"] == job_id  # the sensor read the XCom
    # Airflow stored the extra link the UI shows, computed on the worker after the task ran.
    link = _xcom(run_, "rotate_shrink_webp", "_link_CloudInfiniteJobLink")
    assert link == f"https://console.cloud.tencent.com/ci/bucket?bucket={DEFAULT_BUCKET}&region=ap-chongqing"


def _xcom(run_, task_id: str, key: str):
    import json

    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        value = session.scalar(
            select(XComModel.value).where(
                XComModel.dag_id == run_.dag_id,
                XComModel.run_id == run_.run_id,
                XComModel.task_id == task_id,
                XComModel.key == key,
            )
        )
    try:  # a JSON column on some versions, JSON text on others
        return json.loads(value) if isinstance(value, str) else value
    except ValueError:
        return value


@pytest.mark.parametrize("deferrable", [False, True])
def test_fan_out_example(airflow_db, inputs, deferrable):
    run_, states = run("example_ci_fan_out", deferrable=deferrable, conf={"prefix": LISTED})
    assert run_.state == "success", states
    for key, size in (("output/fan-out/deer.webp", (256, 192)), ("output/fan-out/cat.webp", (256, 171))):
        out = _image(inputs, key)
        assert (out.format, out.size) == ("WEBP", size)


@pytest.mark.parametrize("deferrable", [False, True])
def test_batch_example(airflow_db, inputs, deferrable):
    run_, states = run("example_ci_batch", deferrable=deferrable, conf={"prefix": LISTED})
    assert run_.state == "success", states
    summary = _xcom(run_, "thumbnails", "return_value")
    assert summary["by_state"] == {"Success": summary["total"]}
    assert summary["total"] == 2  # deer.jpg and cat.png; notes.txt is not an image
    assert _image(inputs, "output/batch/cat.webp").format == "WEBP"


@pytest.mark.parametrize("deferrable", [False, True])
def test_a_failed_job_fails_the_run_and_the_log_says_why(airflow_db, inputs, capfd, deferrable):
    inputs.faults.add("job_failed", code="InvalidImageFormat", message="deer.jpg is not decodable (e2e)")
    run_, states = run("example_ci_template", deferrable=deferrable)
    assert run_.state == "failed"
    assert states["thumbnail"] == "failed"
    log = capfd.readouterr().out
    assert "InvalidImageFormat" in log
    assert "deer.jpg is not decodable (e2e)" in log


@pytest.mark.parametrize("deferrable", [False, True])
def test_cos_wait_for_images_example(airflow_db, ci_emulator, ci_emulator_conn, deferrable):
    """The sensor waits (deferred: in the inline trigger) until an image lands, then each is processed."""
    import threading
    import uuid

    prefix = f"e2e-arrivals-{uuid.uuid4().hex[:8]}/"
    ci_emulator.put_object(DEFAULT_BUCKET, f"{prefix}notes.txt", b"not an image")
    looked = threading.Event()

    def land_after_the_first_look() -> None:
        while not looked.wait(0.05):
            if any(r.query.get("prefix") == prefix for r in list(ci_emulator.requests)):
                ci_emulator.put_object(DEFAULT_BUCKET, f"{prefix}deer.jpg", jpeg(64, 48))
                looked.set()

    landing = threading.Thread(target=land_after_the_first_look, daemon=True)
    landing.start()
    try:
        run_, states = run("example_cos_wait_for_images", deferrable=deferrable, conf={"prefix": prefix})
    finally:
        looked.set()
        landing.join()
    assert run_.state == "success", states
    assert _xcom(run_, "wait_for_images", "return_value") == [f"{prefix}deer.jpg"]
    assert _image(ci_emulator, "output/arrived/deer.jpg.webp").format == "WEBP"
    listings = [r for r in ci_emulator.requests if r.method == "GET" and ".cos." in r.host]
    assert len(listings) >= 2 and {r.query["prefix"] for r in listings} == {prefix}  # it waited, in scope


def test_cos_new_images_example_run_by_hand_processes_nothing(airflow_db, ci_emulator, ci_emulator_conn):
    """Without asset events (a manual run) there is nothing to process, and the run still succeeds.
    Runs started by new images are in tests/deployment/test_cos_arrivals.py (a real triggerer)."""
    jobs_before = len(ci_emulator.jobs())
    run_, states = run("example_cos_new_images")
    assert run_.state == "success", states
    assert _xcom(run_, "arrived", "return_value") == []
    assert len(ci_emulator.jobs()) == jobs_before

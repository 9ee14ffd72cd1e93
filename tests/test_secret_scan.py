"""No secret survives a run: after real DAG runs with STS credentials, scan what they left behind.

The SecretKey, the STS token and any ``q-signature`` must appear in none of: the task output
(the task log under dag.test), the metadata DB (XCom values, rendered template fields, trigger
kwargs and next_kwargs, every other text column). Run at DEBUG so the SDK's logs are included.
"""

from __future__ import annotations

import json
import re

import pytest

from airflow_provider_ci.emulator import Emulator
from tests.support import png
from tests.test_example_dags import run

pytestmark = pytest.mark.airflow_e2e

TOKEN = "sts-token-for-the-secret-scan-5f2c9a"
SIGNATURE = re.compile(r"q-signature=[0-9a-f]{40}")


@pytest.fixture
def sts_connection(tmp_path, monkeypatch):
    with Emulator(tmp_path, token=TOKEN, buckets=["examplebucket-1250000000"]) as emulator:
        emulator.put_object("examplebucket-1250000000", "input/deer.jpg", png(40, 30))
        emulator.put_object("examplebucket-1250000000", "input/cat.png", png(20, 10))
        conn = emulator.airflow_connection("examplebucket-1250000000", "ap-chongqing")
        monkeypatch.setenv("AIRFLOW_CONN_TENCENT_CI_DEFAULT", json.dumps(conn))
        monkeypatch.setenv("AIRFLOW__LOGGING__LOGGING_LEVEL", "DEBUG")
        yield emulator, conn


def _database_text() -> str:
    """Every text-like value of every table of the metadata DB."""
    from airflow.settings import engine
    from sqlalchemy import inspect, text

    chunks = []
    with engine.connect() as connection:
        for table in inspect(engine).get_table_names():
            for row in connection.execute(text(f'SELECT * FROM "{table}"')):
                chunks.extend(str(value) for value in row if value is not None)
    return "\n".join(chunks)


def test_no_secret_in_logs_xcom_rendered_fields_or_trigger_kwargs(airflow_db, sts_connection, capfd):
    emulator, conn = sts_connection
    for dag_id, deferrable in (("example_ci_rule_then_sensor", None), ("example_ci_batch", True)):
        run_, states = run(dag_id, deferrable=deferrable)
        assert run_.state == "success", states
    assert len(emulator.jobs()) >= 3  # the runs really went through the token-checking emulator
    captured = capfd.readouterr()
    database = _database_text()
    left_behind = "\n".join([captured.out, captured.err, database])
    # The scan reads what it claims to: job ids in XCom and trigger rows, requests in the task log.
    assert all(job["JobId"] in database for job in emulator.jobs())
    assert "Submitted CI job" in left_behind or "Submitting" in left_behind
    assert conn["password"] not in left_behind
    assert TOKEN not in left_behind
    assert not SIGNATURE.search(left_behind)

"""Real task instances and XComs of ``tests/dags/e2e_ui.py`` (dag.test() against the emulator), and
Airflow's own API server app (plugins mounted from the entry point) behind a TestClient."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from airflow_provider_ci.emulator import Emulator
from airflow_provider_ci.emulator.pytest_plugin import CONN_ENV, DEFAULT_BUCKET, DEFAULT_REGION
from tests.support import jpeg, png

AUTH_MANAGER = "tests.plugins.auth_manager.DagScopedAuthManager"
PREFIX = "/tencent-ci"


@dataclass
class Runs:
    """The finished DAG runs: run ids by DAG id, and the job ids each task recorded."""

    run_ids: dict[str, str]
    emulator: Emulator

    def xcom(self, dag_id: str, task_id: str, key: str) -> Any:
        from airflow.models.xcom import XComModel
        from airflow.utils.session import create_session
        from sqlalchemy import select

        with create_session() as session:
            value = session.scalar(
                select(XComModel.value).where(
                    XComModel.dag_id == dag_id,
                    XComModel.run_id == self.run_ids[dag_id],
                    XComModel.task_id == task_id,
                    XComModel.key == key,
                )
            )
        try:  # a JSON column on some versions, JSON text on others
            return json.loads(value) if isinstance(value, str) else value
        except ValueError:
            return value


def _put_inputs(emulator: Emulator) -> None:
    emulator.put_object(DEFAULT_BUCKET, "ui/deer.jpg", jpeg(640, 480))
    emulator.put_object(DEFAULT_BUCKET, "ui/cat.png", png(30, 20))
    for n in range(3):
        emulator.put_object(DEFAULT_BUCKET, f"ui/batch/{n}.png", png(40 + n, 30, (20 * n, 90, 160)))
    emulator.put_object(DEFAULT_BUCKET, "ui/secret/other.jpg", jpeg(16, 16))  # in the bucket, in no job


@pytest.fixture(scope="session")
def ui_runs(airflow_db: None, ci_emulator: Emulator) -> Runs:
    """e2e_ui_jobs and e2e_ui_other run once for the session (their tasks end success or failed).

    The connection variable is set only while they run: nothing leaks into later tests.
    """
    from tests.test_example_dags import dag_bag

    _put_inputs(ci_emulator)
    run_ids = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(CONN_ENV, json.dumps(ci_emulator.airflow_connection(DEFAULT_BUCKET, DEFAULT_REGION)))
        bag = dag_bag(serialize=True)
        for dag_id in ("e2e_ui_jobs", "e2e_ui_other"):
            run_ids[dag_id] = bag.get_dag(dag_id).test().run_id
    return Runs(run_ids, ci_emulator)


def _auth_settings(patch: pytest.MonkeyPatch) -> None:
    """The test auth manager and its users; set only around app creation and each test using it,
    so that no process a later test starts (the deployment suite's) inherits them."""
    patch.setenv("AIRFLOW__CORE__AUTH_MANAGER", AUTH_MANAGER)
    patch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", "admin:admin,viewer:viewer,limited:viewer")
    # Airflow 3.1.0 signs tokens with an empty issuer list when none is set, which PyJWT refuses.
    patch.setenv("AIRFLOW__API_AUTH__JWT_ISSUER", "airflow-provider-ci-tests")


@pytest.fixture(scope="session")
def airflow_app(airflow_db: None) -> Iterator[Any]:
    """Airflow's API server app as ``airflow api-server`` builds it, with the DAG-scoped auth manager."""
    from airflow.api_fastapi import app as api_app

    with pytest.MonkeyPatch.context() as patch:
        _auth_settings(patch)
        api_app.purge_cached_app()
        app = api_app.create_app()
    yield app
    api_app.purge_cached_app()


def token(username: str, role: str | None = "viewer") -> str:
    """A JWT from the running auth manager, as ``POST /auth/token`` would issue it."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    return get_auth_manager().generate_jwt(SimpleAuthManagerUser(username=username, role=role))


@pytest.fixture
def client(airflow_app: Any, ui_runs: Runs, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """An unauthenticated client; requests read the emulator through tencent_ci_default."""
    from fastapi.testclient import TestClient

    _auth_settings(monkeypatch)
    monkeypatch.setenv(CONN_ENV, json.dumps(ui_runs.emulator.airflow_connection(DEFAULT_BUCKET, DEFAULT_REGION)))
    ui_runs.emulator.clear_requests()
    with TestClient(airflow_app) as test_client:
        yield test_client

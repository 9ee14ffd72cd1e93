"""One real Airflow deployment for the whole ``tests/deployment`` suite, plus the session emulator.

The topology users scale out with: PostgreSQL as the metadata DB, CeleryExecutor with a Redis
broker and one ``airflow celery worker``, two triggerers, an api-server, a scheduler and a
dag-processor. PostgreSQL and Redis are started for the session in temporary folders
(``services.py``); without them the suite skips, or fails with ``CI_REQUIRE_SERVICES=1`` (CI).
Starting it all costs about a minute on two cores, so the suite shares one deployment; tests
that stop or kill a component start it again. The shutdown test runs last: it stops every
component by PID, checks that each stopped cleanly, then scans everything left behind.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_provider_ci.emulator import Emulator
from airflow_provider_ci.emulator.pytest_plugin import CONN_ENV, DEFAULT_BUCKET, DEFAULT_REGION
from tests.deployment.airflow_deployment import Deployment, wait_for
from tests.deployment.services import PostgresServer, RedisServer, or_skip
from tests.support import png
from tests.test_example_dags import DAG_IDS

EXAMPLE_DAGS = tuple(sorted(DAG_IDS))
TEST_DAGS = ("e2e_deferred_jobs", "e2e_worker_jobs")
#: Screenshots and fetched pages, kept as CI artifacts (and scanned for secrets).
ARTIFACTS = Path(os.environ.get("CI_ARTIFACTS", Path(__file__).parents[2] / "artifacts"))

LAST = ("test_shutdown",)
#: The deployment's own triggerers (tests that need others stop these and restore them).
TRIGGERERS = ("triggerer", "triggerer-2")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the shutdown-and-scan test right after the deployment's other tests, so the
    deployment neither misses a test's leavings nor idles through the rest of the session."""
    last = [item for item in items if "tests/deployment/" in item.nodeid and item.name.startswith(LAST)]
    if not last:
        return
    rest = [item for item in items if item not in last]
    end = max((i for i, item in enumerate(rest) if "tests/deployment/" in item.nodeid), default=-1) + 1
    items[:] = rest[:end] + last + rest[end:]


@pytest.fixture(scope="session")
def sts_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    """The deployment's own emulator, with temporary (STS) credentials fresh for this run:
    a SecretKey and a session token that the shutdown test then looks for everywhere."""
    with Emulator(
        tmp_path_factory.mktemp("deployment-emulator"),
        secret_id="AKIDdeployment" + secrets.token_hex(8),
        secret_key="deployment-secret-" + secrets.token_urlsafe(24),
        token="deployment-sts-token-" + secrets.token_urlsafe(32),
        buckets=[DEFAULT_BUCKET],
    ) as emulator:
        yield emulator


@pytest.fixture(scope="session")
def service_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where PostgreSQL and Redis log (kept after the session, beside the deployment's logs)."""
    return tmp_path_factory.mktemp("services")


@pytest.fixture(scope="session")
def postgres(service_logs: Path) -> Iterator[PostgresServer]:
    """The metadata DB server, for the session (skips the suite when PostgreSQL is not installed)."""
    with or_skip(PostgresServer, service_logs) as server:
        yield server


@pytest.fixture(scope="session")
def redis_broker(service_logs: Path) -> Iterator[RedisServer]:
    """The Celery broker, for the session (skips the suite when Redis is not installed)."""
    with or_skip(RedisServer, service_logs) as server:
        yield server


@pytest.fixture(scope="session")
def deployment(
    sts_emulator: Emulator,
    postgres: PostgresServer,
    redis_broker: RedisServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Deployment]:
    connection = sts_emulator.airflow_connection(DEFAULT_BUCKET, DEFAULT_REGION)
    airflow = Deployment(
        home=tmp_path_factory.mktemp("airflow-deployment"),
        dags=Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"]),
        env={CONN_ENV: json.dumps(connection)},
        database=postgres.url,
        broker=redis_broker.url,
    )
    airflow.airflow("db", "migrate")
    try:
        airflow.start("api-server", "api-server")
        airflow.start("scheduler", "scheduler")
        airflow.start("dag-processor", "dag-processor")
        airflow.start_worker("worker")
        for name in TRIGGERERS:
            airflow.start_triggerer(name)
        wait_for("the api-server and scheduler to be healthy", airflow.healthy, timeout=120)
        airflow.wait_for_dags(EXAMPLE_DAGS + TEST_DAGS)
        yield airflow
    finally:
        airflow.stop_all()


def restore_triggerers(deployment: Deployment) -> None:
    """The deployment's own two triggerers running, and no other: what each test starts from."""
    for name in [name for name in deployment.components if name.startswith("triggerer")]:
        if name not in TRIGGERERS:
            deployment.stop(name)
    for name in TRIGGERERS:
        if name not in deployment.components:
            deployment.start_triggerer(name)


@pytest.fixture(autouse=True)
def suite_triggerers(request: pytest.FixtureRequest) -> None:
    """A test that failed half-way through a triggerer restart must not take the next ones down too."""
    if "deployment" in request.fixturenames:
        restore_triggerers(request.getfixturevalue("deployment"))


@pytest.fixture
def emulator(sts_emulator: Emulator) -> Iterator[Emulator]:
    """The deployment's emulator with no faults and a running queue, before and after the test."""
    sts_emulator.faults.clear()
    sts_emulator.resume_queue()
    yield sts_emulator
    sts_emulator.faults.clear()
    sts_emulator.resume_queue()


def put_images(emulator: Emulator, prefix: str, count: int) -> list[str]:
    keys = [f"{prefix}{n}.png" for n in range(count)]
    for n, key in enumerate(keys):
        emulator.put_object(DEFAULT_BUCKET, key, png(40 + n, 30))
    return keys


def jobs_for(emulator: Emulator, prefix: str) -> list[dict]:
    """Jobs in the emulator whose input is under ``prefix``."""
    return [job for job in emulator.jobs(DEFAULT_BUCKET) if job["Input"]["Object"].startswith(prefix)]

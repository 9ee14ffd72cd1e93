"""Suite-wide set-up: a throwaway AIRFLOW_HOME, set before anything imports Airflow."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent


def dags_folder(target: Path) -> Path:
    """The example DAGs plus the test-only DAGs of ``tests/dags``, linked into one folder.

    ``dag.test()`` runs only DAGs of a configured bundle, and the real-process suite's
    dag-processor parses exactly this folder too.
    """
    target.mkdir(parents=True, exist_ok=True)
    for source in [*sorted((ROOT / "dags").glob("*.py")), *sorted((ROOT / "tests" / "dags").glob("*.py"))]:
        link = target / source.name
        if not link.exists():
            link.symlink_to(source)
    return target


os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="airflow-provider-ci-home-"))
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(dags_folder(Path(os.environ["AIRFLOW_HOME"]) / "dags"))
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "True"

pytest_plugins = ["airflow_provider_ci.emulator.pytest_plugin"]


@pytest.fixture(scope="session")
def airflow_db():
    """A migrated metadata DB in the throwaway AIRFLOW_HOME, for dag.test() runs."""
    from airflow.utils.db import initdb

    initdb()

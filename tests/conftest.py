"""Suite-wide set-up: a throwaway AIRFLOW_HOME, set before anything imports Airflow."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="airflow-provider-ci-home-"))
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(Path(__file__).parent.parent / "dags")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "True"

pytest_plugins = ["airflow_provider_ci.emulator.pytest_plugin"]


@pytest.fixture(scope="session")
def airflow_db():
    """A migrated metadata DB in the throwaway AIRFLOW_HOME, for dag.test() runs."""
    from airflow.utils.db import initdb

    initdb()

"""Suite-wide set-up: a throwaway AIRFLOW_HOME, set before anything imports Airflow."""

from __future__ import annotations

import os
import tempfile

os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="airflow-provider-ci-home-"))
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "True"

pytest_plugins = ["airflow_provider_ci.emulator.pytest_plugin"]

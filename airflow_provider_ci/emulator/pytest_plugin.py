"""Pytest fixtures that put a CI emulator behind the ``tencent_ci_default`` connection.

Enable with ``pytest_plugins = ["airflow_provider_ci.emulator.pytest_plugin"]`` in a top-level
``conftest.py``, then::

    def test_my_dag(ci_emulator, ci_emulator_conn):
        ci_emulator.put_object(DEFAULT_BUCKET, "in/cat.jpg", jpeg_bytes)
        ...  # run tasks that use tencent_ci_default
        assert ci_emulator.jobs()[0]["State"] == "Success"

One emulator serves the whole session (starting it per test would cost more than most tests);
``ci_emulator_conn`` gives each test a clean slate of faults, request log and queue state, but
jobs and objects of earlier tests remain (call ``ci_emulator.reset()`` to forget jobs).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from ..ratelimit import reset_limiters
from .control import Emulator

DEFAULT_BUCKET = "examplebucket-1250000000"
DEFAULT_REGION = "ap-chongqing"
CONN_ENV = "AIRFLOW_CONN_TENCENT_CI_DEFAULT"


@pytest.fixture(scope="session")
def ci_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    """A running emulator with bucket ``examplebucket-1250000000``, default test credentials.

    It enforces the service's rate limit (100 requests/s per account, ``ci_emulator.qps_limit``
    to change it, 0 for none), so a DAG that would be throttled in production is throttled
    here too; this provider's own calls stay under it through their shared rate limiter.
    """
    with Emulator(tmp_path_factory.mktemp("ci-emulator"), buckets=[DEFAULT_BUCKET]) as emulator:
        yield emulator


@pytest.fixture
def ci_emulator_conn(ci_emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Point ``tencent_ci_default`` at the emulator (region ``ap-chongqing``); returns the connection.

    The process's client-side rate limiters start afresh too, so one test's throttling does
    not slow the next.
    """
    reset_limiters()
    ci_emulator.faults.clear()
    ci_emulator.clear_requests()
    ci_emulator.resume_queue()
    connection = ci_emulator.airflow_connection(DEFAULT_BUCKET, DEFAULT_REGION)
    monkeypatch.setenv(CONN_ENV, json.dumps(connection))
    return connection

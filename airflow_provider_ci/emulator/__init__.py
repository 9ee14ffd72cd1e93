"""A local Tencent Cloud Infinite (数据万象) service for development and tests.

It serves the PicProcess job API on ``<bucket>.ci.<region>.myqcloud.com`` and COS object calls
on ``<bucket>.cos.<region>.myqcloud.com``, routed by the ``Host`` header, verifies every COS v5
signature, runs jobs through ``Submitted`` → ``Running`` → ``Success``/``Failed`` with the real
imageMogr2 subset (:mod:`.imaging`), and keeps each bucket as a folder ``DATA_DIR/<bucket>``.
Clients reach it by sending requests to its URL with the virtual-host ``Host`` header (the
``endpoint_url`` connection extra). It does not import Airflow.

Command line::

    python -m airflow_provider_ci.emulator --port 8818 --data-dir /tmp/ci --bucket test-1250000000

From Python::

    with Emulator(tmp_path, buckets=["test-1250000000"]) as emulator:
        emulator.put_object("test-1250000000", "in.jpg", jpeg_bytes)
        conn = emulator.airflow_connection("test-1250000000", "ap-chongqing")

Credentials: unless given others, it accepts only the fake test pair
``DEFAULT_SECRET_ID = "AKIDCIEMULATOR0000000000000000000000"`` /
``DEFAULT_SECRET_KEY = "CIEMULATORSECRETKEY0000000000000"``. With a token configured, requests
must also carry it (signed) as ``x-ci-security-token``/``x-cos-security-token``.

Pytest users: ``pytest_plugins = ["airflow_provider_ci.emulator.pytest_plugin"]`` gives the
``ci_emulator`` and ``ci_emulator_conn`` fixtures. Control endpoints for a subprocess-started
emulator are listed in :mod:`.control_api`; injected failures in :mod:`.faults`.
"""

from __future__ import annotations

from .config import DEFAULT_SECRET_ID, DEFAULT_SECRET_KEY
from .control import Emulator
from .faults import Fault, Faults
from .state import RequestRecord

__all__ = ["DEFAULT_SECRET_ID", "DEFAULT_SECRET_KEY", "Emulator", "Fault", "Faults", "RequestRecord"]

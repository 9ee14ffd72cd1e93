"""The fault matrix: every fault × every way of waiting, N real jobs each, counted in the emulator.

Each run is a real ``dag.test()`` of a DAG in ``tests/dags/reliability_matrix.py`` against the
session emulator over HTTP, with the provider's real timeouts and retry policy. A run passes
when every job is accounted for: none lost, none duplicated, every task ended as the fault
should end it. The counts come from the emulator's jobs, so a provider that loses or repeats
a submit under a fault fails here. A full matrix run by ``make reliability`` (which sets
``CI_RELIABILITY_REPORT=1``) writes ``tests/reliability/results/latest.md``
and the docs' reliability page (docs/reliability.md).

``CI_RELIABILITY_JOBS`` sets N (default 3).
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator

import pytest

from airflow_provider_ci.emulator.pytest_plugin import DEFAULT_BUCKET
from tests.reliability import report
from tests.reliability.dag_runs import MODES, run_matrix_dag
from tests.reliability.scenarios import SCENARIOS, FaultRun, Scenario, run_jobs
from tests.reliability.tally import Row, tally
from tests.support import png

pytestmark = [pytest.mark.reliability, pytest.mark.airflow_e2e]

JOBS = int(os.environ.get("CI_RELIABILITY_JOBS", "3"))
#: In every object key, so a run's jobs are told apart from any other run's on the shared emulator.
SESSION = uuid.uuid4().hex[:8]


@pytest.fixture(scope="module")
def matrix_rows() -> Iterator[list[Row]]:
    """Every run's row; written out by ``make reliability`` when the whole matrix ran (not for a
    selection of it, and not by ``make test``, which must leave the tree as it found it)."""
    rows: list[Row] = []
    started = time.monotonic()
    yield rows
    if os.environ.get("CI_RELIABILITY_REPORT") == "1" and len(rows) == len(SCENARIOS) * len(MODES):
        titles = {scenario.key: scenario.title for scenario in SCENARIOS}
        report.write(rows, titles, jobs=JOBS, seconds=time.monotonic() - started)


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda scenario: scenario.key)
def test_fault(airflow_db, ci_emulator, ci_emulator_conn, capfd, matrix_rows, scenario: Scenario, mode: str):
    prefix = f"reliability/{SESSION}/{scenario.key}/{mode}/"
    for i in range(JOBS):
        ci_emulator.put_object(DEFAULT_BUCKET, f"{prefix}{i}.png", png(16 + i, 12))
    fault = FaultRun(
        scenario, ci_emulator, prefix, JOBS, deferrable=MODES[mode].deferrable, hold_queue=MODES[mode].hold_queue
    )
    capfd.readouterr()
    started = time.monotonic()
    fault.start()
    try:
        record = run_matrix_dag(mode, prefix=prefix, jobs=JOBS, on_defer=fault.on_defer)
    finally:
        fault.finish()
    seconds = time.monotonic() - started
    row = tally(fault, mode, record, run_jobs(ci_emulator, prefix), capfd.readouterr().out, seconds)
    matrix_rows.append(row)

    assert (row.lost, row.duplicates) == (0, 0), row.problems
    assert row.submitted == row.in_emulator == JOBS, row.problems
    assert row.correct == JOBS, row.problems
    assert row.problems == []
    assert record.state == ("failed" if scenario.ends else "success")

"""Two triggerers at once, as run for high availability: waits spread, survive a lost triggerer.

Each triggerer gets capacity 3 and the run defers 6 tasks, so both must take a share. Then
one is killed (SIGKILL to it and its children: the host is gone); once its heartbeat is stale
the other adopts its waits. Every job must be awaited to its end and reported exactly once.
"""

from __future__ import annotations

from collections import Counter

import pytest

from tests.deployment.airflow_deployment import free_port, wait_for
from tests.deployment.conftest import jobs_for
from tests.deployment.test_crashes import assert_each_job_once_and_successful, deferred_run

pytestmark = [pytest.mark.deployment, pytest.mark.airflow_e2e]

CAPACITY = 3


@pytest.fixture
def two_triggerers(deployment):
    """Replace the single triggerer with ``a`` and ``b``; their triggerer job ids; restored after."""
    deployment.stop("triggerer")
    yield [start_triggerer(deployment, name, "--capacity", str(CAPACITY)) for name in ("a", "b")]
    for name in ("triggerer-a", "triggerer-b"):
        if name in deployment.components:
            deployment.stop(name)
    deployment.start("triggerer", "triggerer")


def start_triggerer(deployment, name: str, *args: str) -> int:
    """Start ``triggerer-<name>``; its triggerer job id once it has registered.

    New ids only: a SIGKILLed triggerer's job stays "running" in the DB. Each gets its own
    log-server port, as two triggerers on one host would otherwise collide on it.
    """
    known = set(deployment.triggerer_jobs())
    port = {"AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port())}
    deployment.start(f"triggerer-{name}", "triggerer", *args, env=port)
    return wait_for(
        f"triggerer {name} to register", lambda: max(set(deployment.triggerer_jobs()) - known, default=0), 60
    )


def test_waits_spread_over_two_triggerers_and_move_when_one_dies(deployment, emulator, two_triggerers):
    a, b = two_triggerers
    run_id = deferred_run(deployment, emulator, "ha/", 2 * CAPACITY)
    held = deployment.triggers(run_id)
    assert Counter(held.values()) == {a: CAPACITY, b: CAPACITY}

    deployment.kill("triggerer-a")
    emulator.resume_queue()

    assert deployment.wait_for_run("e2e_deferred_jobs", run_id, timeout=240) == "success"
    assert len(assert_each_job_once_and_successful(deployment, emulator, "e2e_deferred_jobs", run_id, "ha/")) == 6
    logs = deployment.trigger_logs("e2e_deferred_jobs", run_id)
    assert sorted(logs) == sorted(held)
    for index, by_triggerer in logs.items():
        # b finished every wait, a's three too; a's own log lines may be lost with it (SIGKILL).
        assert "ended Success" in by_triggerer[b], (index, held[index])
        fired = sum(log.count("Trigger fired event") for log in by_triggerer.values())
        assert fired == 1, (index, fired)
    assert len(jobs_for(emulator, "ha/")) == 6


@pytest.fixture
def triggerer_a(deployment):
    """Only triggerer ``a`` running (a second one is the test's to start); restored after."""
    deployment.stop("triggerer")
    yield start_triggerer(deployment, "a")
    for name in ("triggerer-a", "triggerer-b"):
        if name in deployment.components:
            deployment.stop(name)
    deployment.start("triggerer", "triggerer")


def test_a_frozen_triggerer_that_loses_its_waits_leaves_their_jobs_alone(deployment, emulator, triggerer_a):
    """Airflow 3.3 calls on_kill on a trigger its triggerer drops after a failover; the task is
    still deferred (another triggerer waits), so the job must not be cancelled."""
    a = triggerer_a
    run_id = deferred_run(deployment, emulator, "freeze/", 3)
    assert set(deployment.triggers(run_id).values()) == {a}
    b = start_triggerer(deployment, "b")

    frozen = deployment.freeze("triggerer-a")  # heartbeat stops; b adopts the waits
    wait_for("b to adopt every wait", lambda: set(deployment.triggers(run_id).values()) == {b}, timeout=90)
    deployment.thaw(frozen)  # a finds its waits gone and drops them: on_kill
    decided = ("Not cancelling", "Cancelled CI job", "Could not cancel")
    wait_for("a to drop all three waits and decide", lambda: _count(deployment, run_id, a, decided) == 3, timeout=90)
    assert _count(deployment, run_id, a, ("invoking on_kill",)) == 3
    assert {job["State"] for job in jobs_for(emulator, "freeze/")} == {"Pause"}
    emulator.resume_queue()

    assert deployment.wait_for_run("e2e_deferred_jobs", run_id) == "success"
    assert len(assert_each_job_once_and_successful(deployment, emulator, "e2e_deferred_jobs", run_id, "freeze/")) == 3


def _count(deployment, run_id: str, triggerer: int, texts: tuple[str, ...]) -> int:
    """How many of the run's waits have one of ``texts`` in ``triggerer``'s log of them."""
    logs = deployment.trigger_logs("e2e_deferred_jobs", run_id).values()
    return sum(any(text in by.get(triggerer, "") for text in texts) for by in logs)

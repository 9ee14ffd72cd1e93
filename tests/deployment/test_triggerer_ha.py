"""Two triggerers at once, as run for high availability: waits spread, survive a lost triggerer.

Each triggerer gets capacity 3 and the run defers 6 tasks, so both must take a share. Then
one is killed (SIGKILL to it and its children: the host is gone); once its heartbeat is stale
the other adopts its waits. Every job must be awaited to its end and reported exactly once.

On PostgreSQL the triggerers claim waits with ``SELECT … FOR NO KEY UPDATE SKIP LOCKED``: the
HA test holds a row lock on the dead triggerer's waits while the survivor, with room to spare,
keeps looking for work, and checks that it skipped them until the lock was released (on SQLite,
which has no row locks, it would have taken them at once).
"""

from __future__ import annotations

from collections import Counter
from contextlib import closing

import pytest

from tests.deployment.airflow_deployment import wait_for
from tests.deployment.conftest import TRIGGERERS, jobs_for, restore_triggerers
from tests.deployment.test_crashes import assert_each_job_once_and_successful, deferred_run

pytestmark = [pytest.mark.deployment, pytest.mark.airflow_e2e]

CAPACITY = 3


def replace_triggerers(deployment) -> None:
    """Stop the deployment's own triggerers, so a test runs only the ones it starts."""
    for name in TRIGGERERS:
        deployment.stop(name)


#: DAGs scheduled by an ``AssetWatcher``: while unpaused, their watcher trigger runs in a triggerer.
EVENT_DRIVEN_DAGS = ("example_cos_new_images", "e2e_cos_arrivals")


def watcher_triggers(deployment) -> list[int]:
    """Triggers no task waits on: the event-driven DAGs' watchers."""
    rows = deployment.query(
        "SELECT id FROM trigger WHERE id NOT IN (SELECT trigger_id FROM task_instance WHERE trigger_id IS NOT NULL)"
    )
    return [row[0] for row in rows]


@pytest.fixture
def two_triggerers(deployment):
    """Replace the deployment's triggerers with ``a`` and ``b`` of capacity 3; their job ids; restored after.

    The event-driven DAGs are paused meanwhile: their watcher triggers would take a slot of
    ``a`` or ``b`` and leave the test's six waits five places.
    """
    paused = {dag_id: deployment.api("GET", f"/dags/{dag_id}")["is_paused"] for dag_id in EVENT_DRIVEN_DAGS}
    for dag_id in EVENT_DRIVEN_DAGS:
        deployment.api("PATCH", f"/dags/{dag_id}", json={"is_paused": True})
    wait_for("the asset watchers' triggers to go", lambda: not watcher_triggers(deployment), timeout=120)
    replace_triggerers(deployment)
    yield [deployment.start_triggerer(f"triggerer-{name}", "--capacity", str(CAPACITY)) for name in ("a", "b")]
    restore_triggerers(deployment)
    for dag_id, was_paused in paused.items():
        deployment.api("PATCH", f"/dags/{dag_id}", json={"is_paused": was_paused})


def test_waits_spread_over_two_triggerers_and_move_when_one_dies(deployment, postgres, emulator, two_triggerers):
    a, b = two_triggerers
    run_id = deferred_run(deployment, emulator, "ha/", 2 * CAPACITY)
    held = deployment.triggers(run_id)
    assert Counter(held.values()) == {a: CAPACITY, b: CAPACITY}
    orphans = sorted(index for index, triggerer in held.items() if triggerer == a)

    deployment.kill("triggerer-a")
    with closing(postgres.connect()) as db, db.cursor() as lock:
        # The dead triggerer's waits, locked as a busy peer's claim would lock them.
        lock.execute(
            "SELECT t.id FROM trigger t JOIN task_instance ti ON ti.trigger_id = t.id"
            " WHERE ti.run_id = %s AND t.triggerer_id = %s FOR UPDATE OF t",
            (run_id, a),
        )
        assert len(lock.fetchall()) == CAPACITY
        emulator.resume_queue()  # b's own three finish, which leaves it room for a's
        wait_for("b to finish its own waits", lambda: _finished(deployment, run_id) >= CAPACITY, timeout=120)
        wait_for("a's heartbeat to go stale", lambda: not _alive(deployment, a), timeout=60)
        rounds = _claims(postgres)
        wait_for("b to look for work 3 more times", lambda: _claims(postgres) >= rounds + 3, timeout=60)
        assert sorted(i for i, t in deployment.triggers(run_id).items() if t == a) == orphans, "b took locked waits"
        db.rollback()  # the lock goes; b adopts them on its next round

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


def _finished(deployment, run_id: str) -> int:
    """How many of the run's waiting tasks (``process``) have succeeded."""
    tis = deployment.task_instances("e2e_deferred_jobs", run_id)
    return sum(ti["task_id"] == "process" and ti["state"] == "success" for ti in tis)


def _alive(deployment, triggerer: int) -> bool:
    """Whether ``triggerer``'s heartbeat is recent enough for its peers to leave its waits alone."""
    threshold = int(deployment.base_env["AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD"])
    sql = "SELECT count(*) FROM job WHERE id = ? AND latest_heartbeat > now() - make_interval(secs => ?)"
    return bool(deployment.query(sql, triggerer, threshold)[0][0])


def _claims(postgres) -> int:
    """How many times a triggerer has run its claim of task waits (row-locking, skipping locked rows)."""
    rows = postgres.execute(
        "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements WHERE query ILIKE %s",
        "%FROM trigger JOIN task_instance%SKIP LOCKED%",
    )
    return int(rows[0][0])


@pytest.fixture
def triggerer_a(deployment):
    """Only triggerer ``a`` running (a second one is the test's to start); restored after."""
    replace_triggerers(deployment)
    yield deployment.start_triggerer("triggerer-a")
    restore_triggerers(deployment)


def test_a_frozen_triggerer_that_loses_its_waits_leaves_their_jobs_alone(deployment, emulator, triggerer_a):
    """Airflow 3.3 calls on_kill on a trigger its triggerer drops after a failover; the task is
    still deferred (another triggerer waits), so the job must not be cancelled."""
    a = triggerer_a
    run_id = deferred_run(deployment, emulator, "freeze/", 3)
    assert set(deployment.triggers(run_id).values()) == {a}
    b = deployment.start_triggerer("triggerer-b")

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

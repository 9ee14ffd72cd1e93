"""Crashes and interventions in a real deployment: each job is awaited to its end, billed once.

Tasks run on a Celery worker, their waits in one of two triggerers (see ``conftest.py``).

Jobs are held in ``Submitted`` by pausing the emulator's queue, so a test knows the state of
every wait when it strikes, without sleeping and hoping.
"""

from __future__ import annotations

import signal

import psutil
import pytest

from tests.deployment.airflow_deployment import Deployment, wait_for
from tests.deployment.conftest import TRIGGERERS, jobs_for, put_images

pytestmark = [pytest.mark.deployment, pytest.mark.airflow_e2e]


def deferred_run(deployment: Deployment, emulator, prefix: str, count: int, dag_id: str = "e2e_deferred_jobs"):
    """Start ``count`` jobs that stay Submitted; return the run id once every task waits in a triggerer."""
    put_images(emulator, prefix, count)
    emulator.pause_queue()
    run_id = deployment.trigger(dag_id, {"prefix": prefix, "count": count})
    deployment.wait_for_states(dag_id, run_id, {"deferred"}, count)
    wait_for(f"{count} waits polling in a triggerer", lambda: _all_polling(deployment, dag_id, run_id, count), 60)
    return run_id


def _all_polling(deployment: Deployment, dag_id: str, run_id: str, count: int) -> bool:
    """Every task's trigger is assigned and has seen its job waiting (not merely been assigned)."""
    logs = deployment.trigger_logs(dag_id, run_id)
    polling = [i for i, by in logs.items() if any(" is Pause" in log for log in by.values())]
    return len(polling) == count and len(deployment.triggers(run_id)) == count


def assert_each_job_once_and_successful(deployment: Deployment, emulator, dag_id: str, run_id: str, prefix: str):
    tis = deployment.task_instances(dag_id, run_id)
    assert {ti["state"] for ti in tis} == {"success"}, [(ti["task_id"], ti["map_index"], ti["state"]) for ti in tis]
    # Changes of the emulator's jobs (submits, cancels), to tell who did what if this fails.
    writes = [(r.received, r.method, r.path, r.query, r.user_agent) for r in emulator.requests if r.method != "GET"]
    assert deployment.unexplained_retries(dag_id, run_id) == [], writes
    jobs = jobs_for(emulator, prefix)
    inputs = [job["Input"]["Object"] for job in jobs]
    assert len(inputs) == len(set(inputs)), f"duplicate jobs: {sorted(inputs)}"
    assert {job["State"] for job in jobs} == {"Success"}
    return jobs


def test_a_rolling_restart_of_both_triggerers_hands_every_wait_over_and_cancels_nothing(deployment, emulator):
    """Each triggerer in turn stopped (SIGTERM) and started again, as an upgrade does it: the
    other one adopts its waits, the shutdown cancels no job, and every wait ends in the last
    triggerer left holding them."""
    run_id = deferred_run(deployment, emulator, "restart/", 3)
    first, second = TRIGGERERS
    held_before = set(deployment.triggers(run_id).values())

    for name, other in ((first, second), (second, first)):
        stopped = deployment.stop(name)
        assert not stopped.hard_stopped, f"{name} needed SIGKILL to stop: {stopped.hard_stop_reason}"
        # A clean triggerer shutdown is not a user cancelling the task: the jobs must live on.
        assert {job["State"] for job in jobs_for(emulator, "restart/")} == {"Pause"}  # waiting in the paused queue
        survivor = {deployment.components[other].job_id}
        wait_for(f"{other} to adopt every wait", lambda s=survivor: set(deployment.triggers(run_id).values()) == s, 90)
        deployment.start_triggerer(name)
    last = deployment.components[first].job_id  # the restarted first one took all from the stopping second
    assert set(deployment.triggers(run_id).values()) == {last}
    emulator.resume_queue()

    assert deployment.wait_for_run("e2e_deferred_jobs", run_id) == "success"
    jobs = assert_each_job_once_and_successful(deployment, emulator, "e2e_deferred_jobs", run_id, "restart/")
    assert len(jobs) == 3
    for map_index, by_triggerer in deployment.trigger_logs("e2e_deferred_jobs", run_id).items():
        # Waited first in an old triggerer, handed over, finished in the restarted one.
        assert len(by_triggerer) >= 2 and set(by_triggerer) & held_before, (map_index, sorted(by_triggerer))
        assert "ended Success" in by_triggerer[last]
        assert sum(log.count("Trigger fired event") for log in by_triggerer.values()) == 1, map_index


def test_a_worker_killed_after_submit_leaves_one_job_which_the_retry_reattaches_to(deployment, emulator):
    put_images(emulator, "worker-crash/", 1)
    emulator.pause_queue()
    run_id = deployment.trigger("e2e_worker_jobs", {"prefix": "worker-crash/", "count": 1})
    wait_for("the submit", lambda: jobs_for(emulator, "worker-crash/"), timeout=90)
    task_process = wait_for("the task's pid", lambda: _task_pid(deployment, run_id), timeout=30)

    task_process.send_signal(signal.SIGKILL)  # the task dies mid-wait, its job already billed
    wait_for("the retry", lambda: _try_number(deployment, run_id) == 2, timeout=60)
    emulator.resume_queue()

    assert deployment.wait_for_run("e2e_worker_jobs", run_id) == "success"
    (job,) = jobs_for(emulator, "worker-crash/")
    assert job["State"] == "Success"
    retry_log = deployment.task_log("e2e_worker_jobs", run_id, "process", 2, map_index=0)
    assert f"Reattaching to CI job {job['JobId']}" in retry_log


def _task_pid(deployment: Deployment, run_id: str) -> psutil.Process | None:
    ti = _process_ti(deployment, run_id)
    return psutil.Process(ti["pid"]) if ti.get("pid") and ti["state"] == "running" else None


def _try_number(deployment: Deployment, run_id: str) -> int:
    return int(_process_ti(deployment, run_id)["try_number"])


def _process_ti(deployment: Deployment, run_id: str) -> dict:
    (ti,) = [ti for ti in deployment.task_instances("e2e_worker_jobs", run_id) if ti["task_id"] == "process"]
    return ti


def test_marking_a_deferred_task_failed_cancels_its_waiting_job(deployment, emulator):
    from airflow import __version__

    if tuple(int(part) for part in __version__.split(".")[:2]) < (3, 3):
        pytest.skip("Airflow calls a trigger's on_kill from 3.3 on")
    run_id = deferred_run(deployment, emulator, "mark-failed/", 1)
    (job,) = jobs_for(emulator, "mark-failed/")

    deployment.api(
        "PATCH", f"/dags/e2e_deferred_jobs/dagRuns/{run_id}/taskInstances/process/0", json={"new_state": "failed"}
    )

    cancelled = wait_for(
        "the job to be cancelled",
        lambda: [j for j in jobs_for(emulator, "mark-failed/") if j["State"] == "Cancel"],
        timeout=150,  # on_kill may wait up to CANCEL_ON_KILL_TIMEOUT for the task's state
    )
    assert [j["JobId"] for j in cancelled] == [job["JobId"]]
    assert deployment.wait_for_run("e2e_deferred_jobs", run_id) == "failed"

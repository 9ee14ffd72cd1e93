"""Count one run: jobs submitted, jobs in the emulator, outcomes correct, lost, duplicates.

Each of the N inputs is one chain of task instances (the operator, or a submit then a
sensor) and should be exactly one job in the emulator. The counts come from two independent
records, Airflow's (task states, XComs) and the emulator's (jobs by input object):

* submitted: task instances that recorded a job id (XCom ``job_id``);
* in emulator: the run's jobs in the emulator (input objects under the run's prefix);
* duplicates: jobs beyond one per input object;
* lost: an input whose job the emulator does not have, or whose task outcome disagrees with
  its job's final state (a task that succeeded on a job that did not, or the reverse);
* correct: the chain ended as the fault should end it (failed exactly for the fault's
  targets, with the job id and final state, and the injected code if any, in the task log);
* throttled: requests the emulator refused with 503 SlowDown (the account-throttled row).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tests.reliability.dag_runs import DagRunRecord
from tests.reliability.scenarios import FaultRun, Scenario

ENDED_BADLY = ("Failed", "Cancel")


@dataclass
class Row:
    """One fault × mode run of the matrix, as the report shows it."""

    fault: str
    mode: str
    jobs: int
    #: Task instances that waited in a trigger (deferrable modes).
    deferred: int
    submitted: int
    in_emulator: int
    correct: int
    lost: int
    duplicates: int
    seconds: float
    #: Requests the emulator refused with 503 SlowDown (the account's rate limit).
    throttled: int = 0
    problems: list[str] = field(default_factory=list)


def tally(
    fault: FaultRun, mode: str, record: DagRunRecord, emulator_jobs: list[dict[str, Any]], log: str, seconds: float
) -> Row:
    """The counts of one run; ``log`` is the run's captured output (task errors are logged there)."""
    scenario = fault.scenario
    by_id = {job["JobId"]: job for job in emulator_jobs}
    per_input: dict[str, list[str]] = {}
    for job in emulator_jobs:
        per_input.setdefault(str(job["Input"]["Object"]), []).append(job["JobId"])
    problems = list(fault.misses)
    problems += [f"{key} has {len(ids)} jobs: {', '.join(ids)}" for key, ids in per_input.items() if len(ids) > 1]
    if len(record.plan) != fault.jobs:
        problems.append(f"the plan task planned {len(record.plan)} jobs, expected {fault.jobs}")
    correct = lost = 0
    for index, kwargs in enumerate(record.plan):
        mine = [job for job in emulator_jobs if job["Input"]["Object"] == kwargs["input_object"]]
        job_id = record.job_ids.get(index)
        job = by_id.get(job_id) if job_id else (mine[-1] if mine else None)
        outcome = record.states.get((record.waiter, index))
        # The submit's own state when a sensor waits (None when the operator waits itself).
        submit = record.states.get((record.submitter, index)) if record.submitter != record.waiter else None
        why = _lost(job, outcome, kwargs["input_object"])
        if why:
            lost += 1
            problems.append(f"map index {index}: lost: {why}")
            continue
        assert job is not None
        expected = "failed" if job["JobId"] in fault.targets else "success"
        wrong = _incorrect(scenario, job, submit, outcome, expected, log)
        if wrong:
            problems.append(f"map index {index} (job {job['JobId']}): {wrong}")
        else:
            correct += 1
    return Row(
        fault=scenario.key,
        mode=mode,
        jobs=fault.jobs,
        deferred=len(record.deferred),
        submitted=len(record.job_ids),
        in_emulator=len(emulator_jobs),
        correct=correct,
        lost=lost,
        duplicates=len(emulator_jobs) - len(per_input),
        seconds=seconds,
        throttled=fault.throttled,
        problems=problems,
    )


def _lost(job: dict[str, Any] | None, outcome: str | None, input_object: str) -> str | None:
    """Why this task's job counts as lost, or None."""
    if job is None:
        return "its job is not in the emulator"
    if job["Input"]["Object"] != input_object:
        return f"its job {job['JobId']} processes {job['Input']['Object']}, not {input_object}"
    if outcome == "success" and job["State"] != "Success":
        return f"the task succeeded but its job {job['JobId']} is {job['State']}"
    if outcome == "failed" and job["State"] not in ENDED_BADLY:
        return f"the task failed but its job {job['JobId']} is {job['State']}"
    if outcome not in ("success", "failed"):
        return f"the task ended {outcome} while its job is {job['State']}"
    return None


def _incorrect(
    scenario: Scenario,
    job: dict[str, Any],
    submit: str | None,
    outcome: str | None,
    expected: str,
    log: str,
) -> str | None:
    """Why this chain did not end as the fault should end it, or None."""
    if submit is not None and submit != "success":
        return f"the submit ended {submit}: no fault here should fail a submit"
    if outcome != expected:
        return f"ended {outcome}, expected {expected} (job {job['State']})"
    if expected == "success":
        return None
    if job["State"] != scenario.ends:
        return f"its job ended {job['State']}, the fault should end it {scenario.ends}"
    said = f"CI job {job['JobId']} ended {job['State']}" + (f": {scenario.code}" if scenario.code else "")
    if said not in log:
        return f"the task log does not say {said!r}"
    return None

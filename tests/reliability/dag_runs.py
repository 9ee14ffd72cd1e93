"""Run one matrix DAG with ``dag.test()`` and read back what Airflow recorded.

As in ``tests/test_example_dags.py``: tasks run in this process and triggers inline, against
the emulator over real HTTP; only poll intervals are shortened, in memory. The DAG bag is
parsed once per session (each ``dag.test()`` re-syncs the bundle itself).

``dag.test()`` starts each deferred task's trigger through ``_run_inline_trigger``; it is
wrapped to tell the fault scenario which job a trigger is about to wait for, and to count
deferrals, so a deferrable mode that never deferred cannot pass unnoticed.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from unittest import mock

from tests.test_example_dags import FAST, dag_bag


@dataclass(frozen=True)
class Mode:
    """One way of waiting: a DAG of ``tests/dags/reliability_matrix.py``.

    ``hold_queue``: the queue stays paused until the first wait begins. The sensor DAGs submit
    every job before any sensor runs (that is how ``dag.test()`` orders them) and the emulator
    finishes a job in half a second, so without it every sensor would find its job already
    over: none would defer, and no poke would ever see a job still waiting.
    """

    dag_id: str
    deferrable: bool
    hold_queue: bool = False


#: Mode (pytest id, table row) -> how it runs.
MODES = {
    "operator": Mode("reliability_operator", deferrable=False),
    "operator-deferrable": Mode("reliability_operator_deferrable", deferrable=True),
    "sensor-deferrable": Mode("reliability_sensor_deferrable", deferrable=True, hold_queue=True),
    "sensor-poke": Mode("reliability_sensor_poke", deferrable=False, hold_queue=True),
}
#: Task ids in those DAGs: the plan, the task that submits, and the task that waits.
PLAN, SUBMIT, PROCESS, WAIT = "plan", "submit", "process", "wait"


@dataclass(frozen=True)
class DagRunRecord:
    """A finished run: its state, each task instance's state and the XComs the tests read."""

    state: str
    #: (task_id, map_index) -> state
    states: dict[tuple[str, int], str | None]
    #: The plan task's operator kwargs, one per mapped task instance, in map index order.
    plan: list[dict[str, str]]
    #: map_index -> job id the submitting task pushed (XCom ``job_id``).
    job_ids: dict[int, str]
    #: The task whose state is the job's outcome (``process`` or ``wait``), and the submitting one.
    waiter: str
    submitter: str
    #: Task instances that deferred, as (task_id, map_index).
    deferred: list[tuple[str, int]]


@functools.cache
def _bag() -> Any:
    return dag_bag(serialize=True)


def run_matrix_dag(mode: str, *, prefix: str, jobs: int, on_defer: Callable[[str], None]) -> DagRunRecord:
    """``dag.test()`` the DAG of ``mode`` over ``jobs`` inputs under ``prefix``.

    ``on_defer(job_id)`` is called as each trigger starts, before it polls.
    """
    import airflow.sdk.definitions.dag as dag_module
    from airflow.sdk.definitions.mappedoperator import MappedOperator

    from airflow_provider_ci.sensors.job import CloudInfiniteJobSensor

    dag = _bag().get_dag(MODES[mode].dag_id)
    for task in dag.tasks:
        if isinstance(task, MappedOperator) and task.task_id != PLAN:
            sensor = issubclass(task.operator_class, CloudInfiniteJobSensor)
            task.partial_kwargs["poke_interval" if sensor else "poll_interval"] = FAST

    deferred: list[tuple[str, int]] = []
    run_inline = dag_module._run_inline_trigger

    def run_trigger(trigger: Any, ti: Any) -> Any:
        deferred.append((ti.task_id, ti.map_index))
        on_defer(trigger.job_id)
        return run_inline(trigger, ti)

    with mock.patch.object(dag_module, "_run_inline_trigger", run_trigger):
        run = dag.test(run_conf={"prefix": prefix, "jobs": jobs})
    submitter, waiter = (SUBMIT, WAIT) if WAIT in dag.task_dict else (PROCESS, PROCESS)
    return DagRunRecord(
        state=str(run.state),
        states={(ti.task_id, ti.map_index): ti.state for ti in run.get_task_instances()},
        plan=_xcoms(run, PLAN, "return_value").get(-1) or [],
        job_ids=_xcoms(run, submitter, "job_id"),
        waiter=waiter,
        submitter=submitter,
        deferred=deferred,
    )


def _xcoms(run: Any, task_id: str, key: str) -> dict[int, Any]:
    """map_index -> value of one task's XCom ``key`` in ``run``."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.execute(
            select(XComModel.map_index, XComModel.value).where(
                XComModel.dag_id == run.dag_id,
                XComModel.run_id == run.run_id,
                XComModel.task_id == task_id,
                XComModel.key == key,
            )
        ).all()
    return {map_index: _decoded(value) for map_index, value in rows}


def _decoded(value: Any) -> Any:
    """A JSON column on some Airflow versions, JSON text on others."""
    try:
        return json.loads(value) if isinstance(value, str) else value
    except ValueError:
        return value

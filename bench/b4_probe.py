"""B4's probe, run in a fresh interpreter: provider import time beyond ``airflow.sdk``, then a DagBag
parse of ``dags/`` counting connection lookups. Only the standard library is imported up front,
so nothing the provider needs is loaded before the clock starts.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

MARK = "B4PROBE "
PROVIDER_MODULES = ("airflow_provider_ci.operators.pic_process", "airflow_provider_ci.sensors.job")


def import_cost() -> dict[str, Any]:
    import importlib

    began = time.perf_counter()
    import airflow.sdk  # noqa: F401

    sdk_seconds = time.perf_counter() - began
    before = set(sys.modules)
    print("B4PROBE-IMPORTS-START", file=sys.stderr, flush=True)
    cpu, began = time.process_time(), time.perf_counter()
    for name in PROVIDER_MODULES:
        importlib.import_module(name)
    seconds, cpu = time.perf_counter() - began, time.process_time() - cpu
    added = set(sys.modules) - before
    return {
        "sdk_seconds": sdk_seconds,
        "seconds": seconds,
        "cpu": cpu,
        "modules": len(added),
        "packages": sorted({name.partition(".")[0] for name in added}),
    }


def dagbag_lookups(dag_folder: str) -> dict[str, Any]:
    """Parse ``dag_folder`` as the dag-processor does, counting every connection lookup."""
    from airflow.sdk import BaseHook

    lookups: list[str] = []
    sync_get, async_get = BaseHook.get_connection.__func__, BaseHook.aget_connection.__func__  # type: ignore[attr-defined]

    def get_connection(cls: type, conn_id: str) -> Any:
        lookups.append(conn_id)
        return sync_get(cls, conn_id)

    async def aget_connection(cls: type, conn_id: str) -> Any:
        lookups.append(conn_id)
        return await async_get(cls, conn_id)

    BaseHook.get_connection = classmethod(get_connection)  # type: ignore[assignment]
    BaseHook.aget_connection = classmethod(aget_connection)  # type: ignore[assignment]
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow < 3.2
        from airflow.models.dagbag import DagBag  # type: ignore[no-redef]
    began = time.perf_counter()
    bag = DagBag(dag_folder=dag_folder)
    return {
        "parse_seconds": time.perf_counter() - began,
        "dags": len(bag.dag_ids),
        "import_errors": len(bag.import_errors),
        "lookups": lookups,
    }


if __name__ == "__main__":
    result = import_cost()
    if len(sys.argv) > 1:
        result |= dagbag_lookups(sys.argv[1])
    print(MARK + json.dumps(result), flush=True)

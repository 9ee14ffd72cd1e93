"""A test auth manager with DAG-level permissions: Airflow's SimpleAuthManager, narrowed per user.

SimpleAuthManager grants by role only (a viewer reads every DAG). The plugin must ask the auth
manager about the DAG in the path; this manager makes that observable: a user listed in
:data:`READABLE_DAGS` may read only those DAGs, everyone else is as SimpleAuthManager says.
"""

from __future__ import annotations

from typing import Any

from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager

#: username -> the only DAG ids that user may read.
READABLE_DAGS: dict[str, set[str]] = {"limited": {"e2e_ui_other"}}
#: Every DAG-level question asked, as (username, method, access entity, dag id), for assertions.
ASKED: list[tuple[str, str, str | None, str | None]] = []


class DagScopedAuthManager(SimpleAuthManager):
    def is_authorized_dag(self, *, method: Any, user: Any, access_entity: Any = None, details: Any = None) -> bool:
        dag_id = getattr(details, "id", None)
        ASKED.append((user.get_name(), method, getattr(access_entity, "value", None), dag_id))
        allowed = READABLE_DAGS.get(user.get_name())
        if allowed is not None and dag_id not in allowed:
            return False
        return super().is_authorized_dag(method=method, user=user, access_entity=access_entity, details=details)

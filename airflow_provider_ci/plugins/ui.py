"""CloudInfinitePlugin: a "Tencent CI" tab on every task instance, served by the API server.

Registered through the ``airflow.plugins`` entry point, so installing the provider is enough.
The FastAPI app is built on the first request, not at import: every Airflow process loads
plugins, and only the API server ever serves this one (no FastAPI, Jinja or Pillow work in the
scheduler, the workers or the dag-processor).
"""

from __future__ import annotations

import threading
from typing import Any

from airflow.plugins_manager import AirflowPlugin

URL_PREFIX = "/tencent-ci"
#: Relative (no leading slash): the UI resolves it against its own base URL.
HREF = "tencent-ci/task-instances/{DAG_ID}/{RUN_ID}/{TASK_ID}?map_index={MAP_INDEX}"


class LazyApp:
    """An ASGI app that builds :func:`airflow_provider_ci.plugins.app.create_app` when first called."""

    def __init__(self) -> None:
        self._app: Any = None
        self._lock = threading.Lock()

    @property
    def app(self) -> Any:
        """The FastAPI app (built now if it was not yet)."""
        if self._app is None:
            with self._lock:
                if self._app is None:
                    from airflow_provider_ci.plugins.app import create_app

                    self._app = create_app()
        return self._app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


app = LazyApp()


class CloudInfinitePlugin(AirflowPlugin):
    """The Tencent CI view: job state, images before and after, batch progress; read-only.

    See ``docs/ui.md`` for what it shows and how access is checked.
    """

    name = "tencent_ci"
    fastapi_apps = [{"app": app, "url_prefix": URL_PREFIX, "name": "Tencent CI"}]  # noqa: RUF012
    external_views = [  # noqa: RUF012
        {
            "name": "Tencent CI",
            "href": HREF,
            "destination": "task_instance",
            "url_route": "tencent-ci",
        }
    ]

"""``Emulator``: run the server in a background thread and drive it from (synchronous) test code.

The server owns its own event loop in a daemon thread, so it works the same under plain pytest,
pytest-asyncio (whose loop it never shares) and a DAG's ``dag.test()``. Methods called from
other threads are marshalled onto that loop, because the job state is single-threaded by design.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from aiohttp import web

from .config import DEFAULT_HOST, DEFAULT_SECRET_ID, DEFAULT_SECRET_KEY, EmulatorConfig
from .faults import Faults
from .scheduler import ACTIVE, PAUSED
from .server import build_app
from .state import EmulatorState, RequestRecord
from .throttle import DEFAULT_QPS_LIMIT, AccountThrottle

T = TypeVar("T")

#: Seconds to let in-flight requests finish on stop (a ``latency`` fault may hold one).
SHUTDOWN_TIMEOUT = 2.0


class Emulator:
    """A local Tencent Cloud Infinite service; see the package docstring for an example."""

    def __init__(
        self,
        data_dir: str | Path,
        host: str = DEFAULT_HOST,
        port: int = 0,
        secret_id: str = DEFAULT_SECRET_ID,
        secret_key: str = DEFAULT_SECRET_KEY,
        token: str | None = None,
        queue_delay: float = 0.2,
        run_time: float = 0.3,
        workers: int = 10,
        buckets: Iterable[str] = (),
        qps_limit: int = DEFAULT_QPS_LIMIT,
        max_ids_per_get: int = 0,
    ) -> None:
        self.config = EmulatorConfig(
            Path(data_dir),
            secret_id,
            secret_key,
            token,
            queue_delay,
            run_time,
            workers,
            tuple(buckets),
            qps_limit,
            max_ids_per_get,
        )
        self.host = host
        self.port = port
        self._state = EmulatorState(self.config)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> Emulator:
        """Start serving; returns once the port is bound (``self.port`` is then the real one)."""
        if self._thread is not None:
            raise RuntimeError("this Emulator was already started; create a new one")
        ready = threading.Event()
        failure: list[BaseException] = []
        self._thread = threading.Thread(target=self._serve, args=(ready, failure), name="ci-emulator", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            self._thread.join()
            raise failure[0]
        return self

    def stop(self) -> None:
        """Stop serving and wait for the server thread; safe to call twice."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None or not thread.is_alive():
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join()

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _serve(self, ready: threading.Event, failure: list[BaseException]) -> None:
        loop = self._loop = asyncio.new_event_loop()
        try:
            try:
                loop.run_until_complete(self._start_site())
            except BaseException as exc:
                failure.append(exc)
                return
            finally:
                ready.set()
            loop.run_forever()
            loop.run_until_complete(self._shutdown())
        finally:
            loop.close()

    async def _start_site(self) -> None:
        self._runner = web.AppRunner(
            build_app(self._state), access_log=None, handle_signals=False, shutdown_timeout=SHUTDOWN_TIMEOUT
        )
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        self.port = self._runner.addresses[0][1]

    async def _shutdown(self) -> None:
        self._state.close()
        if self._runner is not None:
            await self._runner.cleanup()

    def _call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn`` on the server loop (directly when not serving, or already on that loop)."""
        loop, thread = self._loop, self._thread
        if loop is None or not loop.is_running() or threading.current_thread() is thread:
            return fn(*args)

        async def call() -> T:
            return fn(*args)

        return asyncio.run_coroutine_threadsafe(call(), loop).result()

    # -- where and who -----------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Base URL to send requests to, e.g. ``http://127.0.0.1:8818``."""
        host = "127.0.0.1" if self.host in ("", "0.0.0.0") else self.host
        return f"http://{host}:{self.port}"

    @property
    def secret_id(self) -> str:
        return self.config.secret_id

    @property
    def secret_key(self) -> str:
        return self.config.secret_key

    @property
    def token(self) -> str | None:
        return self.config.token

    def connection_extra(self, bucket: str, region: str) -> dict[str, str]:
        """The ``extra`` of a ``tencent_ci`` connection that talks to this emulator."""
        extra = {"region": region, "bucket": bucket, "endpoint_url": self.url}
        if self.config.token is not None:
            extra["token"] = self.config.token
        return extra

    def airflow_connection(self, bucket: str, region: str, conn_type: str = "tencent_ci") -> dict[str, Any]:
        """A connection as JSON for ``AIRFLOW_CONN_<ID>`` (``json.dumps`` it)."""
        return {
            "conn_type": conn_type,
            "login": self.config.secret_id,
            "password": self.config.secret_key,
            "extra": self.connection_extra(bucket, region),
        }

    # -- state -------------------------------------------------------------------------------

    @property
    def faults(self) -> Faults:
        """Arm injected failures: ``emulator.faults.add("status", status=503, path="/jobs")``."""
        return self._state.faults

    @property
    def requests(self) -> list[RequestRecord]:
        """The live request log, oldest first, without ``/_emulator/`` calls.

        Live so that ``emulator.requests.clear()`` works; copy it (``list(...)``) to keep a
        snapshot while requests are still arriving.
        """
        return self._state.requests

    def clear_requests(self) -> None:
        """Empty the request log, the per-route counters of ``stats()`` and the throttled count."""
        self._call(self._state.clear_requests)

    def stats(self) -> dict[str, Any]:
        return self._call(self._state.stats)

    # -- limits ------------------------------------------------------------------------------

    @property
    def qps_limit(self) -> int:
        """Requests per second each account (SecretId) may make to CI hosts; 0 = no limit."""
        return self._state.throttle.limit

    @qps_limit.setter
    def qps_limit(self, limit: int) -> None:
        self._call(self._state.set_limits, limit, None)

    @property
    def max_ids_per_get(self) -> int:
        """Most job ids one ``GET /jobs/<ids>`` may name (400 ``InvalidArgument`` beyond); 0 = no cap."""
        return self._state.max_ids_per_get

    @max_ids_per_get.setter
    def max_ids_per_get(self, cap: int) -> None:
        self._call(self._state.set_limits, None, cap)

    @property
    def throttle(self) -> AccountThrottle:
        """The rate limit itself: refusals per account, and its ``clock`` (a test may freeze it)."""
        return self._state.throttle

    @property
    def throttled(self) -> int:
        """Requests refused with 503 ``SlowDown`` since the last ``clear_requests()``/``reset()``."""
        return self._state.throttle.refused_total

    def reset(self) -> None:
        """Forget jobs, templates, queues, faults, the request log and pic-processing switches;
        keep buckets and objects."""
        self._call(self._state.reset)

    def create_bucket(self, name: str) -> None:
        self._call(self._state.storage.create_bucket, name)

    def disable_pic_processing(self, bucket: str) -> None:
        """Make ``bucket`` look as if asynchronous image processing was never enabled for it."""
        self._call(self._state.set_pic_processing, bucket, False)

    def enable_pic_processing(self, bucket: str) -> None:
        self._call(self._state.set_pic_processing, bucket, True)

    def put_object(self, bucket: str, key: str, data: bytes) -> str:
        """Store an object directly (no HTTP); returns its ETag."""
        if not self._state.storage.has_bucket(bucket):
            raise ValueError(f"no such bucket {bucket!r}")
        return self._call(self._state.storage.put, bucket, key, data)

    def get_object(self, bucket: str, key: str) -> bytes:
        """Read an object directly; ``FileNotFoundError`` if it does not exist."""
        return self._call(self._state.storage.get, bucket, key)

    def jobs(self, bucket: str | None = None) -> list[dict[str, Any]]:
        """Snapshots of every job's ``JobsDetail`` in creation order: dicts keyed by the XML
        element names, values as the API renders them (``"-"`` for a time not reached yet)."""
        return self._call(self._state.job_details, bucket)

    def pause_queue(self, bucket: str | None = None) -> None:
        """Pause the queue of ``bucket`` (default: every bucket's)."""
        self._call(self._state.set_queues_state, PAUSED, bucket)

    def resume_queue(self, bucket: str | None = None) -> None:
        self._call(self._state.set_queues_state, ACTIVE, bucket)

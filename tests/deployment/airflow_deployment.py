"""A real Airflow 3 deployment for tests: one process per component, started and stopped by PID.

Each component (api-server, scheduler, dag-processor, triggerers, Celery workers) runs as
its own ``airflow`` CLI process in its own session, with its output in ``<home>/logs/<name>.out``,
so a test can kill exactly one of them (a triggerer, a task process) and start it again.
Stopping is SIGTERM with a bound, then SIGKILL of whatever is left of the process group; the
harness reports which components needed the hard stop, and why, instead of hiding it.

The topology is the caller's: with ``database`` (a PostgreSQL URL) and ``broker`` (a Redis URL)
it is the one users scale out with, CeleryExecutor and a networked metadata DB whose row locks
keep two triggerers (or schedulers) from taking the same work; ``tests/deployment`` runs that
(see ``services.py``). Without them it is SQLite in ``home`` and the LocalExecutor inside the
scheduler: one host, no servers, enough for a single-triggerer benchmark.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import psutil
import requests

T = TypeVar("T")

#: The upstream deferral race (apache/airflow#71580, #72716): an executor "success" from the
#: defer exit lands after the trigger already re-queued (or even restarted) the task, and the
#: scheduler fails that try. Only a retry after this log line for that task is excused.
DEFERRAL_RACE = re.compile(r"finished with state success, but the task instance's state attribute is (queued|running)")
TERMINAL_RUN_STATES = {"success", "failed"}
#: Airflow's scheduler exits by raising SystemExit from its SIGTERM handler. A signal that lands
#: while a weakref callback or ``__del__`` runs has that SystemExit printed and swallowed, and the
#: process runs on (seen in CI: SQLAlchemy's ``_collection_gced``). The signal is lost, not refused.
SWALLOWED_EXIT = re.compile(r"^Exception ignored (?:in|while)\b.*?^SystemExit\b", re.M | re.S)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(what: str, probe: Callable[[], T | None], timeout: float, interval: float = 0.5) -> T:
    """Poll ``probe`` until it returns something truthy; fail naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


@dataclass
class Component:
    name: str
    process: subprocess.Popen[bytes]
    log: Path
    hard_stopped: bool = False
    #: Why it needed SIGKILL: it outlived the timeout, or what it forked outlived it.
    hard_stop_reason: str = ""
    #: The stop signal was swallowed (``SWALLOWED_EXIT``) and sent once more, as a supervisor would.
    resignalled: bool = False
    #: A triggerer's job id (its ``triggerer_id`` on the triggers it runs), once registered.
    job_id: int | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None


@dataclass
class Deployment:
    """A deployment under ``home`` serving ``dags``; ``env`` is added to every process."""

    home: Path
    dags: Path
    env: Mapping[str, str] = field(default_factory=dict)
    parallelism: int = 6
    #: SQLAlchemy URL of the metadata DB (PostgreSQL); None: SQLite in ``home``.
    database: str | None = None
    #: Celery broker URL (Redis): tasks run on ``airflow celery worker`` processes (``start_worker``)
    #: instead of the scheduler's LocalExecutor. The Celery results go to ``database``.
    broker: str | None = None
    components: dict[str, Component] = field(default_factory=dict)
    stopped: list[Component] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self._session = requests.Session()
        self.base_env = {
            **os.environ,
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
            **self._topology(),
            "AIRFLOW__CORE__PARALLELISM": str(self.parallelism),
            "AIRFLOW__CORE__FERNET_KEY": _fernet_key(),
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.base_url}/execution/",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__API__BASE_URL": self.base_url,
            # No login page: the suite (and the browser test) act as the admin.
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
            # Operators defer unless a DAG says otherwise, as many production deployments set it.
            "AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE": "True",
            # One retry by default (the example DAGs set none) against the upstream deferral
            # race; unexplained_retries() fails any retry that race does not account for.
            "AIRFLOW__CORE__DEFAULT_TASK_RETRIES": "1",
            "AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY": "1",
            # A dead triggerer's work moves in seconds, not minutes; not shorter, as a live
            # triggerer's heartbeat was measured to stall for 8 s here (a false failover).
            "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "1",
            "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "20",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "PYTHONUNBUFFERED": "1",
            **self.env,
        }
        (self.home / "logs").mkdir(parents=True, exist_ok=True)

    def _topology(self) -> dict[str, str]:
        """The executor, metadata DB and broker settings."""
        settings = {"AIRFLOW__CORE__EXECUTOR": "CeleryExecutor" if self.broker else "LocalExecutor"}
        if self.database:
            settings["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = self.database
        if self.broker:
            if not self.database:
                raise ValueError("broker: the CeleryExecutor needs a networked database (database=...), not SQLite")
            settings.update(
                {
                    "AIRFLOW__CELERY__BROKER_URL": self.broker,
                    "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{self.database}",
                    "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(self.parallelism),
                    # Tasks go to Redis as they are queued, not in a later batch.
                    "AIRFLOW__CELERY__SYNC_PARALLELISM": "1",
                }
            )
        return settings

    # -- processes ------------------------------------------------------------------------------

    def airflow(self, *args: str, timeout: float = 180) -> str:
        """Run one ``airflow`` CLI command to completion; its output, or an error naming it."""
        done = subprocess.run(
            [_airflow(), *args], env=self.base_env, capture_output=True, text=True, timeout=timeout, check=False
        )
        if done.returncode:
            raise RuntimeError(f"airflow {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
        return done.stdout

    def start(self, name: str, *args: str, env: Mapping[str, str] | None = None) -> Component:
        """Start ``airflow <args>`` as component ``name`` (its own session, so its group can be signalled)."""
        if name in self.components and self.components[name].alive():
            raise RuntimeError(f"{name} is already running (pid {self.components[name].pid})")
        log = self.home / "logs" / f"{name}.out"
        with log.open("ab") as out:
            process = subprocess.Popen(
                [_airflow(), *args],
                env={**self.base_env, **(env or {})},
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.components[name] = Component(name, process, log)
        return self.components[name]

    def start_triggerer(self, name: str = "triggerer", *args: str) -> int:
        """Start ``airflow triggerer <args>`` as component ``name``; its triggerer job id once registered.

        New ids only: a SIGKILLed triggerer's job stays "running" in the DB. Each triggerer gets
        its own log-server port, as two triggerers on one host would otherwise collide on it.
        """
        known = set(self.triggerer_jobs())
        port = {"AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port())}
        triggerer = self.start(name, "triggerer", *args, env=port)
        triggerer.job_id = wait_for(
            f"{name} to register", lambda: max(set(self.triggerer_jobs()) - known, default=0), timeout=90
        )
        return triggerer.job_id

    def start_worker(self, name: str = "worker", *args: str) -> Component:
        """Start a Celery worker as component ``name`` and wait until it consumes from the queue.

        Each worker gets its own log-server port (two on one host would collide on it).
        """
        if not self.broker:
            raise RuntimeError("start_worker: this deployment has no Celery broker (broker=...)")
        port = {"AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port())}
        worker = self.start(name, "celery", "worker", "--celery-hostname", f"{name}@%h", *args, env=port)
        wait_for(f"Celery worker {name} to be ready", lambda: self._worker_ready(worker), timeout=120)
        return worker

    def _worker_ready(self, worker: Component) -> bool:
        if not worker.alive():
            raise RuntimeError(f"{worker.name} exited {worker.process.returncode}:\n{self.log(worker.name)[-3000:]}")
        return " ready." in worker.log.read_text(errors="replace")

    def stop(self, name: str, *, sig: int = signal.SIGTERM, timeout: float = 30) -> Component:
        """Signal component ``name`` by PID; after ``timeout`` s, SIGKILL it and what it forked."""
        component = self.components.pop(name)
        children = _tree(component.pid)[1:]
        if not _signal_and_wait(component, sig, timeout):
            component.hard_stopped = True
            component.hard_stop_reason = f"still running {timeout:g} s after signal {sig}"
        # Task runners and log servers the component forked must not outlive it; a moment's
        # grace for those that exit when their parent does (end of a pipe).
        leftovers = still_running(children, grace=5)
        if leftovers:
            component.hard_stopped = True
            component.hard_stop_reason += f"; left running: {[_describe(p) for p in leftovers]}"
        _kill_all(leftovers)
        if component.alive():
            _kill_all(_tree(component.pid))
            component.process.wait(timeout=10)
        self.stopped.append(component)
        return component

    def kill(self, name: str) -> Component:
        """A crash, as when its container or host dies: SIGKILL to the component and all it forked."""
        component = self.components.pop(name)
        _kill_all(_tree(component.pid))
        component.process.wait(timeout=10)
        self.stopped.append(component)
        return component

    def freeze(self, name: str) -> list[psutil.Process]:
        """SIGSTOP the component and its children: alive, but silent (a stalled host or VM)."""
        group = _tree(self.components[name].pid)
        for process in group:
            process.suspend()
        return group

    def thaw(self, group: list[psutil.Process]) -> None:
        for process in group:
            process.resume()

    def stop_all(self) -> list[str]:
        """Stop every component, api-server last; for each that needed SIGKILL, its name and why."""
        order = sorted(self.components, key=lambda name: name == "api-server")
        stopped = [self.stop(name) for name in order]
        return [f"{c.name} ({c.hard_stop_reason.lstrip('; ')})" for c in stopped if c.hard_stopped]

    def log(self, name: str) -> str:
        component = self.components.get(name) or next(c for c in reversed(self.stopped) if c.name == name)
        return component.log.read_text(errors="replace")

    def logs(self) -> dict[Path, str]:
        """Every log file the deployment wrote: component outputs and task/trigger logs."""
        return {path: path.read_text(errors="replace") for path in (self.home / "logs").rglob("*") if path.is_file()}

    # -- REST API -------------------------------------------------------------------------------

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        """Call the api-server's REST API (``/api/v2`` + ``path``) as the admin; JSON answer."""
        if "Authorization" not in self._session.headers:
            token = self._session.get(f"{self.base_url}/auth/token", timeout=30).json()["access_token"]
            self._session.headers["Authorization"] = f"Bearer {token}"
        response = self._session.request(method, f"{self.base_url}/api/v2{path}", timeout=30, **kwargs)
        if response.status_code >= 400:
            raise RuntimeError(f"{method} {path} -> {response.status_code}: {response.text[:500]}")
        return response.json() if response.content else None

    def healthy(self) -> bool:
        try:
            health = self._session.get(f"{self.base_url}/api/v2/monitor/health", timeout=5).json()
        except (requests.RequestException, ValueError):
            return False
        return all(health.get(part, {}).get("status") == "healthy" for part in ("metadatabase", "scheduler"))

    def wait_for_dags(self, dag_ids: Iterable[str], timeout: float = 120) -> None:
        wanted = set(dag_ids)

        def parsed() -> bool:
            found = {dag["dag_id"] for dag in self.api("GET", "/dags", params={"limit": 100})["dags"]}
            return wanted <= found

        wait_for(f"the dag-processor to parse {sorted(wanted)}", parsed, timeout, interval=1)
        for dag_id in wanted:
            self.api("PATCH", f"/dags/{dag_id}", json={"is_paused": False})

    def trigger(self, dag_id: str, conf: Mapping[str, Any] | None = None) -> str:
        run = self.api("POST", f"/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": dict(conf or {})})
        return str(run["dag_run_id"])

    def run_state(self, dag_id: str, run_id: str) -> str:
        return str(self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}")["state"])

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 180) -> str:
        return wait_for(
            f"run {dag_id}/{run_id} to finish",
            lambda: (state := self.run_state(dag_id, run_id)) in TERMINAL_RUN_STATES and state,
            timeout,
        )

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        """Every task instance of the run, page by page (the API answers at most 100 at a time)."""
        tis: list[dict[str, Any]] = []
        while True:
            params = {"limit": 100, "offset": len(tis)}
            answer = self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", params=params)
            tis += answer["task_instances"]
            if not answer["task_instances"] or len(tis) >= answer["total_entries"]:
                return tis

    def wait_for_states(self, dag_id: str, run_id: str, states: set[str], count: int, timeout: float = 120) -> list:
        """Wait until ``count`` task instances of the run are in one of ``states``; those TIs."""

        def reached() -> list[dict[str, Any]]:
            tis = [ti for ti in self.task_instances(dag_id, run_id) if ti["state"] in states]
            return tis if len(tis) >= count else []

        return wait_for(f"{count} task(s) of {dag_id}/{run_id} in {sorted(states)}", reached, timeout)

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int, map_index: int = -1) -> str:
        """The task's log as the UI shows it: worker lines and, for a deferral, the triggerer's."""
        response = self._session.get(
            f"{self.base_url}/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}",
            params={"full_content": "true", "map_index": map_index},
            headers={"Accept": "application/json"},
            timeout=30,
        )
        response.raise_for_status()
        content = response.json()["content"]
        if isinstance(content, list):
            return "\n".join(json.dumps(line) if not isinstance(line, str) else line for line in content)
        return str(content)

    def unexplained_retries(self, dag_id: str, run_id: str) -> list[str]:
        """Task instances that needed a second try for any reason but the known upstream race."""
        scheduler_log = self.log("scheduler")
        suspects = []
        for ti in self.task_instances(dag_id, run_id):
            if ti["try_number"] > 1:
                # The scheduler names the task as <TaskInstance: dag.task run [map_index=n ][state]>.
                mapped = f" map_index={ti['map_index']} [" if ti["map_index"] >= 0 else " ["
                marker = f"{dag_id}.{ti['task_id']} {run_id}{mapped}"
                race = [line for line in scheduler_log.splitlines() if DEFERRAL_RACE.search(line) and marker in line]
                if len(race) < ti["try_number"] - 1:
                    suspects.append(f"{ti['task_id']}[{ti['map_index']}] try {ti['try_number']}")
        return suspects

    def trigger_logs(self, dag_id: str, run_id: str) -> dict[int, dict[int, str]]:
        """Map index -> {triggerer job id: that triggerer's log of the task's wait}.

        Each triggerer writes its part of a deferred task's log to ``<attempt>.log.trigger.<job id>.log``,
        so these files say which triggerer process ran which wait.
        """
        found: dict[int, dict[int, str]] = {}
        folder = self.home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}"
        for path in folder.rglob("*.log.trigger.*.log"):
            map_index = next((int(p.split("=")[1]) for p in path.parts if p.startswith("map_index=")), -1)
            triggerer = int(path.name.rsplit(".trigger.", 1)[1].split(".")[0])
            found.setdefault(map_index, {})[triggerer] = path.read_text(errors="replace")
        return found

    # -- metadata DB (read-only peeks at what the API does not show) ----------------------------

    def triggers(self, run_id: str) -> dict[int, int]:
        """Map index -> the triggerer job running its trigger, for the deferred tasks of ``run_id``."""
        rows = self.query(
            "SELECT ti.map_index, t.triggerer_id FROM task_instance ti JOIN trigger t ON ti.trigger_id = t.id"
            " WHERE ti.run_id = ? AND t.triggerer_id IS NOT NULL",
            run_id,
        )
        return dict(rows)

    def triggerer_jobs(self) -> list[int]:
        """Ids of the triggerer jobs that are running (by their own account), oldest first."""
        rows = self.query("SELECT id FROM job WHERE job_type = 'TriggererJob' AND state = 'running' ORDER BY id")
        return [row[0] for row in rows]

    def query(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        """Rows of one read-only query; ``?`` placeholders on either database."""
        if not self.database:
            with sqlite3.connect(f"file:{self.home / 'airflow.db'}?mode=ro", uri=True, timeout=30) as db:
                return db.execute(sql, args).fetchall()
        with closing(self.connect()) as db, db.cursor() as cursor:
            cursor.execute(sql.replace("%", "%%").replace("?", "%s"), args)
            return list(cursor.fetchall())

    def connect(self) -> Any:
        """A read-only psycopg2 connection to the PostgreSQL metadata DB; the caller closes it."""
        import psycopg2
        from sqlalchemy.engine import make_url

        if not self.database:
            raise RuntimeError("connect: this deployment's metadata DB is SQLite; use query()")
        url = make_url(self.database)
        db = psycopg2.connect(
            host=url.host, port=url.port, user=url.username, password=url.password, dbname=url.database
        )
        db.set_session(readonly=True, autocommit=True)
        return db

    def tables(self) -> list[str]:
        """The metadata DB's table names."""
        if not self.database:
            sql = "SELECT name FROM sqlite_master WHERE type = 'table'"
        else:
            sql = "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
        return [name for (name,) in self.query(sql)]


def _airflow() -> str:
    return str(Path(sys.executable).with_name("airflow"))


def _fernet_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


def _tree(pid: int) -> list[psutil.Process]:
    """The process and everything it forked, parent first; empty once it is gone."""
    try:
        process = psutil.Process(pid)
        return [process, *process.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _signal_and_wait(component: Component, sig: int, timeout: float) -> bool:
    """Send ``sig`` and wait up to ``timeout`` s for the component to exit; True if it did.

    A signal whose SystemExit the component's log shows swallowed is sent once more."""
    log_start = component.log.stat().st_size if component.log.exists() else 0
    deadline = time.monotonic() + timeout
    try:
        os.kill(component.pid, sig)
    except ProcessLookupError:
        return True
    while (left := deadline - time.monotonic()) > 0:
        try:
            component.process.wait(timeout=min(left, 1))
            return True
        except subprocess.TimeoutExpired:
            pass
        if not component.resignalled and _swallowed_exit(component.log, log_start):
            component.resignalled = True
            os.kill(component.pid, sig)
    return False


def _swallowed_exit(log: Path, start: int) -> bool:
    with log.open("rb") as out:
        out.seek(start)
        return bool(SWALLOWED_EXIT.search(out.read().decode(errors="replace")))


def still_running(processes: list[psutil.Process], grace: float) -> list[psutil.Process]:
    """Those of ``processes`` still running after up to ``grace`` s. A zombie has exited: it
    only waits to be reaped, which on a machine whose PID 1 reaps nothing (this one) is never."""

    def running(process: psutil.Process) -> bool:
        try:
            return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    deadline = time.monotonic() + grace
    while (left := [p for p in processes if running(p)]) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


def _describe(process: psutil.Process) -> str:
    try:
        return f"{process.pid} {' '.join(process.cmdline()[:4])}"
    except psutil.Error:
        return str(process.pid)


def _kill_all(processes: Iterable[psutil.Process]) -> None:
    alive = []
    for process in processes:
        try:
            process.kill()
            alive.append(process)
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=10)

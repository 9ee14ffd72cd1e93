"""The servers a scaled-out Airflow needs besides its own processes: PostgreSQL and Redis.

Each is Debian's package (``scripts/install-services.sh`` installs them; ``make test`` runs it),
started by the suite in a temporary folder on a free loopback port and stopped by PID, so a test
run neither needs nor touches a system-wide database or broker. PostgreSQL refuses to run as
root: when the suite is root (as in CI), the cluster belongs to the ``postgres`` user that
Debian's package creates, and its folder is handed to that user.
"""

from __future__ import annotations

import glob
import json
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from contextlib import closing
from pathlib import Path
from typing import Any

from tests.deployment.airflow_deployment import free_port, wait_for

#: Set in CI (``.ci/run``): a missing PostgreSQL or Redis fails the deployment suite instead of skipping it.
REQUIRE_ENV = "CI_REQUIRE_SERVICES"
INSTALL_HINT = "scripts/install-services.sh (run by `make test`) installs Debian's postgresql and redis-server"
USER = "airflow"
DATABASE = "airflow"
#: Durability is not under test: a crashed test cluster is thrown away, never recovered.
POSTGRES_SETTINGS = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    # api-server, scheduler, dag-processor, two triggerers, a Celery worker and its result
    # backend each keep a pool (5 + 10 overflow by default).
    "max_connections": "300",
    # Counts the statements the triggerers ran, so the HA test can see their row locks.
    "shared_preload_libraries": "pg_stat_statements",
    "pg_stat_statements.track": "all",
    # A statement waiting over a second for a lock is logged with who holds it (and so is a deadlock).
    "log_lock_waits": "on",
    "deadlock_timeout": "1s",
}


class ServiceMissing(RuntimeError):
    """A server binary is not installed here."""


def postgres_bin() -> Path:
    """The folder of ``initdb``/``postgres``: on PATH, else Debian's ``/usr/lib/postgresql/<version>/bin``."""
    found = shutil.which("initdb")
    if found:
        return Path(os.path.realpath(found)).parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if not versions:
        raise ServiceMissing(f"no PostgreSQL server (initdb) found; {INSTALL_HINT}")
    return Path(versions[-1]).parent


def redis_bin() -> str:
    found = shutil.which("redis-server")
    if not found:
        raise ServiceMissing(f"no redis-server found; {INSTALL_HINT}")
    return found


class _Server:
    """A server process in its own session, stopped by PID: ``stop_signal``, then SIGKILL after a bound.

    Its files live in a temporary folder removed after it stops; its log goes to ``logs`` when
    given (kept, to read after a failed run), else into that folder.
    """

    name = "server"
    stop_signal = signal.SIGTERM

    def __init__(self, logs: Path | None = None) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix=f"airflow-deployment-{self.name}-"))
        self.log = (logs or self.folder) / f"{self.name}.log"
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.hard_stopped = False

    def _launch(self, args: list[str], **kwargs: Any) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True, **kwargs
            )

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def check_alive(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"{self.name} exited {self.process.returncode}:\n{self.log.read_text(errors='replace')}")
        return True

    def stop(self, timeout: float = 30) -> None:
        """Stop the server by PID; SIGKILL (and ``hard_stopped``) if it has not exited within ``timeout`` s."""
        if self.process is None:
            return
        try:
            self.process.send_signal(self.stop_signal)
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.hard_stopped = True
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> _Server:
        try:
            self.start()
        except BaseException:
            self.stop()
            self.remove()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.stop()
        finally:
            self.remove()

    def start(self) -> None:
        raise NotImplementedError


class PostgresServer(_Server):
    """A throwaway PostgreSQL cluster: superuser ``airflow`` (trust auth, loopback only), database ``airflow``."""

    name = "postgres"
    #: "Fast" shutdown: roll back open transactions and exit.
    stop_signal = signal.SIGINT

    def __init__(self, logs: Path | None = None) -> None:
        self.bin = postgres_bin()
        super().__init__(logs)
        self.data = self.folder / "data"
        # As root, the cluster runs as Debian's ``postgres`` user (initdb and postgres refuse root).
        self.owner = _postgres_user() if os.geteuid() == 0 else None

    @property
    def url(self) -> str:
        """The SQLAlchemy URL Airflow connects with."""
        return f"postgresql+psycopg2://{USER}@127.0.0.1:{self.port}/{DATABASE}"

    def start(self) -> None:
        as_owner: dict[str, Any] = {"cwd": self.folder}
        if self.owner is not None:
            os.chown(self.folder, self.owner.pw_uid, self.owner.pw_gid)
            as_owner.update(user=self.owner.pw_uid, group=self.owner.pw_gid, extra_groups=[])
            as_owner["env"] = {"PATH": os.environ.get("PATH", ""), "HOME": str(self.folder), "LC_ALL": "C.UTF-8"}
        initdb = [str(self.bin / "initdb"), "-D", str(self.data), "-U", USER, "--auth=trust", "-E", "UTF8"]
        done = subprocess.run(
            [*initdb, "--locale=C", "--no-sync"], capture_output=True, text=True, check=False, **as_owner
        )
        if done.returncode:
            raise RuntimeError(f"initdb exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
        settings = [arg for key, value in POSTGRES_SETTINGS.items() for arg in ("-c", f"{key}={value}")]
        args = [str(self.bin / "postgres"), "-D", str(self.data), "-p", str(self.port), "-h", "127.0.0.1"]
        self._launch([*args, "-k", str(self.folder), *settings], **as_owner)
        wait_for("PostgreSQL to accept connections", lambda: self.check_alive() and self._ready(), timeout=60)
        self.execute(f"CREATE DATABASE {DATABASE}", database="postgres")
        self.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")

    def _ready(self) -> bool:
        import psycopg2

        try:
            self.connect("postgres").close()
        except psycopg2.OperationalError:
            return False
        return True

    def execute(self, sql: str, *args: Any, database: str = DATABASE) -> list[tuple[Any, ...]]:
        """Run one statement outside a transaction (autocommit); its rows, if any."""
        with closing(self.connect(database, autocommit=True)) as db, db.cursor() as cursor:
            cursor.execute(sql, args or None)
            return list(cursor.fetchall()) if cursor.description else []

    def connect(self, database: str = DATABASE, *, autocommit: bool = False) -> Any:
        """A psycopg2 connection to ``database`` as the superuser; the caller closes it
        (psycopg2's ``with connection`` is a transaction, not a close)."""
        import psycopg2

        db = psycopg2.connect(host="127.0.0.1", port=self.port, user=USER, dbname=database, connect_timeout=5)
        db.autocommit = autocommit
        return db


def _postgres_user() -> pwd.struct_passwd:
    try:  # Debian's package creates it
        return pwd.getpwnam("postgres")
    except KeyError:
        raise ServiceMissing(f"PostgreSQL does not run as root and no 'postgres' user exists; {INSTALL_HINT}") from None


class RedisServer(_Server):
    """A throwaway Redis (no persistence, loopback only): the Celery broker."""

    name = "redis"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self._launch(
            [
                redis_bin(),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.folder),
            ],
            cwd=self.folder,
        )
        wait_for("Redis to answer PING", lambda: self.check_alive() and self._ping(), timeout=30)

    def _client(self) -> Any:
        import redis

        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5)

    def _ping(self) -> bool:
        import redis

        try:
            return bool(self._client().ping())
        except redis.RedisError:
            return False

    def contents(self) -> str:
        """Every key and value in the broker (queued and unacknowledged messages, bindings), as text."""
        client = self._client()
        readers = {
            b"string": client.get,
            b"list": lambda key: client.lrange(key, 0, -1),
            b"hash": client.hgetall,
            b"set": client.smembers,
            b"zset": lambda key: client.zrange(key, 0, -1),
        }
        lines = []
        for key in client.scan_iter(count=1000):
            value = readers.get(client.type(key), lambda _key: None)(key)
            lines.append(f"{_text(key)}: {json.dumps(_text(value))}")
        return "\n".join(lines)


def _text(value: Any) -> Any:
    """Redis answers (bytes, nested in lists, sets and dicts) as str, for a text scan."""
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if isinstance(value, dict):
        return {_text(k): _text(v) for k, v in value.items()}
    if isinstance(value, (list, set, tuple)):
        return [_text(item) for item in value]
    return value


def or_skip(server: type[_Server], logs: Path) -> _Server:
    """A ``server`` to start (its binary found), logging to ``logs``; skip the suite without it, fail in CI."""
    import pytest

    try:
        return server(logs)
    except ServiceMissing as missing:
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"{missing} ({REQUIRE_ENV}=1)")
        pytest.skip(str(missing))

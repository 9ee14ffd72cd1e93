"""Settings of one emulator instance, shared by the CLI, the Python harness and the server."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .throttle import DEFAULT_QPS_LIMIT, check_limit

#: Test credentials accepted when none are given. Clearly fake (``AKIDCIEMULATOR...``) so they
#: can never be mistaken for, or collide with, a real Tencent Cloud key.
DEFAULT_SECRET_ID = "AKIDCIEMULATOR0000000000000000000000"
DEFAULT_SECRET_KEY = "CIEMULATORSECRETKEY0000000000000"

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8818


@dataclass(frozen=True)
class EmulatorConfig:
    """What an emulator accepts and how fast its jobs move.

    ``queue_delay`` is how long a job stays ``Submitted`` before a worker may take it and
    ``run_time`` the minimum time it stays ``Running``: both exist so clients can observe
    every state, which an instantaneous fake would hide.

    ``qps_limit`` is the per-account request rate CI allows (the service's 100/s; 0 = none),
    ``max_ids_per_get`` the most job ids one ``GET /jobs/<ids>`` may name (0 = no cap; the
    service's cap is undocumented): both can be changed while serving.
    """

    data_dir: Path
    secret_id: str = DEFAULT_SECRET_ID
    secret_key: str = DEFAULT_SECRET_KEY
    token: str | None = None
    queue_delay: float = 0.2
    run_time: float = 0.3
    workers: int = 10
    buckets: tuple[str, ...] = field(default=())
    qps_limit: int = DEFAULT_QPS_LIMIT
    max_ids_per_get: int = 0

    def __post_init__(self) -> None:
        if not self.secret_id or not self.secret_key:
            raise ValueError("secret_id and secret_key must be non-empty")
        if self.workers < 1:
            raise ValueError(f"workers must be at least 1, got {self.workers}")
        if self.queue_delay < 0 or self.run_time < 0:
            raise ValueError("queue_delay and run_time must not be negative")
        check_limit(self.qps_limit)
        check_ids_cap(self.max_ids_per_get)


def check_ids_cap(cap: object) -> int:
    """``cap`` as the most ids per ``GET /jobs/<ids>`` (0 = no cap); ``ValueError`` otherwise."""
    if isinstance(cap, bool) or not isinstance(cap, int) or cap < 0:
        raise ValueError(f"max_ids_per_get must be an integer >= 0 (0 = no cap), got {cap!r}")
    return cap

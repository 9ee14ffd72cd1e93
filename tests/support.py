"""Small helpers shared by test modules."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable
from typing import Any

from PIL import Image

from airflow_provider_ci.transport import RetryPolicy

REGION = "ap-chongqing"
#: Retries as in production, minus the waiting.
FAST_RETRY = RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.05, max_elapsed=10)


def png(width: int = 8, height: int = 6, colour: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buffer, "PNG")
    return buffer.getvalue()


def jpeg(width: int, height: int, colour: tuple[int, int, int] = (30, 120, 200)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def on_loop_forbidden(cls: type, name: str) -> Callable[..., Any]:
    """``cls.name``, made to fail when called on an event loop's thread (a worker thread is fine).

    Sync lookups and HTTP calls on the triggerer's loop are the bug this catches; Airflow 3.1's
    async connection lookup outside a triggerer falls back to a worker thread, which is allowed.
    """
    attribute = cls.__dict__[name]

    def guarded(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return attribute.__get__(self, cls)(*args, **kwargs)
        raise AssertionError(f"sync {cls.__name__}.{name} called on the event loop")

    return guarded

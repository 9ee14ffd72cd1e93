"""Small helpers shared by test modules."""

from __future__ import annotations

import io

from PIL import Image

from airflow_provider_ci.transport import RetryPolicy

REGION = "ap-chongqing"
#: Retries as in production, minus the waiting.
FAST_RETRY = RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.05, max_elapsed=10)


def png(width: int = 8, height: int = 6, colour: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buffer, "PNG")
    return buffer.getvalue()

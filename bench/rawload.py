"""The fastest honest clients: one request signed once, replayed with raw httpx or aiohttp.

They are B2's baseline and the load that measures the emulator's capacity. Signing once is
valid because COS v5 signs method, path, params and headers, not the body (no Content-MD5 is
sent), and the signature stays good for 15 minutes; each request is then pure HTTP.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiohttp
import httpx

from airflow_provider_ci.connection import ConnectionSettings
from airflow_provider_ci.emulator.config import DEFAULT_SECRET_ID, DEFAULT_SECRET_KEY
from airflow_provider_ci.model import PicProcessJob
from airflow_provider_ci.transport import ApiRequest, PreparedRequest, prepare
from bench.emulator import BUCKET, INPUT_KEY, REGION

RULE = "imageMogr2/strip"


def settings(url: str) -> ConnectionSettings:
    extra = {"region": REGION, "bucket": BUCKET, "endpoint_url": url}
    return ConnectionSettings.parse("bench", DEFAULT_SECRET_ID, DEFAULT_SECRET_KEY, extra)


def signed(url: str, request: ApiRequest) -> PreparedRequest:
    """``request`` prepared and signed once, by the provider's own signer, to be replayed."""
    conn = settings(url)
    return prepare(request, conn.endpoint(None, None), conn.credentials, time.time())


def submit_request(output_object: str = "output/raw.png") -> ApiRequest:
    """The ``POST /jobs`` the hook sends for a simple job, built once by the provider's model."""
    job = PicProcessJob(
        input_object=INPUT_KEY,
        output_object=output_object,
        output_bucket=BUCKET,
        output_region=REGION,
        process_rule=RULE,
        user_data="airflow-ci-submit:00000000000000000000000000000000",
    ).validated()
    return ApiRequest("POST", "/jobs", "raw submit", body=job.to_xml())


@dataclass(frozen=True)
class Load:
    done: int
    errors: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.done / self.seconds


async def _drive(send: Callable[[], Awaitable[int]], concurrency: int, total: int | None, seconds: float) -> Load:
    """Call ``send`` ``total`` times (or for ``seconds``) with ``concurrency`` calls in flight."""
    done = errors = 0
    remaining = iter(range(total)) if total is not None else None
    started = time.perf_counter()

    def more() -> bool:
        if remaining is not None:
            return next(remaining, None) is not None
        return time.perf_counter() < started + seconds

    async def worker() -> None:
        nonlocal done, errors
        while more():
            status = await send()
            done += 1
            errors += status != 200

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return Load(done, errors, time.perf_counter() - started)


async def replay_httpx(
    prepared: PreparedRequest, *, concurrency: int, total: int | None = None, seconds: float = 0
) -> Load:
    """With one ``httpx.AsyncClient`` at its defaults, exactly as the provider's async transport."""
    async with httpx.AsyncClient(timeout=60) as client:

        async def send() -> int:
            response = await client.request(
                prepared.method, prepared.url, headers=prepared.headers, content=prepared.body
            )
            return response.status_code

        return await _drive(send, concurrency, total, seconds)


async def replay_aiohttp(prepared: PreparedRequest, *, concurrency: int, seconds: float) -> Load:
    """With aiohttp's client, several times faster than httpx: the best load Python can offer."""
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def send() -> int:
            async with session.request(
                prepared.method, prepared.url, headers=prepared.headers, data=prepared.body
            ) as response:
                await response.read()
                return response.status

        return await _drive(send, concurrency, None, seconds)

"""E0: the emulator's own capacity, so the other benchmarks can show they measured the client.

Raw clients replay one pre-signed request per route for a couple of seconds. The emulator's
CPU share during each run tells how close it came to saturation: its HTTP server is one event
loop, so below 100 % of a core the client, not the emulator, was the limit.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

import httpx

from airflow_provider_ci.model import jobs_page
from airflow_provider_ci.transport import ApiRequest, ApiResponse, PreparedRequest, read_response
from bench.emulator import CpuMeter, EmulatorProcess, Knobs
from bench.rawload import Load, replay_aiohttp, replay_httpx, signed, submit_request
from bench.report import Section, Table, num

SECONDS = 2.0
#: Submitted jobs never start, so no image processing competes for the CPU.
KNOBS = Knobs(queue_delay=3600, run_time=0, workers=1)
CLIENTS = (("httpx", 8), ("httpx", 100), ("aiohttp", 32))


def _create_jobs(url: str, count: int) -> list[str]:
    prepared = signed(url, submit_request())
    ids = []
    with httpx.Client() as client:
        for _ in range(count):
            raw = client.post(prepared.url, headers=prepared.headers, content=prepared.body)
            result = read_response(ApiResponse(raw.status_code, raw.headers, raw.content), "submit")
            ids.append(jobs_page(result.data).jobs[0]["JobId"])
    return ids


def _load(client: str, prepared: PreparedRequest, concurrency: int) -> Load:
    if client == "httpx":
        return asyncio.run(replay_httpx(prepared, concurrency=concurrency, seconds=SECONDS))
    return asyncio.run(replay_aiohttp(prepared, concurrency=concurrency, seconds=SECONDS))


def run() -> Section:
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-e0-") as tmp, EmulatorProcess(Path(tmp) / "data", KNOBS) as emu:
        ids = _create_jobs(emu.url, 50)
        routes = {
            "GET /jobs/<1 id>": ApiRequest("GET", f"/jobs/{ids[0]}", "get"),
            "GET /jobs/<50 ids>": ApiRequest("GET", f"/jobs/{','.join(ids)}", "get"),
            "POST /jobs": submit_request(),
        }
        for name, request in routes.items():
            prepared = signed(emu.url, request)
            for client, concurrency in CLIENTS:
                meter = CpuMeter(emu)
                load = _load(client, prepared, concurrency)
                share = meter.share()
                rows.append(
                    (name, f"{client}, {concurrency} in flight", num(load.rate, 0), f"{share:.0%}", str(load.errors))
                )
    return Section(
        "e0",
        "Emulator capacity (raw clients)",
        f"One pre-signed request per route replayed for {SECONDS:.0f} s by a raw client, against the "
        f"emulator in its own process ({KNOBS}). Emulator CPU = its user+system time over the run "
        "as a share of one core; its HTTP server is a single event loop, so 100 % is saturation.",
        [Table(("route", "raw client", "requests/s", "emulator CPU", "errors"), rows)],
        notes=[
            "aiohttp's client drives the emulator several times harder than httpx can: the emulator "
            "serves at least that many requests/s, far above anything the httpx-based provider asks "
            "of it below, so the other benchmarks measure the client.",
            "httpx does not get faster with more requests in flight on one client, and with hundreds in "
            "flight it collapses (B1's batch-1 rounds): in a profile, httpcore's pool spends its time "
            "rescanning its connections for every queued request. The provider's async transport is one "
            "default `httpx.AsyncClient`, so it inherits this.",
        ],
    )

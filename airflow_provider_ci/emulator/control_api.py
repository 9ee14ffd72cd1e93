"""``/_emulator/...``: JSON control endpoints on any host, unsigned, never logged or faulted.

They make an emulator started as a subprocess (``python -m airflow_provider_ci.emulator``)
as controllable as one started from Python:

=========================================  ===============================================
``GET /_emulator/health``                  ``{"status": "ok"}``
``GET /_emulator/stats``                   request counts by route, job counts by state,
                                           buckets, active faults
``GET|DELETE /_emulator/requests``         the request log / clear it
``GET /_emulator/jobs[?bucket=]``          JobsDetail snapshots as JSON
``GET /_emulator/job_times[?bucket=]``     id, state and exact float ``created``/``started``/
                                           ``ended`` times of each job (for benchmarks)
``GET|POST|DELETE /_emulator/faults``      list / arm (object or list, fields as
                                           ``Faults.add``) / clear
``PUT /_emulator/queue``                   ``{"state": "Paused"|"Active", "bucket": opt.}``
``GET|PUT /_emulator/limits``              ``{"qps_limit": N, "max_ids_per_get": N}`` (either;
                                           0 = off); stats carry them and ``throttled``
``POST /_emulator/buckets``                ``{"name": ..., "pic_processing": true|false}``
``POST /_emulator/reset``                  forget jobs, templates, queues, faults, log,
                                           pic-processing switches (objects stay)
=========================================  ===============================================
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from .state import EmulatorState

PREFIX = "/_emulator/"


async def handle(request: web.Request, state: EmulatorState) -> web.StreamResponse:
    try:
        body = json.loads(await request.read()) if request.can_read_body else {}
    except ValueError as exc:
        return web.json_response({"error": f"the body is not JSON: {exc}"}, status=400)
    try:
        return web.json_response(_act(state, request.method, request.path[len(PREFIX) :], body, request.query))
    except LookupError as exc:
        return web.json_response({"error": str(exc)}, status=404)
    except (ValueError, TypeError, AttributeError) as exc:
        return web.json_response({"error": str(exc)}, status=400)


def _act(state: EmulatorState, method: str, name: str, body: Any, query: Mapping[str, str]) -> Any:
    match (method, name):
        case ("GET", "health"):
            return {"status": "ok"}
        case ("GET", "stats"):
            return state.stats()
        case ("GET", "requests"):
            return {"requests": [record.to_json() for record in state.requests]}
        case ("DELETE", "requests"):
            state.clear_requests()
        case ("GET", "jobs"):
            return {"jobs": state.job_details(query.get("bucket"))}
        case ("GET", "job_times"):
            return {"jobs": state.job_times(query.get("bucket"))}
        case ("GET", "faults"):
            return {"faults": [fault.to_json() for fault in state.faults.active()]}
        case ("POST", "faults"):
            return {"faults": [fault.to_json() for fault in state.faults.add_json(body)]}
        case ("DELETE", "faults"):
            state.faults.clear()
        case ("PUT", "queue"):
            state.set_queues_state(str(body.get("state")), body.get("bucket"))
        case ("GET", "limits"):
            return state.limits()
        case ("PUT", "limits"):
            unknown = set(body) - {"qps_limit", "max_ids_per_get"}
            if unknown:
                raise ValueError(f"unknown limit(s) {sorted(unknown)}: use qps_limit, max_ids_per_get")
            state.set_limits(body.get("qps_limit"), body.get("max_ids_per_get"))
            return state.limits()
        case ("POST", "buckets"):
            name = str(body.get("name"))
            state.storage.create_bucket(name)
            state.set_pic_processing(name, bool(body.get("pic_processing", True)))
        case ("POST", "reset"):
            state.reset()
        case _:
            raise LookupError(f"no control endpoint {method} {PREFIX}{name}")
    return {}

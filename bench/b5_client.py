"""B5's client process: one batch task's submits (``submit_all`` through a hook at ``max_qps``),
as the batch operator sends them, uncoordinated with the other processes of the same account.

``--fixed`` is the baseline: the shared limiter paces at ``max_qps`` but never adapts (a
throttle is counted, not acted on), which is what a fixed per-process limit does. Waits until
``--start-at`` (Unix time) after importing, so all processes begin together; prints one JSON
line (marked) with its counts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from typing import Any

from airflow_provider_ci.batch import submit_all
from airflow_provider_ci.hooks.ci import CloudInfiniteHook
from airflow_provider_ci.ratelimit import AdaptiveRateLimiter, limiter_for
from bench.emulator import INPUT_KEY, REGION
from bench.rawload import RULE

MARK = "B5CLIENT "
#: The batch operator's default ``max_concurrency``.
CONCURRENCY = 16


def _count_only(self: AdaptiveRateLimiter, sent_at: float) -> None:
    self.throttles += 1


async def _submit(index: int, count: int, max_qps: float) -> dict[str, Any]:
    hook = CloudInfiniteHook(max_qps=max_qps)
    specs = [
        {"input_object": INPUT_KEY, "output_object": f"output/b5/p{index}/{i}.png", "process_rule": RULE}
        for i in range(count)
    ]
    try:
        started = time.time()
        results = await submit_all(hook.asubmit_pic_process_job, specs, concurrency=CONCURRENCY)
        ended = time.time()
    finally:
        await hook.aclose()
    settings = await hook.asettings()
    limiter = limiter_for(settings.credentials.secret_id, REGION, max_qps)
    failures: dict[str, int] = {}
    for result in results:
        if not isinstance(result, dict):
            code = str(getattr(result, "code", None) or type(result).__name__)
            failures[code] = failures.get(code, 0) + 1
    return {
        "index": index,
        "ok": sum(isinstance(r, dict) for r in results),
        "failures": failures,
        "started": started,
        "ended": ended,
        "throttles": limiter.throttles,
        "cuts": limiter.cuts,
        "sent": limiter.granted,
        "cpu": time.process_time(),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--index", type=int, required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--max-qps", type=float, default=100.0)
    parser.add_argument("--start-at", type=float, required=True)
    parser.add_argument("--fixed", action="store_true")
    args = parser.parse_args()
    if args.fixed:
        AdaptiveRateLimiter.throttled = _count_only  # type: ignore[method-assign]
    assert os.environ.get("AIRFLOW_CONN_TENCENT_CI_DEFAULT"), "the parent sets the connection"
    time.sleep(max(0.0, args.start_at - time.time()))
    print(MARK + json.dumps(asyncio.run(_submit(args.index, args.count, args.max_qps))), flush=True)


if __name__ == "__main__":
    main()

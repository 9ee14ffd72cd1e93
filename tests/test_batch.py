"""Batch submits: the shared rate limit holds over every 1 s window, counted where the limiter acts."""

from __future__ import annotations

import pytest

from airflow_provider_ci.batch import Progress, submit_all
from airflow_provider_ci.emulator.pytest_plugin import DEFAULT_BUCKET
from airflow_provider_ci.exceptions import CloudInfiniteError
from airflow_provider_ci.hooks.ci import CloudInfiniteHook
from airflow_provider_ci.ratelimit import AdaptiveRateLimiter
from bench.stats import max_in_window
from tests.support import FAST_RETRY, png

pytestmark = pytest.mark.asyncio


async def test_limiter_never_exceeds_max_qps_in_any_second(ci_emulator, ci_emulator_conn, monkeypatch):
    """Counted where the limiter acts (each request's send), and every request is shown to pass it.

    Arrival times at the emulator add the machine's scheduling jitter, which no client-side
    limiter controls; bench/ B2 reports the busiest second as the emulator saw it.
    """
    ci_emulator.put_object(DEFAULT_BUCKET, "input/cat.png", png())
    sends: list[float] = []
    real_acquire = AdaptiveRateLimiter.aacquire

    async def counted(self):
        sent_at = await real_acquire(self)
        sends.append(sent_at)
        return sent_at

    monkeypatch.setattr(AdaptiveRateLimiter, "aacquire", counted)
    hook = CloudInfiniteHook(retry=FAST_RETRY, max_qps=40)
    specs = [
        {"input_object": "input/cat.png", "output_object": f"output/rate-{i}.png", "process_rule": "imageMogr2/strip"}
        for i in range(120)
    ]
    ci_emulator.clear_requests()
    results = await submit_all(hook.asubmit_pic_process_job, specs, concurrency=16, progress=Progress(120, "submitted"))
    await hook.aclose()
    assert all(isinstance(r, dict) for r in results)
    assert len({r["JobId"] for r in results}) == 120
    assert len([r for r in ci_emulator.requests if r.method == "POST"]) == len(sends) == 120
    assert max_in_window(sends, 1.0) <= 40


async def test_one_bad_item_does_not_hide_the_others(ci_emulator, ci_emulator_conn):
    ci_emulator.put_object(DEFAULT_BUCKET, "input/cat.png", png())
    hook = CloudInfiniteHook(retry=FAST_RETRY)
    good = {"input_object": "input/cat.png", "output_object": "output/ok.png", "process_rule": "imageMogr2/strip"}
    bad = {**good, "output_bucket": "nosuchbucket-1250000000"}
    results = await submit_all(hook.asubmit_pic_process_job, [good, bad, good], concurrency=2)
    await hook.aclose()
    assert [type(r).__name__ for r in results] == ["dict", "CloudInfiniteServiceError", "dict"]
    assert isinstance(results[1], CloudInfiniteError)

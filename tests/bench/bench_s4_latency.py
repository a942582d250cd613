"""S4 intake latency: an intent read from `orders:intent` → the first venue request.

    .venv/bin/python tests/bench/bench_s4_latency.py            # 2,000 intents
    .venv/bin/python tests/bench/bench_s4_latency.py --n 10000

Real Redis (embedded redis-server), real SQLite store, the venue simulator in process with no
simulated latency (venue latency excluded, as the target says). Each intent is XADDed, read
with XREADGROUP by the consumer, and handled; the clock starts when XREADGROUP has returned and
stops at the first call the exchange adapter receives (the liquidity probe's book read), and
separately at the first order placement. MARKET intents, one at a time. Baselines, interleaved
with the intents (same load): one Redis round trip (PING), and the same MARKET order sent
straight to the exchange adapter (the venue alone, no S4 around it).

Target (issue 5): read → first venue request p50 ≤ 1 ms, p99 ≤ 5 ms. Prints the figures and
whether the target is met; exit status 0 either way (a benchmark, not a test).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import statistics
import sys
import tempfile
import time
from decimal import Decimal as D
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from s4_router.adapters.exchange.base import BookTop, ExchangeOrder, PlaceOrderRequest  # noqa: E402
from s4_router.adapters.exchange.sim_client import SimExchange  # noqa: E402
from s4_router.entrypoints.stream_consumer import IntentConsumer  # noqa: E402
from svckit import keys  # noqa: E402
from svckit.clock import ManualClock  # noqa: E402
from svckit.embedded_redis import EmbeddedRedis  # noqa: E402
from svckit.redisio import ensure_group, make_redis, read_group, xadd_json  # noqa: E402
from tests.chaos.rig import T0, hand_venue, intent, s4_rig, set_book  # noqa: E402
from tradekit.enums import Market, OrderType, Side  # noqa: E402


class Probe(SimExchange):
    """Records when the first venue request and the first placement of an intent happen."""

    first_call: float | None = None
    first_place: float | None = None

    def arm(self) -> None:
        self.first_call = self.first_place = None

    def _mark(self) -> None:
        if self.first_call is None:
            self.first_call = time.perf_counter()

    async def fetch_book(self, market: Market, symbol: str, depth: int = 5) -> BookTop:
        self._mark()
        return await super().fetch_book(market, symbol, depth)

    async def place_order(self, req: PlaceOrderRequest) -> ExchangeOrder:
        self._mark()
        if self.first_place is None:
            self.first_place = time.perf_counter()
        return await super().place_order(req)


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * len(xs)))]


async def measure(n: int) -> dict[str, Any]:
    with EmbeddedRedis() as server, tempfile.TemporaryDirectory() as tmp:
        redis = make_redis(server.addresses)
        clock = ManualClock(T0)
        venue = hand_venue(clock)
        venue.limiter.limit = 10**9  # our overhead is measured, not the venue's weight budget
        probe = Probe(venue)
        async with s4_rig(redis, Path(tmp), clock=clock, venue=venue, exchange=probe) as r:
            consumer = IntentConsumer(
                redis=redis,
                router=r.c.router,
                clock=clock,
                group="bench",
                consumer="b1",
                claim_idle_ms=60_000,
                max_deliveries=5,
            )
            await ensure_group(redis, keys.ORDERS_INTENT, "bench")
            to_first: list[float] = []
            to_place: list[float] = []
            rtt: list[float] = []
            bare: list[float] = []
            for i in range(n):
                body = intent(
                    client_order_id=f"lat-{i}",
                    intent_id=f"i{i}",
                    side="BUY" if i % 2 == 0 else "SELL",
                    created_ts=clock.now_ms(),
                ).model_dump(mode="json")
                await xadd_json(redis, keys.ORDERS_INTENT, body)
                (entry,) = await read_group(redis, keys.ORDERS_INTENT, "bench", "b1", block_ms=100)
                probe.arm()
                t_read = time.perf_counter()
                await consumer.handle(entry)
                if probe.first_call is None or probe.first_place is None:
                    view = await r.c.router.get(f"lat-{i}")
                    raise RuntimeError(f"intent lat-{i} sent nothing: {view and view['order']}")
                # Baselines, interleaved so that they see the same machine load (after S4's
                # first intent has set the symbol's margin mode): one Redis
                # round trip, and the same MARKET order straight to the adapter (the venue
                # alone, no S4 around it).
                b0 = time.perf_counter()
                await redis.ping()
                b1 = time.perf_counter()
                await SimExchange.place_order(
                    probe,
                    PlaceOrderRequest(
                        market=Market.FUT,
                        symbol="BTCUSDT",
                        side=Side.BUY if i % 2 else Side.SELL,
                        type=OrderType.MARKET,
                        qty=D("0.002"),
                        client_order_id=f"bare-{i}",
                    ),
                )
                b2 = time.perf_counter()
                if i >= 50:  # warm-up excluded
                    to_first.append((probe.first_call - t_read) * 1000)
                    to_place.append((probe.first_place - t_read) * 1000)
                    rtt.append((b1 - b0) * 1000)
                    bare.append((b2 - b1) * 1000)
                clock.advance(100)
                if i % 200 == 0:
                    set_book(venue)
        await redis.aclose()
    p50, p99 = pct(to_first, 0.50), pct(to_first, 0.99)
    return {
        "name": "s4_latency",
        "params": {"n": n, "warmup": 50, "policy": "MARKET", "path": "stream"},
        "read_to_first_venue_request_ms": summary(to_first),
        "read_to_first_placement_ms": summary(to_place),
        "baseline_redis_rtt_ms": summary(rtt),
        "baseline_bare_venue_order_ms": summary(bare),
        "ratio_p50_to_redis_rtt": pct(to_place, 0.5) / pct(rtt, 0.5),
        "target": {"p50_ms": 1.0, "p99_ms": 5.0, "met": p50 <= 1.0 and p99 <= 5.0},
        "raw": {"read_to_first_placement_ms": to_place, "baseline_redis_rtt_ms": rtt},
    }


def summary(xs: list[float]) -> dict[str, float]:
    return {
        "n": len(xs),
        "p50": pct(xs, 0.5),
        "p90": pct(xs, 0.9),
        "p99": pct(xs, 0.99),
        "max": max(xs),
        "mean": statistics.fmean(xs),
    }


def run(n: int = 2000) -> dict[str, Any]:
    """The figures as data (ms); see the module doc."""
    return asyncio.run(measure(n))


def print_report(r: dict[str, Any]) -> None:
    print(f"intents: {r['params']['n']} (first 50 excluded as warm-up), MARKET, stream path")
    for key, name in (
        ("read_to_first_venue_request_ms", "read → first venue request (book probe)"),
        ("read_to_first_placement_ms", "read → first order placement"),
        ("baseline_redis_rtt_ms", "baseline: one Redis round trip"),
        ("baseline_bare_venue_order_ms", "baseline: the order straight to the venue"),
    ):
        d = r[key]
        print(
            f"{name:<42} p50 {d['p50']:.3f} ms  p90 {d['p90']:.3f} ms  "
            f"p99 {d['p99']:.3f} ms  max {d['max']:.3f} ms"
        )
    print(f"ratio (first placement / Redis round trip, p50): ×{r['ratio_p50_to_redis_rtt']:.1f}")
    print(
        "target p50 ≤ 1 ms, p99 ≤ 5 ms (first venue request): "
        f"{'MET' if r['target']['met'] else 'NOT MET'}"
    )


if __name__ == "__main__":
    logging.basicConfig(level=logging.ERROR)  # alerts go to the alerts stream; keep stdout clean
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--json", type=Path, default=None, help="write the figures here as JSON")
    a = ap.parse_args()
    out = run(a.n)
    print_report(out)
    if a.json:
        a.json.write_text(json.dumps(out, indent=1))

"""Venue benchmark (a plain script, not a test): matching throughput in-process, and the
Binance facade's round-trip latency over loopback through ccxt, with raw httpx for comparison.

    .venv/bin/python tests/bench/bench_venue.py            # facade in a subprocess (default)
    .venv/bin/python tests/bench/bench_venue.py --in-thread # facade in a thread of this process

Figures printed:

* in-process matching (``Venue`` calls, no I/O): resting LIMIT + cancel pairs, and MARKET
  orders that fill against the book (futures, alternating sides), in orders per second;
  the same LIMIT + cancel through ``SimExchange`` (the port's async overhead);
* over loopback HTTP: ccxt ``create_order`` + ``cancel_order`` (spot via ccxt.binance, futures
  via ccxt.binanceusdm; signed requests) with p50 / p95 / p99 per request and per pair, and
  ``httpx`` ``GET /fapi/v1/time`` in the same run. ccxt's rate limiter is off for the latency
  runs (it would measure the limiter, not the round trip); one extra spot run with
  ``enableRateLimit`` (rolling window, within budget) shows what the limiter adds.

Runs in well under 60 s on a laptop-class machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AsyncExitStack, contextmanager
from decimal import Decimal
from pathlib import Path

import httpx

from s4_router.adapters.exchange.base import PlaceOrderRequest
from s4_router.adapters.exchange.ccxt_client import CcxtExchange
from s4_router.adapters.exchange.sim_client import SimExchange
from svckit.clock import ManualClock, WallClock
from svckit.embedded_redis import free_port
from tests.facade_server import FacadeServer
from tradekit.enums import Market, OrderType, Side, TimeInForce
from venue.defaults import DEFAULT_INSTRUMENTS, default_venue
from venue.facade import create_facade

D = Decimal
SYM = "BTCUSDT"
KEY, SECRET = "bench-key", "bench-secret"
ROOT = Path(__file__).resolve().parents[2]


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def line(name: str, samples_ms: list[float]) -> str:
    return (
        f"  {name:<38} n={len(samples_ms):<5} p50={pct(samples_ms, 50):7.2f} ms  "
        f"p95={pct(samples_ms, 95):7.2f} ms  p99={pct(samples_ms, 99):7.2f} ms  "
        f"mean={statistics.fmean(samples_ms):7.2f} ms"
    )


# ---- in-process matching ---------------------------------------------------------------------
def bench_matching(n_limit: int, n_market: int) -> None:
    venue = default_venue(clock=ManualClock(1_700_000_000_000), seed=1, replay=False)
    venue.limiter.limit = 10**12  # a frozen clock never starts a new weight minute
    book = venue.book(Market.SPOT, SYM, 1)
    passive = (book.bids[0][0] * D("0.9")).quantize(D("0.1"))
    qty = D("0.001")

    started = time.perf_counter()
    for i in range(n_limit):
        o = venue.place_order(
            Market.SPOT,
            SYM,
            Side.BUY,
            OrderType.LIMIT,
            qty,
            price=passive,
            time_in_force=TimeInForce.GTC,
            client_order_id=f"l{i}",
        )
        venue.cancel_order(Market.SPOT, SYM, order_id=o.order_id)
    limit_s = time.perf_counter() - started

    started = time.perf_counter()
    fills = 0
    for i in range(n_market):
        side = Side.BUY if i % 2 == 0 else Side.SELL
        o = venue.place_order(Market.FUT, SYM, side, OrderType.MARKET, qty, client_order_id=f"m{i}")
        fills += len(o.trades)
    market_s = time.perf_counter() - started

    sim_venue = default_venue(clock=ManualClock(1_700_000_000_000), seed=1, replay=False)
    sim_venue.limiter.limit = 10**12
    sim = SimExchange(sim_venue)

    async def through_port() -> float:
        t0 = time.perf_counter()
        for i in range(n_limit // 2):
            o = await sim.place_order(
                PlaceOrderRequest(
                    market=Market.SPOT,
                    symbol=SYM,
                    side=Side.BUY,
                    type=OrderType.LIMIT,
                    qty=qty,
                    client_order_id=f"p{i}",
                    price=passive,
                    time_in_force=TimeInForce.GTC,
                )
            )
            await sim.cancel_order(Market.SPOT, SYM, venue_order_id=o.venue_order_id)
        return time.perf_counter() - t0

    port_s = asyncio.run(through_port())
    print("in-process matching (venue.Venue, no I/O):")
    print(
        f"  LIMIT (resting) + cancel             {n_limit:>6} pairs  "
        f"{2 * n_limit / limit_s:>10,.0f} orders+cancels/s  ({n_limit / limit_s:,.0f} pairs/s)"
    )
    print(
        f"  MARKET (fills, futures)              {n_market:>6} orders "
        f"{n_market / market_s:>10,.0f} orders/s  ({fills / market_s:,.0f} fills/s)"
    )
    print(
        f"  SimExchange LIMIT + cancel (port)    {n_limit // 2:>6} pairs  "
        f"{n_limit / port_s:>10,.0f} orders+cancels/s"
    )


# ---- the facade over loopback ----------------------------------------------------------------
@contextmanager
def facade_subprocess() -> Iterator[str]:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "venue.facade",
            "--port",
            str(port),
            "--api-key",
            KEY,
            "--api-secret",
            SECRET,
            "--no-replay",
            "--log-level",
            "warning",
        ],
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"{url}/api/v3/ping", timeout=0.5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("python -m venue.facade did not come up")
            time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@contextmanager
def facade_thread() -> Iterator[str]:
    venue = default_venue(clock=WallClock(), seed=1, replay=False)
    with FacadeServer(create_facade(venue, api_key=KEY, api_secret=SECRET)) as srv:
        yield srv.url


async def timed(fn: Callable[[], Awaitable[object]]) -> float:
    t0 = time.perf_counter()
    await fn()
    return (time.perf_counter() - t0) * 1000


async def bench_roundtrips(url: str, pairs: int, pings: int) -> None:
    results: list[str] = []
    for market in (Market.SPOT, Market.FUT):
        async with AsyncExitStack() as stack:
            ex = CcxtExchange(
                "binance", api_key=KEY, api_secret=SECRET, base_url=url, enable_rate_limit=False
            )
            stack.push_async_callback(ex.close)
            await ex.load_markets(DEFAULT_INSTRUMENTS)
            book = await ex.fetch_book(market, SYM, 5)
            passive = (book.best_bid * D("0.9")).quantize(D("0.1"))
            creates, cancels, both = [], [], []
            for i in range(pairs + 20):
                req = PlaceOrderRequest(
                    market=market,
                    symbol=SYM,
                    side=Side.BUY,
                    type=OrderType.LIMIT,
                    qty=D("0.01"),
                    client_order_id=f"b-{market.value}-{i}",
                    price=passive,
                    time_in_force=TimeInForce.GTC,
                )
                t0 = time.perf_counter()
                placed = await ex.place_order(req)
                t1 = time.perf_counter()
                await ex.cancel_order(market, SYM, venue_order_id=placed.venue_order_id)
                t2 = time.perf_counter()
                if i >= 20:  # warm-up: connection pool, JIT-ish caches
                    creates.append((t1 - t0) * 1000)
                    cancels.append((t2 - t1) * 1000)
                    both.append((t2 - t0) * 1000)
            name = "spot (ccxt.binance)" if market is Market.SPOT else "futures (ccxt.binanceusdm)"
            results += [
                line(f"ccxt create_order {name}", creates),
                line(f"ccxt cancel_order {name}", cancels),
                line(f"ccxt create+cancel {name}", both),
            ]
    async with AsyncExitStack() as stack:
        ex = CcxtExchange("binance", api_key=KEY, api_secret=SECRET, base_url=url)
        stack.push_async_callback(ex.close)
        await ex.load_markets(DEFAULT_INSTRUMENTS)
        book = await ex.fetch_book(Market.SPOT, SYM, 5)
        passive = (book.best_bid * D("0.9")).quantize(D("0.1"))
        limited: list[float] = []
        for i in range(min(pairs, 200)):
            req = PlaceOrderRequest(
                market=Market.SPOT,
                symbol=SYM,
                side=Side.BUY,
                type=OrderType.LIMIT,
                qty=D("0.01"),
                client_order_id=f"rl-{i}",
                price=passive,
                time_in_force=TimeInForce.GTC,
            )
            t0 = time.perf_counter()
            placed = await ex.place_order(req)
            await ex.cancel_order(Market.SPOT, SYM, venue_order_id=placed.venue_order_id)
            limited.append((time.perf_counter() - t0) * 1000)
        results.append(line("ccxt create+cancel spot, rateLimit on", limited))
    async with httpx.AsyncClient(base_url=url) as client:
        for _ in range(20):
            await client.get("/fapi/v1/time")
        times = [await timed(lambda: client.get("/fapi/v1/time")) for _ in range(pings)]
    results.append(line("httpx GET /fapi/v1/time (raw)", times))
    print("\n".join(results))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--in-thread", action="store_true", help="facade in this process")
    p.add_argument("--limit-orders", type=int, default=20_000)
    p.add_argument("--market-orders", type=int, default=10_000)
    p.add_argument("--pairs", type=int, default=300)
    p.add_argument("--pings", type=int, default=500)
    args = p.parse_args()
    t0 = time.perf_counter()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    bench_matching(args.limit_orders, args.market_orders)
    mode = "thread in this process" if args.in_thread else "subprocess (python -m venue.facade)"
    print(f"\nfacade round trips over loopback HTTP (facade: {mode}):")
    with facade_thread() if args.in_thread else facade_subprocess() as url:
        asyncio.run(bench_roundtrips(url, args.pairs, args.pings))
    print(f"\ntotal {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

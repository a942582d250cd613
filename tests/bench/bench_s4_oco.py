"""SPOT OCO guardian and FUT bracket figures on the venue simulator (seeded, bounded < 60 s).

    .venv/bin/python tests/bench/bench_s4_oco.py                   # 1,000 OCO + 300 brackets
    .venv/bin/python tests/bench/bench_s4_oco.py --n 200 --fut 50 --seed 3

Each OCO scenario buys BTCUSDT on SPOT with an OCO exit (tp/sl drawn around the price) through
S4's real router and protection service (real Redis, SQLite store), then plays one of:
TP filled, SL price reached, TP partially filled then TP filled, TP partially filled then SL
reached (entries of 1 or 2 TWAP slices by notional); a quarter of them restart S4 mid-way
(during the entry, once armed, or after the partial fill / right after the price move: the
process dies, a new container is built on the same store and venue and re-arms from them).
The simulator has no stand-alone spot stop, so the guardian rests the TP leg and watches the
SL locally (the SL-triggered path cancels the resting TP, awaits the ack, then exits at
market).

One clock drives S4 and the venue: manual (timers and back-offs advance it, nothing sleeps)
plus the real elapsed time, so latencies measure S4's own processing.

Figures:
* one-leg resolutions whose other leg ended cancelled (target 100 %): the guardian RESOLVED
  with a winner, the sibling's venue order CANCELED (or, for a locally watched leg, never
  sent), exits summing to the position;
* orphan legs (target 0): orders of the scenario still open at the venue once it resolved;
* sibling cancel latency (target p99 ≤ 50 ms): from the start of the poll that observed the
  fill / the trigger price to the sibling's cancel request (wall time; bench-measured, as the
  guardian's `router_oco_sibling_cancel_seconds` only starts on *fills* of a leg);
* FUT naked time p50/p99 (target p99 ≤ 0.5 s): `router_naked_seconds` (first entry fill →
  stop acknowledged) over bracket entries, each closed again by a reduce-only exit.

Prints figures; exit status 0 either way (a benchmark, not a test).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from s4_router.adapters.exchange.base import ExchangeOrder  # noqa: E402
from s4_router.adapters.exchange.sim_client import SimExchange  # noqa: E402
from s4_router.bootstrap import S4Container, bootstrap  # noqa: E402
from svckit.clock import ManualClock  # noqa: E402
from svckit.embedded_redis import EmbeddedRedis  # noqa: E402
from svckit.redisio import RedisClient, make_redis  # noqa: E402
from svckit.store.sqlite import SqliteStore  # noqa: E402
from tests.chaos.rig import (  # noqa: E402
    T0,
    hand_venue,
    intent,
    print_at,
    set_book,
    settings_for,
    step_all,
)
from tradekit.enums import Market, OrderStatus, Side  # noqa: E402
from venue.venue import Venue  # noqa: E402

D = Decimal
SPOT = Market.SPOT
KINDS = ("TP", "SL", "PARTIAL_TP", "PARTIAL_SL")


class HybridClock(ManualClock):
    """Manual time (advanced by timers and back-offs) plus the real time elapsed."""

    def __init__(self, start_ms: int) -> None:
        super().__init__(start_ms)
        self._t0 = time.perf_counter()

    def now_ms(self) -> int:
        return super().now_ms() + int((time.perf_counter() - self._t0) * 1000)

    def monotonic(self) -> float:
        return super().monotonic() + (time.perf_counter() - self._t0)


class TimedExchange(SimExchange):
    """Notes the wall time of every spot cancel request (by client order id)."""

    def __init__(self, venue: Venue) -> None:
        super().__init__(venue)
        self.cancel_at: dict[str, float] = {}

    async def cancel_order(
        self,
        market: Market,
        symbol: str,
        *,
        venue_order_id: str | None = None,
        client_order_id: str | None = None,
    ) -> ExchangeOrder:
        if client_order_id is not None:
            self.cancel_at.setdefault(client_order_id, time.perf_counter())
        return await super().cancel_order(
            market, symbol, venue_order_id=venue_order_id, client_order_id=client_order_id
        )


@dataclass
class Bench:
    redis: RedisClient
    tmp: Path
    clock: HybridClock
    venue: Venue
    ex: TimedExchange
    store: SqliteStore
    c: S4Container | None = None
    restarts: int = 0
    t_recover: float = 0.0
    settings: dict[str, Any] = field(default_factory=dict)

    async def start(self) -> S4Container:
        clock = self.clock

        async def sleep(seconds: float) -> None:
            clock.advance(max(1, int(seconds * 1000)))
            await asyncio.sleep(0)

        self.c = await bootstrap(
            settings_for(self.tmp, maker_max_wait_ms=0, **self.settings),
            redis=self.redis,
            store=self.store,
            exchange=self.ex,
            clock=clock,
            sleep=sleep,
            seed=self.restarts == 0,
        )
        return self.c

    @property
    def prot(self) -> Any:
        assert self.c is not None and self.c.protection is not None
        return self.c.protection

    async def restart(self) -> None:
        """The process dies (leases run out, nothing stepped); a new one takes over."""
        assert self.c is not None
        self.c.manager.active.clear()
        self.prot.active.clear()
        async for key in self.redis.scan_iter(match="exec:lease:*"):
            await self.redis.delete(key)
        await self.c.aclose()
        self.restarts += 1
        c = await self.start()
        self.t_recover = time.perf_counter()
        await c.router.recovery.recover()
        await self.prot.recover()

    async def step(self, n: int = 1, ms: int = 100) -> None:
        for _ in range(n):
            self.clock.advance(ms)
            assert self.c is not None
            await step_all(self.c.manager)
            await self.prot.step_all()

    async def entry_done(self, coid: str) -> None:
        assert self.c is not None
        for _ in range(100):
            if coid not in self.c.manager.active:
                break
            await self.step()
        await self.step()


@dataclass
class OcoResult:
    kinds: Counter[str] = field(default_factory=Counter)
    winners: Counter[str] = field(default_factory=Counter)
    resolved_one_leg: int = 0
    sibling_cancelled: int = 0
    orphans: int = 0
    failed: list[str] = field(default_factory=list)
    cancel_ms: list[float] = field(default_factory=list)
    cancels: int = 0
    cancel_live_ms: list[float] = field(default_factory=list)


async def oco_scenario(b: Bench, i: int, rng: random.Random, out: OcoResult) -> None:
    coid = f"o-{i}"
    b.clock.advance(2_000)  # scenarios apart in time: the venue's request-weight limit holds
    kind = rng.choice(KINDS)
    restart_at = rng.choice((None,) * 9 + ("entry", "armed", "mid"))
    out.kinds[kind + ("+restart" if restart_at else "")] += 1
    tp = 66_000 + rng.randrange(0, 2_000)
    sl = 64_000 + rng.randrange(0, 900)
    qty = D(rng.choice(("0.003", "0.004", "0.006")))
    set_book(b.venue, market=SPOT)
    assert b.c is not None
    await b.c.router.submit(
        intent(
            client_order_id=coid,
            intent_id=f"i-{i}",
            market="SPOT",
            qty=str(qty),
            created_ts=b.clock.now_ms(),
            exec_policy={"type": "OCO", "tp_price": str(tp), "sl_price": str(sl)},
        ),
        source="rest",
        sync_wait_ms=0,
    )
    if restart_at == "entry":
        await b.restart()
    await b.entry_done(coid)
    if restart_at == "armed":
        await b.restart()
    tp_id, sl_id = f"{coid}-E60", f"{coid}-E61"
    if kind.startswith("PARTIAL"):
        part = D("0.001")  # the leg is the fill less base-asset fees, on the step
        set_book(
            b.venue,
            market=SPOT,
            bid=str(tp - 20),
            ask=str(tp + 20),
            prints=[print_at(b.clock, str(tp), str(part), Side.BUY)],
        )
        await b.step()
        if restart_at == "mid":
            await b.restart()
    t_event = time.perf_counter()
    re_armed = False
    if kind in ("TP", "PARTIAL_TP"):
        set_book(
            b.venue,
            market=SPOT,
            bid=str(tp - 20),
            ask=str(tp + 20),
            prints=[print_at(b.clock, str(tp), "5", Side.BUY)],
        )
    else:
        set_book(b.venue, market=SPOT, bid=str(sl - 100), ask=str(sl - 98))
    if restart_at == "mid" and not kind.startswith("PARTIAL"):
        await b.restart()
        t_event = b.t_recover  # the new process observes the price in its re-arm
        re_armed = True
    await b.step()
    for _ in range(60):
        doc = await b.store.get("strategy_events", f"protection:{coid}")
        if doc is not None and not doc["active"]:
            break
        await b.step()
    if tp_id in b.ex.cancel_at:
        out.cancels += 1
        if b.ex.cancel_at[tp_id] >= t_event:
            out.cancel_ms.append((b.ex.cancel_at[tp_id] - t_event) * 1000)
            if not re_armed:
                out.cancel_live_ms.append(out.cancel_ms[-1])
    res = await b.store.get("strategy_events", f"oco_resolve:{coid}")
    legs = {
        o.client_order_id: o
        for o in b.venue.spot.orders.values()
        if o.client_order_id.startswith(coid + "-E6")
    }
    out.orphans += sum(1 for o in legs.values() if not o.status.is_terminal)
    if res is None or res["data"].get("winner") not in ("TP", "SL"):
        out.failed.append(f"{coid} {kind} {restart_at}: not resolved")
        return
    out.resolved_one_leg += 1
    winner = res["data"]["winner"]
    out.winners[winner] += 1
    exits = sum((o.filled_qty for o in legs.values()), D(0))
    if winner == "TP":
        # The SL leg is watched locally on this venue: cancelled = never sent, nothing open.
        ok = sl_id not in legs or legs[sl_id].filled_qty == 0
    else:
        ok = tp_id in legs and legs[tp_id].status is OrderStatus.CANCELED
    position = D(res["data"].get("qty", exits)) if "qty" in res["data"] else exits
    if ok and exits <= position and not any(not o.status.is_terminal for o in legs.values()):
        out.sibling_cancelled += 1
    else:
        out.failed.append(
            f"{coid} {kind} {restart_at}: winner {winner}, legs "
            f"{ {k: (o.status.value, str(o.filled_qty)) for k, o in legs.items()} }"
        )


async def fut_scenario(b: Bench, i: int, rng: random.Random) -> None:
    assert b.c is not None
    b.clock.advance(2_000)
    set_book(b.venue)
    qty = rng.choice(("0.002", "0.004"))
    await b.c.router.submit(
        intent(
            client_order_id=f"f-{i}",
            intent_id=f"fi-{i}",
            qty=qty,
            created_ts=b.clock.now_ms(),
            sl={"type": "STOP_MARKET", "price": "64000"},
            tp={"type": "TAKE_PROFIT_MARKET", "price": "70000"},
        ),
        source="rest",
        sync_wait_ms=0,
    )
    await b.entry_done(f"f-{i}")
    await b.c.router.submit(
        intent(
            client_order_id=f"fx-{i}",
            intent_id=f"fxi-{i}",
            qty=qty,
            side="SELL",
            created_ts=b.clock.now_ms(),
            reduce_only=True,
        ),
        source="rest",
        sync_wait_ms=0,
    )
    await b.step()


def hist_quantiles(h: Any) -> tuple[int, list[tuple[float, float]]]:
    """(count, [(upper bound, cumulative count)]) of a prometheus Histogram."""
    buckets: list[tuple[float, float]] = []
    count = 0
    for metric in h.collect():
        for s in metric.samples:
            if s.name.endswith("_bucket"):
                buckets.append((float(s.labels["le"]), s.value))
            elif s.name.endswith("_count"):
                count = int(s.value)
    return count, buckets


def bucket_pct(buckets: list[tuple[float, float]], count: int, p: float) -> float:
    for le, cum in buckets:
        if cum >= p * count:
            return le
    return float("inf")


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * len(xs)))] if xs else float("nan")


async def main(n: int, n_fut: int, seed: int) -> None:
    rng = random.Random(seed)
    t_start = time.perf_counter()
    with EmbeddedRedis() as server, tempfile.TemporaryDirectory() as tmp:
        redis = make_redis(server.addresses)
        clock = HybridClock(T0)
        venue = hand_venue(clock)
        set_book(venue, market=SPOT)
        store = SqliteStore(Path(tmp) / "store.sqlite3")
        b = Bench(redis, Path(tmp), clock, venue, TimedExchange(venue), store)
        await b.start()
        oco = OcoResult()
        naked: list[float] = []
        try:
            t0 = time.perf_counter()
            for i in range(n):
                await oco_scenario(b, i, rng, oco)
            t_oco = time.perf_counter() - t0
            t0 = time.perf_counter()
            for i in range(n_fut):
                await fut_scenario(b, i, rng)
            t_fut = time.perf_counter() - t0
            for doc in await store.find("strategy_events"):
                if doc.get("kind") == "POSITION_PROTECTED":
                    naked.append(float(doc["data"]["naked_ms"]) / 1000)
            assert b.c is not None
            h_count, h_buckets = hist_quantiles(b.c.metrics.oco_cancel)
        finally:
            if b.c is not None:
                await b.c.aclose()
            await store.close()
            await redis.aclose()
    share = oco.sibling_cancelled / oco.resolved_one_leg if oco.resolved_one_leg else 0.0
    print(
        f"== SPOT OCO guardian: {n} scenarios (seed {seed}), {b.restarts} S4 restarts, "
        f"{t_oco:.1f} s"
    )
    print(f"  mix: {dict(sorted(oco.kinds.items()))}; winners {dict(oco.winners)}")
    print(
        f"  one-leg resolutions {oco.resolved_one_leg}; other leg cancelled {share:.2%} "
        f"(target 100 %); orphan legs left {oco.orphans} (target 0); "
        f"failures {len(oco.failed)}"
    )
    for f in oco.failed[:5]:
        print(f"    {f}")
    lat = oco.cancel_ms
    print(
        f"  sibling cancel latency after the fill / trigger was observed ({len(lat)} of "
        f"{oco.cancels} cancels): p50 {pct(lat, 0.5):.2f} ms  p99 {pct(lat, 0.99):.2f} ms  "
        f"max {max(lat, default=float('nan')):.2f} ms (target p99 ≤ 50 ms)"
    )
    live = oco.cancel_live_ms
    print(
        f"    of which observed by a running S4 (not in a restart's re-arm, {len(live)}): "
        f"p50 {pct(live, 0.5):.2f} ms  p99 {pct(live, 0.99):.2f} ms"
    )
    print(
        f"  router_oco_sibling_cancel_seconds: {h_count} observations, p99 bucket ≤ "
        f"{bucket_pct(h_buckets, h_count, 0.99) if h_count else float('nan')} s (it starts "
        "on a leg's fill with a resting sibling; here the SL is local, so none)"
    )
    print(f"== FUT brackets: {n_fut} entries, {t_fut:.1f} s")
    print(
        f"  naked time (router_naked_seconds; {len(naked)} entries): p50 "
        f"{pct(naked, 0.5) * 1000:.1f} ms  p99 {pct(naked, 0.99) * 1000:.1f} ms  max "
        f"{max(naked, default=float('nan')) * 1000:.1f} ms (target p99 ≤ 500 ms)"
    )
    met = (
        share == 1.0
        and oco.orphans == 0
        and not oco.failed
        and pct(oco.cancel_ms, 0.99) <= 50
        and pct(naked, 0.99) <= 0.5
    )
    print(f"targets: {'MET' if met else 'NOT MET'}; wall {time.perf_counter() - t_start:.1f} s")


if __name__ == "__main__":
    logging.basicConfig(level=logging.ERROR)
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=1000, help="SPOT OCO scenarios")
    ap.add_argument("--fut", type=int, default=300, help="FUT bracket entries")
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args()
    asyncio.run(main(a.n, a.fut, a.seed))

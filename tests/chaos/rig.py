"""A hand-driven S4 for deterministic execution tests: a real Redis and SQLite store, the
venue simulator with no price process (books set by hand), one manual clock shared by S4 and
the venue, background execution off (tests step executions themselves) and retry back-offs
that advance the manual clock instead of sleeping."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from s4_router.adapters.exchange.base import ExchangePort
from s4_router.adapters.exchange.sim_client import SimExchange
from s4_router.bootstrap import S4Container, bootstrap
from s4_router.config import Settings
from s4_router.domain.outcomes import Outcome
from s4_router.service_layer.manager import ExecutionManager
from svckit import jsonutil, keys
from svckit.clock import ManualClock
from svckit.redisio import RedisClient
from svckit.store.sqlite import SqliteStore
from tests.conftest import FIXTURES
from tests.helpers import S4_TOKEN
from tradekit.enums import Market, Side
from tradekit.instrument import Instrument
from tradekit.intents import OrderIntent
from venue.faults import FaultInjector, FaultPlan
from venue.market import MarketSimulator
from venue.models import TradePrint, VenueOrder
from venue.venue import Venue

D = Decimal
INSTRUMENTS = [
    Instrument.model_validate(d)
    for d in json.loads((FIXTURES / "instrument_registry.json").read_text())
]
T0 = 1_700_000_000_000


def hand_venue(
    clock: ManualClock,
    *,
    faults: FaultPlan | FaultInjector | None = None,
    futures_wallet: Decimal = D(100_000),
    skew_ms: int = 0,
) -> Venue:
    v = Venue(
        clock=clock,
        instruments=INSTRUMENTS,
        market=MarketSimulator(),
        spot_balances={"USDT": D(100_000), "BTC": D(1), "ETH": D(10), "QRL": D(20_000)},
        futures_wallet=futures_wallet,
        faults=faults,
        server_time_skew_ms=skew_ms,
    )
    set_book(v)
    return v


def set_book(
    v: Venue,
    *,
    bid: str = "64999",
    ask: str = "65001",
    qty: str = "5",
    asks: Iterable[tuple[str, str]] | None = None,
    bids: Iterable[tuple[str, str]] | None = None,
    prints: Iterable[TradePrint] = (),
    market: Market = Market.FUT,
    symbol: str = "BTCUSDT",
) -> None:
    b = (
        [(D(p), D(q)) for p, q in bids]
        if bids is not None
        else [(D(bid) - i, D(qty)) for i in range(5)]
    )
    a = (
        [(D(p), D(q)) for p, q in asks]
        if asks is not None
        else [(D(ask) + i, D(qty)) for i in range(5)]
    )
    v.set_book(market, symbol, bids=b, asks=a, prints=prints)


def intent(**over: Any) -> OrderIntent:
    body: dict[str, Any] = {
        "intent_id": "i-1",
        "market": "FUT",
        "symbol": "BTCUSDT",
        "side": "BUY",
        "qty": "0.002",
        "exec_policy": {"type": "MARKET"},
        "client_order_id": "c-1",
        "created_ts": T0,  # S4 refuses intents without a fresh decision time
    }
    body.update(over)
    return OrderIntent.model_validate(body)


async def step_all(manager: ExecutionManager) -> None:
    """Step every active execution once (an S4 built with `autorun=False` is driven by hand)."""
    for coid, ex in list(manager.active.items()):
        await ex.step()
        if ex.finished:
            manager.forget(coid)
            await manager.leases.release(ex.lease)


@dataclass
class Rig:
    c: S4Container
    clock: ManualClock
    venue: Venue
    exchange: ExchangePort
    redis: RedisClient

    async def submit(self, source: str = "rest", **over: Any) -> Outcome:
        over.setdefault("created_ts", self.clock.now_ms())
        return await self.c.router.submit(intent(**over), source=source, sync_wait_ms=0)

    async def drive(self, ms: int, *, step_ms: int = 50) -> None:
        """Let `ms` of manual time pass, stepping every active execution each `step_ms`."""
        end = self.clock.now_ms() + ms
        while self.clock.now_ms() < end:
            self.clock.advance(min(step_ms, end - self.clock.now_ms()))
            await step_all(self.c.manager)

    async def until_done(self, coid: str, *, within_ms: int = 30_000) -> dict[str, Any]:
        end = self.clock.now_ms() + within_ms
        while coid in self.c.manager.active and self.clock.now_ms() < end:
            self.clock.advance(50)
            await step_all(self.c.manager)
        view = await self.c.router.get(coid)
        assert view is not None
        return view

    async def stream(self, name: str) -> list[dict[str, Any]]:
        return [jsonutil.loads(e[1]["data"]) for e in await self.redis.xrange(name)]

    async def events(self, coid: str | None = None) -> list[str]:
        return [
            e["event"]
            for e in await self.stream(keys.ROUTER_EVENTS)
            if coid is None or e["client_order_id"] == coid
        ]

    async def alerts(self) -> list[str]:
        return [a["kind"] for a in await self.stream(keys.ALERTS)]

    def venue_orders(self, prefix: str, market: Market = Market.FUT) -> list[VenueOrder]:
        engine = self.venue.futures if market is Market.FUT else self.venue.spot
        return [o for o in engine.orders.values() if o.client_order_id.startswith(prefix)]

    def venue_filled(self, prefix: str, market: Market = Market.FUT) -> Decimal:
        return sum((o.filled_qty for o in self.venue_orders(prefix, market)), D(0))

    def position(self, symbol: str = "BTCUSDT") -> Decimal:
        return self.venue.futures_account.position(symbol).qty


def settings_for(tmp_path: Path, **over: Any) -> Settings:
    base: dict[str, Any] = {
        "data_dir": tmp_path,
        "fixtures_dir": FIXTURES,
        "route_table_path": FIXTURES / "route_table.json",
        "background_execution": False,
        "sim_publish_market": False,
        "order_sync_wait_ms": 0,
        "stream_block_ms": 50,
        "retry_base_ms": 20,
        "retry_max_ms": 200,
        "api_token": S4_TOKEN,  # also outside pytest (benchmarks), where conftest sets no env
    }
    base.update(over)
    return Settings(**base)


@asynccontextmanager
async def s4_rig(
    redis: RedisClient,
    tmp_path: Path,
    *,
    clock: ManualClock | None = None,
    venue: Venue | None = None,
    exchange: ExchangePort | None = None,
    store: SqliteStore | None = None,
    **over: Any,
) -> AsyncIterator[Rig]:
    clock = clock or ManualClock(T0)
    venue = venue or hand_venue(clock)
    exchange = exchange or SimExchange(venue)
    own_store = store is None
    store = store or SqliteStore(tmp_path / "store.sqlite3")

    async def sleep(seconds: float) -> None:
        clock.advance(max(1, int(seconds * 1000)))
        await asyncio.sleep(0)

    c = await bootstrap(
        settings_for(tmp_path, **over),
        redis=redis,
        store=store,
        exchange=exchange,
        clock=clock,
        sleep=sleep,
    )
    try:
        yield Rig(c, clock, venue, exchange, redis)
    finally:
        await c.aclose()
        if own_store:
            await store.close()


def print_at(clock: ManualClock, price: str, qty: str, aggressor: Side) -> TradePrint:
    return TradePrint(ts=clock.now_ms(), price=D(price), qty=D(qty), aggressor=aggressor)


async def crash(r: Rig) -> None:
    """The process dies: nothing is stepped any more and its leases run out."""
    r.c.manager.active.clear()
    async for key in r.redis.scan_iter(match="exec:lease:*"):
        await r.redis.delete(key)

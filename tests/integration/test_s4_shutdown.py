"""S4 shutdown: a step under way when the process is told to stop finishes (within
`S4_SHUTDOWN_GRACE_MS`) before Redis and the store are closed — the child it is sending is
sent, its fill booked, its events published — instead of being cancelled midway (a send cut
in flight is an ambiguous child and lost events). A step that outlives the grace is cancelled:
the stop stays bounded."""

from __future__ import annotations

import asyncio
from pathlib import Path

from s4_router.adapters.exchange.base import ExchangeOrder, PlaceOrderRequest
from s4_router.adapters.exchange.sim_client import SimExchange
from svckit.clock import ManualClock
from svckit.redisio import RedisClient
from svckit.store.base import Query
from svckit.store.sqlite import SqliteStore
from tests.chaos.rig import T0, hand_venue, s4_rig
from venue.venue import Venue

TWAP = {"type": "TWAP", "slices": 2, "gap_ms": 1000, "jitter_pct": 0, "maker_wait_ms": 0}


class GatedExchange(SimExchange):
    """The venue answers a submit only once the test opens the gate (a slow venue)."""

    def __init__(self, venue: Venue) -> None:
        super().__init__(venue)
        self.gate: asyncio.Event | None = None
        self.entered = asyncio.Event()

    async def place_order(self, req: PlaceOrderRequest) -> ExchangeOrder:
        if self.gate is not None:
            self.entered.set()
            await self.gate.wait()
        return await super().place_order(req)


async def _stop_during_second_slice(
    redis: RedisClient, tmp_path: Path, *, grace_ms: int, open_gate: bool
) -> tuple[SqliteStore, GatedExchange, float]:
    clock = ManualClock(T0)
    venue = hand_venue(clock)
    exchange = GatedExchange(venue)
    store = SqliteStore(tmp_path / "store.sqlite3")
    async with s4_rig(
        redis,
        tmp_path,
        clock=clock,
        venue=venue,
        exchange=exchange,
        store=store,
        background_execution=True,
        shutdown_grace_ms=grace_ms,
    ) as r:
        await r.submit(qty="0.004", exec_policy=TWAP)  # slice 0 inline; slice 1 in 1 s
        exchange.gate = asyncio.Event()
        clock.advance(1000)
        r.c.manager.wake("c-1")
        await asyncio.wait_for(exchange.entered.wait(), 5)  # slice 1's child is being sent
        t0 = asyncio.get_running_loop().time()
        stopping = asyncio.create_task(r.c.aclose())
        await asyncio.sleep(0.05)
        if open_gate:
            exchange.gate.set()  # the venue answers while S4 is stopping
        await stopping
        took = asyncio.get_running_loop().time() - t0
    return store, exchange, took


async def test_stop_with_step_under_way_finishes_it_fill_booked_lease_released(
    redis: RedisClient, tmp_path: Path
) -> None:
    store, _, took = await _stop_during_second_slice(redis, tmp_path, grace_ms=5000, open_gate=True)
    try:
        kids = await store.find("orders", Query(where={"parent_client_order_id": "c-1"}))
        assert sorted((k["client_order_id"], k["status"]) for k in kids) == [
            ("c-1-E1", "FILLED"),
            ("c-1-E2", "FILLED"),
        ]
        fills = await store.find("fills", Query(where={"parent_client_order_id": "c-1"}))
        assert sorted(f["client_order_id"] for f in fills) == ["c-1-E1", "c-1-E2"]
        parent = await store.get("orders", "c-1")
        assert parent is not None and parent["filled_qty"] == "0.004"
        assert not await redis.exists("exec:lease:c-1")  # the next start resumes at once
        assert took < 5
    finally:
        await store.close()


async def test_stop_with_step_outliving_grace_cancels_it_within_bounds(
    redis: RedisClient, tmp_path: Path
) -> None:
    store, exchange, took = await _stop_during_second_slice(
        redis, tmp_path, grace_ms=300, open_gate=False
    )
    try:
        assert 0.25 < took < 3  # the grace, then cancelled: the stop never hangs
        kids = await store.find("orders", Query(where={"parent_client_order_id": "c-1"}))
        # Never answered: left for the next start to resolve from the venue.
        assert {k["client_order_id"]: k["status"] for k in kids}["c-1-E2"] != "FILLED"
    finally:
        assert exchange.gate is not None
        exchange.gate.set()
        await store.close()

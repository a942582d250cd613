"""A fault campaign against S4: N consecutive intents through the router (REST handler and
stream consumer alternately, with resends of the same client order id), the venue injecting
429 / 5xx / timeout-after-accept / dropped acks on a share of *every* request, then checks of
what must never happen: two venue orders for one client order id, a parent filled beyond its
quantity, stored fills that differ from the venue's, an intent without a final order.

Used by `tests/chaos/test_s4_chaos.py` (assertions) and `tests/bench/bench_s4_faults.py`
(printed figures)."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from s4_router.entrypoints.stream_consumer import IntentConsumer
from svckit.clock import ManualClock
from svckit.redisio import RedisClient, StreamEntry
from tests.chaos.rig import T0, hand_venue, intent, s4_rig, set_book, step_all
from tradekit.enums import OrderStatus
from venue.faults import FaultKind, FaultPlan

D = Decimal


@dataclass
class CampaignResult:
    intents: int = 0
    ok: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    duplicate_orders: list[str] = field(default_factory=list)
    overfills: list[str] = field(default_factory=list)
    fill_mismatches: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    submit_ms: list[float] = field(default_factory=list)
    faults: Counter[str] = field(default_factory=Counter)
    venue_orders: int = 0
    ambiguous: float = 0.0
    wall_s: float = 0.0

    @property
    def ok_ratio(self) -> float:
        return self.ok / self.intents if self.intents else 0.0


def fault_plan(rate: float) -> FaultPlan:
    kinds = (
        FaultKind.RATE_LIMIT,
        FaultKind.SERVER_ERROR,
        FaultKind.TIMEOUT_AFTER_ACCEPT,
        FaultKind.DROPPED_ACK,
    )
    return FaultPlan(probabilities={"*": {k: rate / len(kinds) for k in kinds}})


async def run_campaign(
    redis: RedisClient,
    tmp_path: Path,
    *,
    n: int = 1000,
    fault_rate: float = 0.05,
    seed: int = 7,
    maker_every: int = 10,
    resend_every: int = 7,
) -> CampaignResult:
    res = CampaignResult()
    clock = ManualClock(T0)
    venue = hand_venue(clock, faults=fault_plan(fault_rate) if fault_rate else None)
    venue.faults = type(venue.faults)(venue.faults.plan, seed=seed)
    t_start = time.perf_counter()
    async with s4_rig(redis, tmp_path, clock=clock, venue=venue) as r:
        consumer = IntentConsumer(
            redis=redis,
            router=r.c.router,
            clock=clock,
            group="g",
            consumer="chaos",
            claim_idle_ms=1000,
            max_deliveries=5,
        )
        coids: list[str] = []
        for i in range(n):
            coid = f"ch-{i}"
            coids.append(coid)
            over: dict[str, Any] = {
                "client_order_id": coid,
                "intent_id": f"i-{i}",
                "side": "BUY" if i % 2 == 0 else "SELL",
                "qty": "0.002",
                "created_ts": clock.now_ms(),
            }
            if maker_every and i % maker_every == 0:
                over["exec_policy"] = {"type": "MAKER_TAKER", "maker_wait_ms": 200}
            else:
                over["exec_policy"] = {"type": "MARKET"}
            if i % 50 == 0:
                set_book(venue)  # the book refills (our fills consume it)
            t0 = time.perf_counter()
            if i % 2 == 0:
                await r.c.router.submit(intent(**over), source="rest", sync_wait_ms=0)
            else:
                body = intent(**over).model_dump(mode="json")
                await consumer.handle(StreamEntry("orders:intent", f"{i}-0", body, {}, 1))
            res.submit_ms.append((time.perf_counter() - t0) * 1000)
            if resend_every and i % resend_every == 0:
                await r.c.router.submit(intent(**over), source="stream", sync_wait_ms=0)
            # ~100 ms apart: 1,000 intents stay inside the venue's request-weight budget
            # (6,000/min) the way a paced production flow does.
            clock.advance(100)
            await step_all(r.c.manager)
        for _ in range(2000):
            if not r.c.manager.active:
                break
            clock.advance(100)
            await step_all(r.c.manager)
        res.wall_s = time.perf_counter() - t_start
        res.intents = n
        by_coid = Counter(o.client_order_id for o in venue.futures.orders.values())
        res.venue_orders = sum(by_coid.values())
        res.duplicate_orders = [c for c, k in by_coid.items() if k > 1]
        for coid in coids:
            view = await r.c.router.get(coid)
            if view is None or not OrderStatus(view["order"]["status"]).is_terminal:
                res.lost.append(coid)
                continue
            order = view["order"]
            res.statuses[order["status"]] += 1
            if order["status"] == "FILLED":
                res.ok += 1
            qty = D(order["qty"])
            venue_filled = r.venue_filled(coid + "-")
            stored = sum((D(f["qty"]) for f in view["fills"]), D(0))
            if venue_filled > qty or D(order["filled_qty"]) > qty:
                res.overfills.append(coid)
            if stored != venue_filled:
                res.fill_mismatches.append(f"{coid}: stored {stored} venue {venue_filled}")
        res.faults = Counter(f.kind.value for f in venue.faults.history)
        res.ambiguous = r.c.metrics.ambiguous._value.get()
    return res

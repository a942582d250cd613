"""The one path by which a venue trade becomes a stored fill — used by the execution driver, the
FUT brackets, the SPOT OCO guardian and the native OCO alike.

Rules:

* a fill is stored once: unique `(venue, order_id, trade_id)` in the store, and a ledger per order
  (and per parent) that counts a re-reported trade once;
* the store equals the venue: a trade the venue reports is stored even when it takes the order
  (or its parent) past its quantity — that position exists whether we like it or not — and such
  an **overfill** raises a critical `OVERFILL` alert and stops buying: the caller ends the
  execution and the router refuses new entries on the symbol (`halt:entries:{symbol}`) until an
  operator has looked (runbooks/s4-router.md);
* the in-memory ledger books a trade only once it is stored, so a failed insert is retried by the
  next step and never counted without its record.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from s4_router.domain.fills import FillKey, FillLedger
from s4_router.metrics import RouterMetrics
from s4_router.service_layer.publisher import Publisher
from svckit import keys
from svckit.errors import DuplicateKey
from svckit.redisio import RedisClient
from svckit.store.base import DocumentStore
from tradekit.orders import FillRecord

HALT_TTL_S = 7 * 24 * 3600


@dataclass(frozen=True, slots=True)
class Booked:
    stored: bool  # a new fill record (False: seen before)
    overfill: bool = False


class FillBook:
    def __init__(
        self,
        *,
        store: DocumentStore,
        redis: RedisClient,
        publisher: Publisher,
        metrics: RouterMetrics,
    ) -> None:
        self.store = store
        self.redis = redis
        self.publisher = publisher
        self.metrics = metrics

    async def book(self, fill: FillRecord, *ledgers: FillLedger) -> Booked:
        """Store `fill` once and count it in every ledger (the order's, then its parent's)."""
        key: FillKey = (fill.venue, fill.order_id, fill.trade_id)
        if ledgers and all(key in ledger.seen for ledger in ledgers):
            return Booked(stored=False)
        over = [ledger for ledger in ledgers if ledger.check(key, fill.qty).overfill]
        try:
            await self.store.insert("fills", fill.model_dump(mode="json"))
            stored = True
        except DuplicateKey:
            stored = False  # stored by an earlier owner of this order: count it, never twice
        for ledger in ledgers:
            ledger.book(key, fill.qty)
        if stored:
            self.metrics.fills.labels(fill.liquidity.value).inc()
        if over and stored:
            await self._overfill(fill, over)
        return Booked(stored=stored, overfill=bool(over))

    async def _overfill(self, fill: FillRecord, over: list[FillLedger]) -> None:
        self.metrics.overfills.inc()
        limit = min(ledger.qty for ledger in over)
        total = max(ledger.filled for ledger in over)
        await self.publisher.alert(
            "OVERFILL",
            f"{fill.client_order_id} (parent {fill.parent_client_order_id}): the venue filled "
            f"{total} against {limit}; fill {fill.trade_id} ({fill.qty}) stored, execution "
            f"stopped, new entries on {fill.symbol} halted until an operator clears "
            f"{keys.halt_entries(fill.symbol)}",
            severity="critical",
            data={"symbol": fill.symbol, "client_order_id": fill.client_order_id,
                  "trade_id": fill.trade_id, "filled": str(total), "qty": str(limit)},
        )  # fmt: skip
        await self.redis.set(
            keys.halt_entries(fill.symbol),
            f"OVERFILL {fill.parent_client_order_id or fill.client_order_id} {fill.trade_id}",
            ex=HALT_TTL_S,
        )


def ledger_for(qty: Decimal, fills: list[dict[str, object]], client_order_id: str) -> FillLedger:
    """The ledger of one order from its stored fills."""
    return FillLedger.of(
        qty,
        [
            ((str(f["venue"]), str(f["order_id"]), str(f["trade_id"])), Decimal(str(f["qty"])))
            for f in fills
            if f["client_order_id"] == client_order_id
        ],
    )

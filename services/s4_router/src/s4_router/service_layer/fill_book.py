"""The one path by which a venue trade becomes a stored fill — used by the execution driver, the
FUT brackets, the SPOT OCO guardian, the native OCO and the reconciler alike (the write itself is
`OrdersRepository.book_fill`; this adds the alert and the halt).

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
from typing import Any

from s4_router.adapters.exchange.base import ExchangeTrade
from s4_router.adapters.orders_repo import Booked, OrdersRepository
from s4_router.domain.fills import FillLedger
from s4_router.metrics import RouterMetrics
from s4_router.service_layer.publisher import Publisher
from svckit import keys
from svckit.redisio import RedisClient
from tradekit.enums import Market
from tradekit.orders import FillRecord

HALT_TTL_S = 7 * 24 * 3600


def fill_of(
    t: ExchangeTrade, *, venue: str, cid: str, parent: str | None, market: Market, **more: Any
) -> FillRecord:
    """The fill record of venue trade `t` of order `cid`; `more` adds (or overrides) fields."""
    return FillRecord.model_validate(
        {
            "venue": venue,
            "order_id": t.venue_order_id,
            "trade_id": t.trade_id,
            "client_order_id": cid,
            "parent_client_order_id": parent,
            "market": market,
            "symbol": t.symbol,
            "side": t.side,
            "price": t.price,
            "qty": t.qty,
            "fee": t.fee,
            "fee_asset": t.fee_asset,
            "liquidity": t.liquidity,
            "ts_fill": t.ts,
            **more,
        }
    )


@dataclass(kw_only=True, eq=False)
class FillBook:
    orders: OrdersRepository
    redis: RedisClient
    publisher: Publisher
    metrics: RouterMetrics

    async def book(self, fill: FillRecord, *ledgers: FillLedger) -> Booked:
        """Store `fill` once and count it in every ledger (the order's, then its parent's);
        an overfill it brings is alerted and halts entries on the symbol."""
        booked = await self.orders.book_fill(fill, *ledgers)
        if booked.stored:
            self.metrics.fills.labels(fill.liquidity.value).inc()
        if not (booked.stored and booked.over):
            return booked
        self.metrics.overfills.inc()
        limit = min(ledger.qty for ledger in booked.over)
        total = max(ledger.filled for ledger in booked.over)
        await self.publisher.alert(
            "OVERFILL",
            f"{fill.client_order_id} (parent {fill.parent_client_order_id}): the venue filled "
            f"{total} against {limit}; fill {fill.trade_id} ({fill.qty}) stored, execution "
            f"stopped, new entries on {fill.symbol} halted until an operator clears "
            f"{keys.halt_entries(fill.symbol)}",
            severity="critical",
            data={
                "symbol": fill.symbol,
                "client_order_id": fill.client_order_id,
                "trade_id": fill.trade_id,
                "filled": str(total),
                "qty": str(limit),
            },
        )
        await self.redis.set(
            keys.halt_entries(fill.symbol),
            f"OVERFILL {fill.parent_client_order_id or fill.client_order_id} {fill.trade_id}",
            ex=HALT_TTL_S,
        )
        return booked

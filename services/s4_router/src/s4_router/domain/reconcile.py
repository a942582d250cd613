"""Reconciliation: compare what the venue says with what the store says (pure; no I/O).

Run on start and periodically. The caller gathers one snapshot (store orders that are not
final or were updated recently, store fills, venue open orders incl. conditional ones, venue
positions, recent venue trades) and acts on the findings:

* ORPHAN_VENUE_ORDER: open at the venue, unknown to the store → alert; cancel if configured.
* STALE_PROTECTIVE: reduce-only order open for a flat symbol → alert; cancel if configured.
* STATUS_DRIFT: store says working, venue says finished → update the order from the venue.
* MISSING_FILL: a venue trade of ours with no fill row → insert it (the unique index dedups).
* FILLED_QTY_MISMATCH / AVG_PRICE_MISMATCH (beyond a tick): recompute the order from its fills.
* POSITION_MISMATCH: venue position ≠ net of our fills beyond half a step → alert.

The store's side is the orders repository's records (`OrderRecord`, `FillRecord`) as stored.
Orders are ours when their client id is in the store, or has our shape (`{parent}-E{n}` of a
parent in the store); anything else at the venue is an orphan.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any, ClassVar, Self

from tradekit.enums import OrderRole, OrderStatus, Side
from tradekit.ids import parent_of
from tradekit.money import ZERO
from tradekit.orders import FillRecord, OrderRecord


class FindingKind(StrEnum):
    ORPHAN_VENUE_ORDER = "ORPHAN_VENUE_ORDER"
    STALE_PROTECTIVE = "STALE_PROTECTIVE"
    STATUS_DRIFT = "STATUS_DRIFT"
    MISSING_FILL = "MISSING_FILL"
    FILLED_QTY_MISMATCH = "FILLED_QTY_MISMATCH"
    AVG_PRICE_MISMATCH = "AVG_PRICE_MISMATCH"
    POSITION_MISMATCH = "POSITION_MISMATCH"


@dataclass(frozen=True, slots=True)
class Finding:
    kind: FindingKind
    symbol: str
    client_order_id: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    def data(self) -> dict[str, Any]:
        """What an alert or a summary says of it."""
        return {"symbol": self.symbol, "client_order_id": self.client_order_id, **self.detail}


class _View:
    """What reconciliation reads of a record: the record's attributes of the same names."""

    __slots__ = ()
    __match_args__: ClassVar[tuple[str, ...]]  # the fields, in order (set by @dataclass)

    @classmethod
    def of(cls, rec: object) -> Self:
        return cls(*(getattr(rec, name) for name in cls.__match_args__))


@dataclass(frozen=True, slots=True)
class VenueOrderView(_View):
    client_order_id: str
    venue_order_id: str
    symbol: str
    status: OrderStatus
    filled_qty: Decimal
    reduce_only: bool = False


@dataclass(frozen=True, slots=True)
class VenueTradeView(_View):
    trade_id: str
    venue_order_id: str
    client_order_id: str
    symbol: str
    side: Side
    price: Decimal
    qty: Decimal
    ts: int | None = None  # the venue's trade time


@dataclass(frozen=True, slots=True)
class OrderView(_View):
    """What reconciliation reads of a stored order (the reconciler keeps its window's orders
    between runs: a few hundred bytes each instead of a record's ~7 KB)."""

    client_order_id: str
    parent_client_order_id: str | None
    symbol: str
    status: OrderStatus
    qty: Decimal
    filled_qty: Decimal
    avg_price: Decimal | None
    venue_order_id: str | None
    role: OrderRole | None
    updated_ts: int


@dataclass(frozen=True, slots=True)
class FillView(_View):
    """What reconciliation reads of a stored fill."""

    client_order_id: str
    order_id: str
    trade_id: str
    symbol: str
    side: Side
    qty: Decimal
    price: Decimal
    ts_fill: int


StoreOrder = OrderRecord | OrderView
StoreFill = FillRecord | FillView


@dataclass(frozen=True, slots=True)
class Snapshot:
    store_orders: Sequence[StoreOrder]
    store_fills: Sequence[StoreFill]
    venue_open: Sequence[VenueOrderView]
    venue_orders: Mapping[str, VenueOrderView]  # by client id: the venue's view of our orders
    venue_trades: Sequence[VenueTradeView]
    positions: Mapping[str, Decimal]  # signed, FUT only
    tick: Mapping[str, Decimal]
    step: Mapping[str, Decimal]
    # Fills before this position-tracking baseline are not ours to net (e.g. pre-existing).
    position_baseline: Mapping[str, Decimal] = field(default_factory=dict)
    # When the venue's positions were read: later trades are not in them (None: all are).
    positions_ts: int | None = None


def _ours(cid: str, known: set[str]) -> bool:
    if cid in known:
        return True
    parent = parent_of(cid)
    return parent is not None and parent[0] in known


def reconcile(s: Snapshot) -> list[Finding]:
    out: list[Finding] = []
    known = {o.client_order_id for o in s.store_orders}
    by_cid = {o.client_order_id: o for o in s.store_orders}

    # 1. Orders open at the venue.
    for v in s.venue_open:
        if not _ours(v.client_order_id, known):
            kind = FindingKind.ORPHAN_VENUE_ORDER
        elif v.reduce_only and s.positions.get(v.symbol, ZERO) == 0:
            kind = FindingKind.STALE_PROTECTIVE
        else:
            continue
        out.append(Finding(kind, v.symbol, v.client_order_id, {"venue_order_id": v.venue_order_id}))

    # 2. Working orders in the store that the venue has finished.
    for o in s.store_orders:
        if o.status.is_terminal or o.status is OrderStatus.NEW:
            continue
        vo = s.venue_orders.get(o.client_order_id)
        if vo is not None and vo.status != o.status and vo.status.is_terminal:
            out.append(
                Finding(
                    FindingKind.STATUS_DRIFT,
                    o.symbol,
                    o.client_order_id,
                    {"store": o.status.value, "venue": vo.status.value},
                )
            )

    # 3. Fills: every venue trade of ours is in the store.
    have = {(f.order_id, f.trade_id) for f in s.store_fills}
    for t in s.venue_trades:
        if _ours(t.client_order_id, known) and (t.venue_order_id, t.trade_id) not in have:
            out.append(
                Finding(
                    FindingKind.MISSING_FILL,
                    t.symbol,
                    t.client_order_id,
                    {"trade_id": t.trade_id, "qty": str(t.qty), "price": str(t.price)},
                )
            )

    # 4. Per-order invariants against the fills (venue trades included, deduplicated).
    fills: dict[str, dict[tuple[str, str], tuple[Decimal, Decimal]]] = {}
    times: dict[tuple[str, str], int | None] = {}
    for src in _all_fills(s.store_fills, s.venue_trades, known):
        fills.setdefault(src[0], {})[(src[1], src[2])] = (src[3], src[4])
        times[(src[1], src[2])] = src[5]
    for cid, rows in fills.items():
        order = by_cid.get(cid)
        if order is None:
            continue
        qty = sum((q for q, _ in rows.values()), ZERO)
        if qty != order.filled_qty:
            out.append(
                Finding(
                    FindingKind.FILLED_QTY_MISMATCH,
                    order.symbol,
                    cid,
                    {"store": str(order.filled_qty), "fills": str(qty)},
                )
            )
        if qty > 0 and order.avg_price is not None:
            vwap = sum((q * p for q, p in rows.values()), ZERO) / qty
            if abs(vwap - order.avg_price) > s.tick.get(order.symbol, ZERO):
                detail = {"store": str(order.avg_price), "fills": str(vwap)}
                out.append(Finding(FindingKind.AVG_PRICE_MISMATCH, order.symbol, cid, detail))

    # 5. Positions: the venue's signed position equals the net of our fills (within one step).
    # The fills are a symbol's whole history: an order's side and symbol come from an index
    # built once (its first store fill, else its first venue trade), not a scan per order.
    first: dict[str, tuple[Side, str]] = {}
    for f in [*s.store_fills, *s.venue_trades]:
        first.setdefault(f.client_order_id, (f.side, f.symbol))
    net: dict[str, Decimal] = {}
    for cid, rows in fills.items():
        seen = first.get(cid)
        if seen is None:
            continue
        side, fill_symbol = seen
        sym = by_cid[cid].symbol if cid in by_cid else fill_symbol
        # Only trades the position read can hold (a trade after it is the next run's).
        qty = sum((q for key, (q, _) in rows.items() if _held(times[key], s.positions_ts)), ZERO)
        net[sym] = net.get(sym, ZERO) + side.sign * qty
    for sym, pos in s.positions.items():
        ours = net.get(sym, ZERO) + s.position_baseline.get(sym, ZERO)
        if abs(pos - ours) > s.step.get(sym, ZERO) / 2:
            out.append(
                Finding(
                    FindingKind.POSITION_MISMATCH,
                    sym,
                    None,
                    {"venue": str(pos), "fills": str(ours)},
                )
            )
    return out


def _held(ts: int | None, positions_ts: int | None) -> bool:
    return ts is None or positions_ts is None or ts <= positions_ts


def _all_fills(
    store: Iterable[StoreFill], venue: Iterable[VenueTradeView], known: set[str]
) -> Iterable[tuple[str, str, str, Decimal, Decimal, int | None]]:
    for f in store:
        yield f.client_order_id, f.order_id, f.trade_id, f.qty, f.price, f.ts_fill
    for t in venue:
        if _ours(t.client_order_id, known):
            yield t.client_order_id, t.venue_order_id, t.trade_id, t.qty, t.price, t.ts

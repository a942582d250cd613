"""The record of a protection and its writes: the `strategy_events` document
`protection:{client_order_id}` (`kind = "PROTECTION"`), the protective child records in `orders`
(`{client_order_id}-E{n}`, roles STOP_LOSS / TAKE_PROFIT for FUT, OCO_ABOVE / OCO_BELOW for SPOT,
`link_group` = the parent), their fills (through the one booking path, `fill_book.FillBook`,
over-fill checked), and the protection's events and alerts."""

from __future__ import annotations

import asyncio
import contextlib
import copy
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, TypeVar

from s4_router.adapters.exchange.base import (
    BookTop,
    ConditionalOrder,
    ExchangeOrder,
    ExchangePort,
    ExchangeTrade,
    RetryableError,
)
from s4_router.adapters.orders_repo import OrdersRepository
from s4_router.metrics import RouterMetrics
from s4_router.policies import brackets as br
from s4_router.policies import oco_guardian as og
from s4_router.policies.oco_native import NativeOco
from s4_router.policies.protective import Leg, Place
from s4_router.service_layer.fill_book import FillBook, fill_of
from s4_router.service_layer.publisher import Publisher
from s4_router.service_layer.venue_ops import VenueOps
from svckit.clock import Clock
from svckit.errors import DuplicateKey
from svckit.store.base import DocumentStore
from tradekit.enums import Market, OrderRole, OrderStatus, Side
from tradekit.instrument import Instrument
from tradekit.money import ZERO
from tradekit.orders import OrderRecord, StateChange

S = OrderStatus
KIND = "PROTECTION"
Machine = br.Brackets | og.OcoGuardian | NativeOco
M = TypeVar("M", bound=Machine)
MACHINES: dict[str, type[Machine]] = {
    "BRACKETS": br.Brackets,
    "OCO_GUARDIAN": og.OcoGuardian,
    "OCO_NATIVE": NativeOco,
}
PROTECTIVE_ROLES = frozenset(
    {OrderRole.STOP_LOSS, OrderRole.TAKE_PROFIT, OrderRole.OCO_ABOVE, OrderRole.OCO_BELOW}
)


def doc_key(client_order_id: str) -> str:
    return f"protection:{client_order_id}"


@dataclass
class Protection:
    coid: str
    market: Market
    symbol: str
    side: Side  # entry side
    inst: Instrument
    intent: dict[str, Any]
    machine: Machine | None = None  # FUT: brackets from the start; SPOT: once the entry is done
    entry_done: bool = False
    entry_filled: Decimal = ZERO
    sent: dict[str, int] = field(default_factory=dict)  # cid -> last send attempt (ms)
    observed: dict[str, int] = field(default_factory=dict)  # timings beyond the machines'
    active: bool = True
    created_ts: int = 0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    # In memory only: when the entry was seen done (a positions snapshot taken before that
    # cannot show its position), and the last document written (unchanged rounds write nothing).
    entry_done_seq: int | None = None
    persisted: dict[str, Any] | None = None
    entry_doubt_checked_ms: int = 0  # last look at the entry children for a MARKET in doubt

    @property
    def final(self) -> bool:
        return self.machine is not None and self.machine.final

    @property
    def machine_name(self) -> str:
        if self.market is Market.FUT:
            return "BRACKETS"
        return "OCO_NATIVE" if isinstance(self.machine, NativeOco) else "OCO_GUARDIAN"


def machine_of(p: Protection, kind: type[M]) -> M:
    assert isinstance(p.machine, kind)
    return p.machine


def role_of(p: Protection, leg: Leg) -> OrderRole:
    if p.market is Market.FUT:
        return OrderRole.STOP_LOSS if leg is Leg.SL else OrderRole.TAKE_PROFIT
    # SPOT: the take profit of a long (and the stop of a short) rests above the market.
    return OrderRole.OCO_ABOVE if (leg is Leg.TP) == (p.side is Side.BUY) else OrderRole.OCO_BELOW


@dataclass
class Snapshot:
    """What one batched round learnt about one symbol (None: not asked, or not answered)."""

    conditionals: dict[str, ConditionalOrder] | None = None  # open FUT algo orders by client id
    conditionals_failed: bool = False
    spot_orders: dict[str, ExchangeOrder] | None = None  # open SPOT orders by client id
    spot_failed: bool = False
    position: Decimal | None = None  # FUT position qty (only on a positions round)
    position_seq: int = 0  # sequence number taken just before the positions call
    book: BookTop | None = None  # SPOT book for the guardians' local legs (one per round)
    book_failed: bool = False


@dataclass(kw_only=True, eq=False)
class ProtectionRecords:
    store: DocumentStore  # strategy_events (the protection documents)
    orders: OrdersRepository
    exchange: ExchangePort
    ops: VenueOps
    clock: Clock
    metrics: RouterMetrics
    publisher: Publisher
    fills: FillBook

    # ---- records -----------------------------------------------------------------------------
    async def child_record(self, p: Protection, c: Place) -> None:
        now = self.clock.now_ms()
        rec = OrderRecord(
            client_order_id=c.client_order_id,
            parent_client_order_id=p.coid,
            intent_id=p.intent["intent_id"],
            venue=self.exchange.venue,
            market=p.market,
            symbol=p.symbol,
            side=c.side,
            type=c.type,
            qty=c.qty,
            price=c.price,
            stop_price=c.stop_price,
            reduce_only=p.market is Market.FUT,
            status=S.SUBMITTED,
            history=[
                StateChange(status=S.NEW, ts=now),
                StateChange(status=S.SUBMITTED, ts=now, reason=f"protective {c.leg.value}"),
            ],
            created_ts=now,
            updated_ts=now,
            ts_send=now,
            role=role_of(p, c.leg),
            link_group=p.coid,
        )
        with contextlib.suppress(DuplicateKey):
            await self.orders.add(rec)

    async def set_child(
        self,
        cid: str,
        status: OrderStatus,
        message: str | None,
        *,
        filled: Decimal | None = None,
        avg: Decimal | None = None,
        venue_id: str | None = None,
    ) -> None:
        rec = await self.orders.get(cid)
        if rec is None:
            return
        now = self.clock.now_ms()
        fields = {"updated_ts"}
        rec.updated_ts = now
        if rec.status is not status and not rec.status.is_terminal:
            rec.status = status
            rec.history.append(StateChange(status=status, ts=now, reason=message))
            fields |= {"status", "history"}
            if rec.ts_ack is None and status is not S.REJECTED:
                rec.ts_ack = now
                fields.add("ts_ack")
        if message:
            rec.message = message
            fields.add("message")
        if filled is not None:
            rec.filled_qty = filled
            fields.add("filled_qty")
        if avg is not None:
            rec.avg_price = avg
            fields.add("avg_price")
        if venue_id and not rec.venue_order_id:
            rec.venue_order_id = venue_id
            fields.add("venue_order_id")
        await self.orders.save(rec, fields)

    async def book(self, p: Protection, cid: str, order: ExchangeOrder) -> None:
        trades: list[ExchangeTrade] = list(order.trades)
        if sum((t.qty for t in trades), ZERO) < order.filled_qty:
            try:
                every = await self.ops.call(
                    lambda: self.exchange.fetch_my_trades(p.market, p.symbol, p.created_ts)
                )
            except RetryableError:
                return  # booked on a later poll
            trades = [t for t in every if t.venue_order_id == order.venue_order_id]
        rec = await self.orders.get(cid)
        role = rec.role if rec is not None and rec.role else OrderRole.STOP_LOSS
        # The same booking path as the entry's (stored once, over-fill checked and alerted).
        ledger = await self.orders.ledger(cid, order.qty)
        for t in trades:
            fill = fill_of(
                t,
                venue=self.exchange.venue,
                cid=cid,
                parent=p.coid,
                market=p.market,
                symbol=p.symbol,
                role=role,
            )
            await self.fills.book(fill, ledger)

    async def event(self, p: Protection, name: str, data: dict[str, Any]) -> None:
        with contextlib.suppress(DuplicateKey):
            await self.store.insert(
                "strategy_events",
                {
                    "_key": f"{name.lower()}:{p.coid}",
                    "kind": name,
                    "ts": self.clock.now_ms(),
                    "parent_client_order_id": p.coid,
                    "symbol": p.symbol,
                    "data": data,
                },
            )
        await self.publisher.event(name, client_order_id=p.coid, symbol=p.symbol, data=data)

    async def alert(self, p: Protection, kind: str, message: str) -> None:
        """Every protective alert is critical: it is about a position's protection."""
        await self.publisher.alert(
            kind, f"{p.coid}: {message}", severity="critical", data={"symbol": p.symbol}
        )

    # ---- persistence -------------------------------------------------------------------------
    def doc(self, p: Protection) -> dict[str, Any]:
        m = p.machine
        state = m.model_dump(mode="json") if m is not None else None
        return {
            "kind": KIND,
            "ts": p.created_ts,
            "parent_client_order_id": p.coid,
            "market": p.market.value,
            "symbol": p.symbol,
            "side": p.side.value,
            "machine": p.machine_name,
            "active": p.active and not p.final,
            "state": state,
            "intent": p.intent,
            "entry_done": p.entry_done,
            "entry_filled": str(p.entry_filled),
            "sent": dict(p.sent),
            "observed": dict(p.observed),
            "updated_ts": self.clock.now_ms(),
        }

    async def persist(self, p: Protection) -> None:
        doc = self.doc(p)
        same = {k: v for k, v in doc.items() if k != "updated_ts"}
        if same == p.persisted:
            return  # an unchanged round writes nothing
        await self.store.update("strategy_events", doc_key(p.coid), doc)
        p.persisted = copy.deepcopy(same)

"""The one interpreter of the protective command set (`policies.protective`): it carries out what
the FUT brackets, the SPOT OCO guardian and the native SPOT OCO list ask for against the venue
(`VenueOps`) and the store (`protection_records`), and feeds the venue's answers back to the
machine through its mode's `Driver`.

Exactly-once, as for entry children: the id is allocated and persisted first (`persist` before
every send); an unanswered send is resolved by querying the same id (never resent under a new
one) and resent with the same id only once the venue's recvWindow has passed without a trace of
it.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from s4_router.adapters.exchange.base import (
    AmbiguousSubmit,
    ConditionalOrder,
    DefinitiveError,
    DuplicateOrder,
    ExchangeError,
    ExchangeOrder,
    OcoOrderList,
    OcoRequest,
    OrderNotFound,
    PlaceOrderRequest,
    ProtectionUnsupported,
    RetryableError,
)
from s4_router.policies.oco_native import LegReport, NativeOco
from s4_router.policies.protective import (
    Alert,
    Cancel,
    Command,
    Event,
    Leg,
    Place,
    PlaceList,
    Query,
)
from s4_router.service_layer.protection_records import Protection, ProtectionRecords, Snapshot
from s4_router.service_layer.venue_ops import Unresolved
from tradekit.enums import Market, OrderStatus, OrderType
from tradekit.ids import parent_of
from tradekit.money import ZERO

log = logging.getLogger(__name__)

S = OrderStatus
MAX_CHILD = 99
Report = tuple[OrderStatus, Decimal]  # a protective order's status and cumulative fill
_ALGO_STATUS = {
    "NEW": S.ACCEPTED,
    "TRIGGERED": S.ACCEPTED,  # the market order is on its way: still working
    "CANCELED": S.CANCELED,
    "EXPIRED": S.EXPIRED,
    "REJECTED": S.REJECTED,
}


@dataclass(kw_only=True, eq=False)
class Driver:
    """One mode's glue between its machine and the interpreter (see `protection_brackets`,
    `protection_oco`): what the mode adds to the shared steps (metrics, event fields, checks
    after a batch of commands). A venue report reaches every machine the same way."""

    io: Interpreter

    async def report(
        self, p: Protection, cid: str, status: OrderStatus, filled: Decimal
    ) -> list[Command]:
        assert p.machine is not None
        return p.machine.on_report(cid, status, filled, self.io.clock.now_ms())

    async def rejected(self, p: Protection, cid: str, reason: str) -> list[Command]:
        assert p.machine is not None
        return p.machine.on_rejected(cid, reason, self.io.clock.now_ms())

    async def feed_entry(
        self, p: Protection, filled: Decimal, avg: Decimal | None, done: bool
    ) -> None:
        raise NotImplementedError

    async def poll(self, p: Protection, snap: Snapshot | None) -> None:
        """One round: `snap` is the round's venue snapshot of the symbol (None: ask by id)."""
        raise NotImplementedError

    def seen(self, p: Protection, cid: str, filled: Decimal) -> None:
        """A venue report of `cid` is about to be fed (before its fills are booked)."""

    def cancelling(self, p: Protection) -> None:
        """A cancel is about to be sent."""

    async def on_alert(self, p: Protection, c: Alert) -> None:
        pass

    async def on_event(self, p: Protection, c: Event) -> dict[str, Any]:
        return c.data

    async def settled(self, p: Protection) -> None:
        """A batch of commands has been carried out."""


class Interpreter(ProtectionRecords):
    """Carries out the protective commands; the records and writes are inherited."""

    async def run(self, p: Protection, d: Driver, cmds: list[Command]) -> None:
        """Carry out `cmds` and every command the answers lead to, in order."""
        queue = list(cmds)
        while queue:
            c = queue.pop(0)
            if isinstance(c, Place):
                if parent_of(c.client_order_id) is None:
                    why = f"{c.client_order_id}: beyond E{MAX_CHILD}; not placed"
                    await self.alert(p, "PROTECTIVE_IDS_EXHAUSTED", why)
                    queue += await d.rejected(p, c.client_order_id, "ids exhausted")
                    continue
                await self.persist(p)  # the id is durable before the send
                await self.child_record(p, c)
                queue += await self._place(p, d, c)
            elif isinstance(c, PlaceList):
                queue += await self._place_list(p, d, c)
            elif isinstance(c, Cancel):
                queue += await self.cancel(p, d, c.client_order_id)
            elif isinstance(c, Query):
                queue += await self.query(p, d, c.client_order_id)
            elif isinstance(c, Alert):
                await d.on_alert(p, c)
                await self.alert(p, c.kind, c.message)
            else:
                await self.event(p, c.name, await d.on_event(p, c))
        await d.settled(p)

    # ---- single orders: FUT conditional (algo) orders, plain orders --------------------------
    async def _place(self, p: Protection, d: Driver, c: Place) -> list[Command]:
        cid = c.client_order_id
        req = PlaceOrderRequest(
            market=p.market,
            symbol=p.symbol,
            side=c.side,
            type=c.type,
            qty=c.qty,
            client_order_id=cid,
            price=c.price,
            stop_price=c.stop_price,
            post_only=c.type is OrderType.LIMIT_MAKER,
            reduce_only=c.reduce_only,
            working_type=c.working_type,
        )
        if c.working_type is None:
            p.sent[cid] = self.clock.now_ms()
            try:
                order = await self.ops.send(req, since_ms=self.clock.now_ms() - 1000)
            except Unresolved:
                return []  # resolved by the polling (same id, never a new one)
            except DefinitiveError as exc:
                await self.set_child(cid, S.REJECTED, str(exc))
                return await d.rejected(p, cid, str(exc))
            return await self.order_report(p, d, cid, order)

        async def attempt() -> ConditionalOrder:
            p.sent[cid] = self.clock.now_ms()
            return await self.exchange.place_conditional(req)

        try:
            algo = await self.ops.call(attempt)  # retried (same id) while the venue refuses
        except (DuplicateOrder, AmbiguousSubmit, RetryableError):
            report = await self.query_algo(p, cid)  # it may be there: only its id can tell
        except DefinitiveError as exc:
            await self.set_child(cid, S.REJECTED, str(exc))
            return await d.rejected(p, cid, str(exc))
        else:
            report = await self.algo_report(p, cid, algo)
        return await d.report(p, cid, *report) if report is not None else []

    async def cancel(self, p: Protection, d: Driver, cid: str) -> list[Command]:
        if p.market is Market.FUT:
            report = await self._cancel_algo(p, cid)
            return await d.report(p, cid, *report) if report is not None else []
        d.cancelling(p)
        try:
            order = await self.ops.cancel(p.market, p.symbol, cid)
        except ExchangeError as exc:
            log.info("%s: leg cancel deferred: %s", cid, exc)
            return []  # the machine's timer queries it (polling fallback)
        if order is None:
            return await self.query(p, d, cid)
        return await self.order_report(p, d, cid, order)

    async def query(self, p: Protection, d: Driver, cid: str) -> list[Command]:
        if p.market is Market.FUT:
            report = await self.query_algo(p, cid)
            return await d.report(p, cid, *report) if report is not None else []
        try:
            order = await self.ops.fetch(p.market, p.symbol, cid)
        except OrderNotFound:
            if self.ops.landing_window_open(p.sent.get(cid)):
                return []
            return await d.report(p, cid, S.EXPIRED, ZERO)
        except RetryableError:
            return []
        return await self.order_report(p, d, cid, order)

    async def order_report(
        self, p: Protection, d: Driver, cid: str, order: ExchangeOrder
    ) -> list[Command]:
        d.seen(p, cid, order.filled_qty)
        await self.record(p, cid, order)
        return await d.report(p, cid, S(order.status), order.filled_qty)

    async def record(
        self, p: Protection, cid: str, order: ExchangeOrder, message: str | None = None
    ) -> None:
        """The venue's word on one protective order: its fills booked, its record updated."""
        if order.filled_qty > 0:
            await self.book(p, cid, order)  # idempotent: unique (venue, order_id, trade_id)
        await self.set_child(
            cid,
            S(order.status),
            message,
            filled=order.filled_qty,
            avg=order.avg_price,
            venue_id=order.venue_order_id,
        )

    async def query_algo(self, p: Protection, cid: str) -> Report | None:
        try:
            algo = await self.ops.call(
                lambda: self.exchange.fetch_conditional(p.symbol, client_algo_id=cid)
            )
        except (OrderNotFound, RetryableError):
            return None  # not (yet) there: resolved on a later poll, resent after recvWindow
        return await self.algo_report(p, cid, algo)

    async def _cancel_algo(self, p: Protection, cid: str) -> Report | None:
        try:
            algo = await self.ops.call(
                lambda: self.exchange.cancel_conditional(p.symbol, client_algo_id=cid)
            )
        except OrderNotFound:
            return await self.query_algo(p, cid) or (
                (S.EXPIRED, ZERO) if not self.ops.landing_window_open(p.sent.get(cid)) else None
            )
        except ExchangeError as exc:
            log.info("%s: cancel deferred: %s", cid, exc)
            return None
        return await self.algo_report(p, cid, algo)

    async def algo_report(self, p: Protection, cid: str, algo: ConditionalOrder) -> Report:
        """Venue truth of a conditional order → (status, cumulative fill); books its fills."""
        if algo.status == "FINISHED" and algo.triggered_order_id:
            order = await self.ops.call(
                lambda: self.exchange.fetch_order(
                    Market.FUT, p.symbol, venue_order_id=algo.triggered_order_id
                )
            )
            await self.book(p, cid, order)
            # What it closed is what it closed; the rest was reduce-only.
            status = S.FILLED if order.filled_qty > 0 else S(order.status)
            await self.set_child(
                cid,
                status,
                f"triggered: order {order.venue_order_id}",
                filled=order.filled_qty,
                avg=order.avg_price,
                venue_id=algo.algo_id,
            )
            return status, order.filled_qty
        status = (
            S.EXPIRED if algo.status == "FINISHED" else _ALGO_STATUS.get(algo.status, S.ACCEPTED)
        )
        await self.set_child(cid, status, f"algo {algo.status}", venue_id=algo.algo_id)
        return status, ZERO

    # ---- venue OCO lists ---------------------------------------------------------------------
    async def _place_list(self, p: Protection, d: Driver, c: PlaceList) -> list[Command]:
        sl_type = OrderType.STOP_LOSS_LIMIT if c.sl_limit_price else OrderType.STOP_MARKET
        await self.persist(p)
        side, qty = c.side, c.qty
        for leg in (
            Place(Leg.TP, c.tp_client_order_id, side, OrderType.LIMIT_MAKER, qty, c.tp_price),
            Place(Leg.SL, c.sl_client_order_id, side, sl_type, qty, c.sl_limit_price, c.sl_price),
        ):
            await self.child_record(p, leg)
        p.sent[c.list_client_order_id] = self.clock.now_ms()
        await self.persist(p)  # the attempt is durable before the send (a restart looks it up)
        req = OcoRequest(
            p.symbol,
            c.side,
            c.qty,
            limit_price=c.tp_price,
            stop_price=c.sl_price,
            stop_limit_price=c.sl_limit_price,
            list_client_order_id=c.list_client_order_id,
            limit_client_order_id=c.tp_client_order_id,
            stop_client_order_id=c.sl_client_order_id,
        )
        try:
            lst = await self.exchange.place_oco(req)
        except ProtectionUnsupported as exc:
            return await d.rejected(p, c.list_client_order_id, f"venue has no OCO lists: {exc}")
        except (AmbiguousSubmit, RetryableError, DuplicateOrder) as exc:
            log.info(
                "%s: OCO list send unanswered (%s); looked up by its id",
                c.list_client_order_id,
                exc,
            )
            with contextlib.suppress(RetryableError):
                return await self.lookup_list(p) or []
            return []
        except DefinitiveError as exc:
            return await d.rejected(p, c.list_client_order_id, f"OCO list rejected: {exc}")
        return await self.list_report(p, lst)

    async def lookup_list(
        self, p: Protection, order_list_id: str | None = None
    ) -> list[Command] | None:
        """The list by its venue id, else by its client id; None when the venue has no such
        list (RetryableError propagates: no evidence either way)."""
        m = p.machine
        assert isinstance(m, NativeOco)
        try:
            lst = await self.ops.call(
                lambda: self.exchange.fetch_order_list(
                    order_list_id,
                    symbol=p.symbol,
                    list_client_order_id=None if order_list_id else m.list_client_order_id,
                )
            )
        except OrderNotFound:
            if order_list_id:
                raise  # an acknowledged list the venue no longer knows: retried next round
            return None
        return await self.list_report(p, lst)

    async def list_report(self, p: Protection, lst: OcoOrderList) -> list[Command]:
        m = p.machine
        assert isinstance(m, NativeOco)
        legs = [o for o in lst.orders if m.leg_of(o.client_order_id) is not None]
        for order in legs:
            await self.record(p, order.client_order_id, order)
        reports = [
            LegReport(client_order_id=o.client_order_id, status=S(o.status), filled=o.filled_qty)
            for o in legs
        ]
        return m.on_list(lst.order_list_id, lst.status == "ALL_DONE", reports, self.clock.now_ms())

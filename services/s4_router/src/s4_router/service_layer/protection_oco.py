"""SPOT OCO: the drivers of the client-side guardian (`policies.oco_guardian`) and of the venue's
native OCO list (`policies.oco_native`, `S4_OCO_GUARDIAN=false`: list `{parent}-E60`, legs E61
take profit / E62 stop, looked up by the list client id before any resend, polled with
`fetch_order_list`; a venue without lists falls back to the guardian, `OCO_GUARDIAN_FALLBACK`,
legs from E63). Both arm once the entry is done, for what it filled net of base-asset fees."""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from s4_router.adapters.exchange.base import BookTop, ExchangeError, RetryableError
from s4_router.policies import oco_guardian as og
from s4_router.policies.oco_native import NativeOco
from s4_router.policies.protective import Alert, Command, Event
from s4_router.service_layer.protection_interp import Driver
from s4_router.service_layer.protection_records import (
    PROTECTIVE_ROLES,
    Protection,
    Snapshot,
    machine_of,
)
from tradekit.enums import Market, OrderStatus, Side
from tradekit.instrument import round_to_increment
from tradekit.intents import OcoPolicy
from tradekit.money import ZERO

log = logging.getLogger(__name__)

S = OrderStatus


@dataclass(kw_only=True, eq=False)
class SpotOcoDriver(Driver):
    """What both SPOT modes share: the legs' size, anomaly counting, the resolve event."""

    first_child: int

    async def on_alert(self, p: Protection, c: Alert) -> None:
        self.io.metrics.oco_anomalies.inc()

    async def on_event(self, p: Protection, c: Event) -> dict[str, Any]:
        return {**c.data, "observed": dict(p.observed)}

    async def feed_entry(
        self, p: Protection, filled: Decimal, avg: Decimal | None, done: bool
    ) -> None:
        if done and not p.entry_done and p.machine is None:
            await self.arm(p, filled)

    async def arm(self, p: Protection, filled: Decimal) -> None:
        raise NotImplementedError

    async def legs_qty(self, p: Protection, filled: Decimal) -> tuple[OcoPolicy, Decimal] | None:
        """The policy and the legs' size; None (and OCO_SKIPPED) when nothing tradeable is
        left to protect. A critical alert when the legs leave more than one step of the fill
        uncovered, or nothing at all of a fill (legs below minNotional are skipped)."""
        pol = OcoPolicy.model_validate(p.intent["exec_policy"])
        qty = await self._spot_position(p, filled)
        covered = qty if qty * pol.sl_price >= p.inst.minNotional else ZERO
        short = filled - covered
        if short > p.inst.stepSize or (filled > 0 and covered == 0):
            self.io.metrics.oco_anomalies.inc()
            await self.io.alert(
                p,
                "OCO_LEG_SHORTFALL",
                f"OCO legs cover {covered} of the {filled} {p.inst.base_asset} filled: {short} "
                "unprotected",
            )
        if qty <= 0 or (qty * pol.sl_price < p.inst.minNotional):
            p.active = False
            why = "nothing (tradeable) to protect"
            data = {"filled": str(filled), "qty": str(qty), "reason": why}
            await self.io.event(p, "OCO_SKIPPED", data)
            return None
        return pol, qty

    async def _spot_position(self, p: Protection, filled: Decimal) -> Decimal:
        """What the legs sell: the fill net of the fees taken in the base asset, to the step.

        Rounding the net down would leave almost a whole step unprotected (a 0.002 BUY, fee
        0.0000008 BTC, legs floor(0.0019992) = 0.001). So the net rounds *up* to the step, never
        beyond the fill: the fee's dust comes from the account's free base balance, which must
        hold it (else the legs fall back to what it holds, floored to the step)."""
        fills = await self.io.orders.fills(parent_client_order_id=p.coid)
        base = p.inst.base_asset
        # The fees the legs' size is net of: the entry's own, never a protective order's.
        fee = sum(
            (f.fee for f in fills if f.fee_asset == base and f.role not in PROTECTIVE_ROLES), ZERO
        )
        step = p.inst.stepSize
        if p.side is not Side.BUY:
            return round_to_increment(filled, step, "down") if filled > 0 else ZERO
        net = filled - fee
        if net <= 0:
            return ZERO
        want = min(round_to_increment(net, step, "up"), round_to_increment(filled, step, "down"))
        try:
            bals = await self.io.ops.call(lambda: self.io.exchange.fetch_balances(Market.SPOT))
        except ExchangeError:
            return round_to_increment(net, step, "down")  # cannot prove the dust is there
        bal = bals.get(p.inst.base_asset)
        free = bal.free if bal is not None else ZERO
        if free >= want:
            return want
        return round_to_increment(min(net, free), step, "down") if free > 0 else ZERO


@dataclass(kw_only=True, eq=False)
class GuardianDriver(SpotOcoDriver):
    # parent -> monotonic time a leg fill was seen
    _fill_seen: dict[str, float] = field(default_factory=dict, init=False)

    # ---- the machine's side of the interpreter ----------------------------------------------
    def seen(self, p: Protection, cid: str, filled: Decimal) -> None:
        g = machine_of(p, og.OcoGuardian)
        leg = g.leg_of(cid)
        if leg is not None and filled > g.leg(leg).orders.get(cid, ZERO):
            self._fill_seen.setdefault(p.coid, self.io.clock.monotonic())

    def cancelling(self, p: Protection) -> None:
        seen = self._fill_seen.pop(p.coid, None)
        if seen is not None:
            # Fill observed → sibling cancel sent (the guardian's reaction time).
            lat = max(0.0, self.io.clock.monotonic() - seen)
            p.observed["sibling_cancel_us"] = int(lat * 1_000_000)
            self.io.metrics.oco_cancel.observe(lat)

    async def on_event(self, p: Protection, c: Event) -> dict[str, Any]:
        self._fill_seen.pop(p.coid, None)
        return await super().on_event(p, c)

    # ---- inputs ------------------------------------------------------------------------------
    async def arm(self, p: Protection, filled: Decimal, *, first_child: int | None = None) -> None:
        sized = await self.legs_qty(p, filled)
        if sized is None:
            return
        pol, qty = sized
        stops = self.io.exchange.spot_stop_orders
        both = stops and await self._backs_both(p, qty, pol)
        p.machine = g = og.OcoGuardian.new(
            parent_client_order_id=p.coid,
            position_side=p.side,
            qty=qty,
            tp_price=pol.tp_price,
            sl_price=pol.sl_price,
            sl_limit_price=pol.sl_limit_price,
            both_rest=both,
            priority=og.Leg.SL if stops else og.Leg.TP,
            first_child=first_child or self.first_child,
        )
        await self.io.run(p, self, g.arm(self.io.clock.now_ms()))

    async def _backs_both(self, p: Protection, qty: Decimal, pol: OcoPolicy) -> bool:
        try:
            bals = await self.io.ops.call(lambda: self.io.exchange.fetch_balances(Market.SPOT))
        except ExchangeError:
            return False
        if p.side is Side.BUY:
            free = bals.get(p.inst.base_asset)
            return free is not None and free.free >= 2 * qty
        free = bals.get(p.inst.quote_asset)
        return free is not None and free.free >= qty * (pol.tp_price + pol.sl_price)

    @staticmethod
    def watching(p: Protection) -> bool:
        """A leg watched locally (against the book, not resting at the venue)."""
        g = p.machine
        return (
            isinstance(g, og.OcoGuardian)
            and not g.final
            and any(ls.mode is og.LegMode.LOCAL for ls in (g.tp, g.sl))
        )

    @staticmethod
    def wants_orders(p: Protection) -> bool:
        g = p.machine
        return isinstance(g, og.OcoGuardian) and any(ls.live for ls in (g.tp, g.sl))

    async def on_price(self, p: Protection, book: BookTop) -> None:
        g = machine_of(p, og.OcoGuardian)
        await self.io.run(p, self, g.on_price(book.best_bid, book.best_ask, self.io.clock.now_ms()))

    async def poll(self, p: Protection, snap: Snapshot | None) -> None:
        g, io = machine_of(p, og.OcoGuardian), self.io
        for ls in (g.tp, g.sl):
            if not (ls.live and ls.client_order_id is not None and ls.cancel_sent_ms is None):
                continue
            cid = ls.client_order_id
            if snap is not None and snap.spot_failed:
                continue  # no snapshot this round: the next round asks again
            orders = snap.spot_orders if snap is not None else None
            order = orders.get(cid) if orders is not None else None
            if order is None:  # no snapshot, or it left the open list: asked by its id
                await io.run(p, self, await io.query(p, self, cid))
            elif (ls.status, ls.orders.get(cid)) != (order.status, order.filled_qty):
                await io.run(p, self, await io.order_report(p, self, cid, order))
        if self.watching(p):
            book = snap.book if snap is not None else None  # the round's one book of the symbol
            if snap is None or (snap.book is None and not snap.book_failed):
                with contextlib.suppress(ExchangeError):  # not asked this round: asked now
                    book = await io.exchange.fetch_book(Market.SPOT, p.symbol)
            if book is not None and book.bids and book.asks:
                await self.on_price(p, book)
        await io.run(p, self, g.on_timer(io.clock.now_ms()))


@dataclass(kw_only=True, eq=False)
class NativeDriver(SpotOcoDriver):
    guardian: GuardianDriver

    async def rejected(self, p: Protection, cid: str, reason: str) -> list[Command]:
        """The venue refused the list (or has none): the guardian protects instead."""
        n = machine_of(p, NativeOco)
        for leg in n.legs.values():
            await self.io.set_child(leg.client_order_id, S.REJECTED, reason)
        p.machine = None
        await self.io.event(p, "OCO_GUARDIAN_FALLBACK", {"reason": reason})
        # The guardian's ids follow the native ones (E60..E62 are taken).
        filled = max(p.entry_filled, n.filled)
        await self.guardian.arm(p, filled, first_child=self.first_child + 3)
        return []

    async def arm(self, p: Protection, filled: Decimal) -> None:
        """One venue OCO list for what the entry bought/sold. Durable before the send."""
        sized = await self.legs_qty(p, filled)
        if sized is None:
            return
        pol, qty = sized
        p.machine = n = NativeOco.new(
            parent_client_order_id=p.coid,
            position_side=p.side,
            qty=qty,
            filled=filled,
            tp_price=pol.tp_price,
            sl_price=pol.sl_price,
            sl_limit_price=pol.sl_limit_price,
            first_child=self.first_child,
            now_ms=self.io.clock.now_ms(),
        )
        await self.io.run(p, self, [n.place()])

    async def poll(self, p: Protection, snap: Snapshot | None) -> None:
        n, io = machine_of(p, NativeOco), self.io
        if n.acked and snap is not None:
            if snap.spot_failed:
                return
            if snap.spot_orders is not None and n.unchanged(
                {cid: (o.status, o.filled_qty) for cid, o in snap.spot_orders.items()}
            ):
                return  # both legs open and unchanged: the list has nothing new
        try:
            found = await io.lookup_list(p, n.order_list_id)
        except RetryableError:
            return
        if found is not None:
            await io.run(p, self, found)
        elif not io.ops.landing_window_open(p.sent.get(n.list_client_order_id)):
            # Never acknowledged and no trace of it past the recvWindow: the same ids again.
            await io.run(p, self, [n.place()])

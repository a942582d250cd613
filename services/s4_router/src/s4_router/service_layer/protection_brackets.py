"""FUT SL/TP brackets (`policies.brackets`): the mode's driver. Entry fills size the brackets; a
round reads the open algo orders of the symbol once and asks by id only for an order that left
that list; a manual close shows in the positions call. A stop the venue rejects after the fill
leaves the position naked: a critical alert, and under `S4_NAKED_POLICY=close` a reduce-only
market close (its id durable before the send, never sent twice)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from s4_router.adapters.exchange.base import (
    DefinitiveError,
    ExchangeOrder,
    OrderNotFound,
    PlaceOrderRequest,
    RetryableError,
)
from s4_router.policies import brackets as br
from s4_router.policies.protective import Event, Leg, Place
from s4_router.service_layer.protection_interp import Driver
from s4_router.service_layer.protection_records import Protection, Snapshot, machine_of
from s4_router.service_layer.venue_ops import Unresolved
from tradekit.enums import Market, OrderStatus, OrderType
from tradekit.money import ZERO

S = OrderStatus


@dataclass(kw_only=True, eq=False)
class BracketsDriver(Driver):
    naked_policy: str  # S4_NAKED_POLICY: "close" | "alert"
    unprotected_alert_ms: int = 5_000  # S4_UNPROTECTED_ALERT_MS

    # ---- the machine's side of the interpreter ----------------------------------------------
    async def on_event(self, p: Protection, c: Event) -> dict[str, Any]:
        b = machine_of(p, br.Brackets)
        if b.protected_ms is None and b.first_fill_ms is not None:
            # Never protected (stop rejected): naked from the first fill until flat.
            naked = (b.closed_ms or self.io.clock.now_ms()) - b.first_fill_ms
            p.observed["naked_observed"] = naked
            self.io.metrics.naked.observe(naked / 1000)
        return c.data

    async def settled(self, p: Protection) -> None:
        b = machine_of(p, br.Brackets)
        if b.naked and "naked_since" not in p.observed:
            await self._on_naked(p, b)
        if b.protected_ms is not None and "naked_observed" not in p.observed:
            naked = b.naked_ms or 0
            p.observed["naked_observed"] = naked
            self.io.metrics.naked.observe(naked / 1000)
            await self.io.event(p, "POSITION_PROTECTED", {"naked_ms": naked})
            if naked >= self.unprotected_alert_ms and "unprotected_alerted" not in p.observed:
                # Nobody could say so while it lasted (the replica driving it died, and the
                # one that took over learnt of the fill and placed the stop in one step).
                await self.io.alert(
                    p,
                    "PROTECTION_LATE",
                    f"{b.position} {p.symbol} was without a stop for "
                    f"{naked / 1000:.1f} s from the venue's first fill "
                    f"(bound {self.unprotected_alert_ms} ms); the stop is in place now",
                )

    # ---- inputs ------------------------------------------------------------------------------
    def wants(self, p: Protection) -> tuple[bool, bool]:
        """(the symbol's open algo orders, its position) in this round's snapshot."""
        b = machine_of(p, br.Brackets)
        return any(o.working for o in b.orders), (
            b.state is br.BracketState.PROTECTING and b.entry_filled > 0 and p.entry_done
        )

    async def feed_entry(
        self, p: Protection, filled: Decimal, avg: Decimal | None, done: bool
    ) -> None:
        b, now = machine_of(p, br.Brackets), self.io.clock.now_ms()
        if filled > b.entry_filled and avg is not None:
            fees = (p.inst.taker_fee, p.inst.taker_fee)
            first = None
            if b.first_fill_ms is None:  # the venue's time of the first fill: late from then
                fills = await self.io.orders.fills_of_parent(p.coid)
                first = min((f.ts_fill for f in fills), default=None)
            cmds = b.on_entry_fill(
                filled, filled * avg, now, p.inst, fee_rates=fees, first_fill_ms=first
            )
            await self.io.run(p, self, cmds)
        if done and not p.entry_done:
            await self.io.run(p, self, b.on_entry_done(now))

    async def poll(self, p: Protection, snap: Snapshot | None) -> None:
        b = machine_of(p, br.Brackets)
        await self._alert_if_unprotected(p, b)
        if "naked_close" in p.observed:
            await self._naked_close(p, b)
            if b.state is not br.BracketState.PROTECTING:
                return
        for o in list(b.orders):
            if not o.working:
                continue
            if snap is not None and snap.conditionals_failed:
                break  # the venue did not answer this round's snapshot: next round
            cid = o.client_order_id
            algos = snap.conditionals if snap is not None else None
            algo = algos.get(cid) if algos is not None else None
            if algo is not None and o.status is not None:
                continue  # acknowledged and still open: nothing new to learn
            report = await (
                self.io.algo_report(p, cid, algo)
                if algo is not None
                else self.io.query_algo(p, cid)  # no snapshot, or it left the open list
            )
            if report is not None:
                await self.io.run(p, self, await self.report(p, cid, *report))
            elif o.status is None and not self.io.ops.landing_window_open(p.sent.get(cid)):
                # Provably never landed: the same id again (never a new one).
                await self.io.run(p, self, [b.place(o)])
        if b.state is br.BracketState.PROTECTING and b.entry_filled > 0:
            # A manual close (or a liquidation) shows only in the position: read from the
            # round's one positions call, and only when it was asked after the entry was done
            # (an earlier answer cannot show the entry's position).
            if snap is None or snap.position is None or not p.entry_done:
                return
            if p.entry_done_seq is None or p.entry_done_seq > snap.position_seq:
                return
            if snap.position == 0:
                await self.io.run(p, self, b.on_position(ZERO, self.io.clock.now_ms()))

    # ---- a naked position --------------------------------------------------------------------
    async def _alert_if_unprotected(self, p: Protection, b: br.Brackets) -> None:
        """A position that may be naked for longer than S4_UNPROTECTED_ALERT_MS raises the
        critical POSITION_UNPROTECTED once, while it lasts (the stop keeps being retried):
        either a known fill whose stop the venue has not acknowledged, or a MARKET entry the
        venue acknowledged but whose outcome it withholds (every query answered 429 until its
        weight minute ends): such an entry has almost surely filled, and it has no stop."""
        if (
            b.state not in (br.BracketState.WAITING_ENTRY, br.BracketState.PROTECTING)
            or b.protected_ms is not None
            or "unprotected_alerted" in p.observed
        ):
            return
        now = self.io.clock.now_ms()
        if b.first_fill_ms is not None:
            since = b.first_fill_ms
            what = (
                f"{b.position} {p.symbol} filled {(now - since) / 1000:.1f} s ago has no stop "
                f"acknowledged by the venue yet (still retrying {b.sl_price})"
            )
        else:
            sent = await self._market_entry_in_doubt(p, now)
            if sent is None:
                return
            since, cid = sent
            what = (
                f"its MARKET entry {cid} went to the venue {(now - since) / 1000:.1f} s ago and "
                "the venue has not told its outcome: if it filled, the position has no stop yet"
            )
        if now - since < self.unprotected_alert_ms:
            return
        p.observed["unprotected_alerted"] = now
        await self.io.persist(p)
        await self.io.alert(p, "POSITION_UNPROTECTED", f"{what}: act now if it persists")

    async def _market_entry_in_doubt(self, p: Protection, now: int) -> tuple[int, str] | None:
        """(send time, id) of the earliest MARKET entry child sent and not final; read from
        the store at most once a second per protection, and only once the bound could have
        passed since the intake."""
        if now - p.created_ts < self.unprotected_alert_ms or now - p.entry_doubt_checked_ms < 1_000:
            return None
        p.entry_doubt_checked_ms = now
        doubtful = [
            (c.ts_send, c.client_order_id)
            for c in await self.io.orders.children(p.coid)
            if c.type is OrderType.MARKET
            and not c.reduce_only
            and c.ts_send is not None
            and not c.status.is_terminal
        ]
        return min(doubtful) if doubtful else None

    async def _on_naked(self, p: Protection, b: br.Brackets) -> None:
        """The stop was rejected after the fill (e.g. the market moved through it): critical
        alert, then under S4_NAKED_POLICY=close the position is closed reduce-only at market
        (the id is durable before the send; a close is never sent twice)."""
        close = self.naked_policy == "close"
        qty = b.position
        p.observed["naked_since"] = self.io.clock.now_ms()
        await self.io.alert(
            p,
            "POSITION_NAKED",
            f"stop rejected after the fill: {qty} {p.symbol} has no stop; "
            + (
                "closing it reduce-only at market (S4_NAKED_POLICY=close)"
                if close
                else "left open (S4_NAKED_POLICY=alert): act now"
            ),
        )
        if not close:
            return
        p.observed["naked_close"] = b.next_child  # the close's child number, durable first
        cid = b.new_id()
        await self.io.persist(p)  # the id is durable before the send
        await self.io.child_record(p, Place(Leg.SL, cid, b.exit_side, OrderType.MARKET, qty))
        await self._naked_close(p, b)

    async def _naked_close(self, p: Protection, b: br.Brackets) -> None:
        """Drive the reduce-only close of a naked position to a final state; resumable (the
        protection loop and a restart's re-arm call it again). A close sent before is looked
        up by its id first and resent with the same id only once it provably never landed."""
        io, cid = self.io, f"{p.coid}-E{p.observed['naked_close']}"
        qty = b.position  # unchanged while naked: no protective order of ours works
        rec = await io.orders.get(cid)
        if rec is not None and rec.status.is_terminal:
            return
        order: ExchangeOrder | None = None
        if cid in p.sent:
            try:
                order = await io.ops.fetch(Market.FUT, p.symbol, cid)
            except OrderNotFound:
                if io.ops.landing_window_open(p.sent[cid]):
                    return
            except RetryableError:
                return
        if order is None:
            req = PlaceOrderRequest(
                market=Market.FUT,
                symbol=p.symbol,
                side=b.exit_side,
                type=OrderType.MARKET,
                qty=qty,
                client_order_id=cid,
                reduce_only=True,
            )
            p.sent[cid] = io.clock.now_ms()
            await io.persist(p)
            try:
                order = await io.ops.send(req, since_ms=io.clock.now_ms() - 1000)
            except Unresolved as exc:
                if "naked_close_unresolved" not in p.observed:
                    p.observed["naked_close_unresolved"] = io.clock.now_ms()
                    await io.alert(p, "NAKED_CLOSE_UNRESOLVED", f"{cid}: {exc}")
                return  # looked up again on the next poll
            except DefinitiveError as exc:
                await io.set_child(cid, S.REJECTED, str(exc))
                await io.alert(p, "NAKED_CLOSE_FAILED", f"{cid}: {exc}")
                return
        await io.record(p, cid, order, "naked close")
        if not order.status.is_terminal:
            return
        await io.event(
            p,
            "NAKED_CLOSE",
            {
                "client_order_id": cid,
                "qty": str(qty),
                "filled": str(order.filled_qty),
                "status": order.status.value,
            },
        )
        if order.filled_qty >= qty:
            await io.run(p, self, b.on_position(ZERO, io.clock.now_ms()))
        else:
            why = f"{cid}: closed {order.filled_qty} of {qty}; the rest is naked"
            await io.alert(p, "NAKED_CLOSE_PARTIAL", why)

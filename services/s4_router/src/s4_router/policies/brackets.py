"""Futures SL/TP brackets for one position: a pure state machine (no I/O, no clock reads).

* As soon as the entry has any fill: a reduce-only STOP_MARKET (`workingType` MARK_PRICE by
  default) sized to the cumulative filled quantity, then a TAKE_PROFIT_MARKET at the intent's
  explicit price or at the price that yields its `net_profit_usdt` target after fees.
* More entry fills ⇒ the brackets are resized (and the TP re-priced to the new average entry).
  A replace places the new protective order *before* cancelling the old one: the position is
  never without a venue-side stop once it has had one. Both old and new are reduce-only, so the
  overlap can never over-close the position.
* "Naked time" (position open, no acknowledged venue-side stop) is measured from the first entry
  fill to the first stop acknowledgement.
* When the position closes (stop, TP or a manual close reported by reconciliation) every
  remaining bracket order is cancelled: no stale reduce-only order is left for a later position.
"""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from typing import Any

from pydantic import Field

from s4_router.policies.protective import Alert, Cancel, Command, Event, Leg, MachineState, Place
from tradekit.enums import OrderStatus, OrderType, Side
from tradekit.instrument import Instrument
from tradekit.money import ZERO


class BracketState(StrEnum):
    WAITING_ENTRY = "WAITING_ENTRY"  # no fill yet: nothing to protect
    PROTECTING = "PROTECTING"  # position open, brackets being placed / resized
    CLOSING = "CLOSING"  # position closed, leftover bracket orders being cancelled
    CLOSED = "CLOSED"
    FAILED = "FAILED"


def solve_tp_price(
    inst: Instrument,
    *,
    side: Side,
    entry: Decimal,
    qty: Decimal,
    net_profit_usdt: Decimal,
    entry_fee_rate: Decimal,
    exit_fee_rate: Decimal,
) -> Decimal:
    """Trigger price whose exit leaves `net_profit_usdt` after both legs' fees, on tick and
    rounded away from the entry (so the target still holds after rounding).

    long:  qty·(tp − entry) − entry·qty·f_in − tp·qty·f_out ≥ V
    short: qty·(entry − tp) − entry·qty·f_in − tp·qty·f_out ≥ V
    """
    per_unit = net_profit_usdt / qty
    if side is Side.BUY:
        raw = (per_unit + entry * (1 + entry_fee_rate)) / (1 - exit_fee_rate)
    else:
        raw = (entry * (1 - entry_fee_rate) - per_unit) / (1 + exit_fee_rate)
    if raw <= 0:
        raise ValueError("profit target unreachable for a short at this entry")
    return inst.exit_price(side, raw)


class ProtectiveOrder(MachineState):
    kind: Leg
    client_order_id: str
    qty: Decimal
    stop_price: Decimal
    status: OrderStatus | None = None  # None: sent, not yet acknowledged
    filled: Decimal = ZERO

    @property
    def working(self) -> bool:
        return self.status is None or not self.status.is_terminal


class Brackets(MachineState):
    parent_client_order_id: str
    position_side: Side  # entry side
    entry_target_qty: Decimal
    sl_price: Decimal | None
    tp_price: Decimal | None  # explicit trigger price, or None with a target below
    tp_net_profit_usdt: Decimal | None
    working_type: str
    next_child: int
    entry_filled: Decimal = ZERO
    entry_notional: Decimal = ZERO
    exited: Decimal = ZERO  # closed by our protective orders
    orders: list[ProtectiveOrder] = Field(default_factory=list)
    state: BracketState = BracketState.WAITING_ENTRY
    first_fill_ms: int | None = None
    protected_ms: int | None = None
    closed_ms: int | None = None

    @property
    def final(self) -> bool:
        return self.state in (BracketState.CLOSED, BracketState.FAILED)

    @property
    def exit_side(self) -> Side:
        return self.position_side.opposite

    @property
    def position(self) -> Decimal:
        return self.entry_filled - self.exited

    @property
    def avg_entry(self) -> Decimal | None:
        return self.entry_notional / self.entry_filled if self.entry_filled > 0 else None

    @property
    def naked_ms(self) -> int | None:
        if self.first_fill_ms is None or self.protected_ms is None:
            return None
        return self.protected_ms - self.first_fill_ms

    @property
    def naked(self) -> bool:
        """An open position whose stop the venue rejected and none other works."""
        return (
            self.state is BracketState.PROTECTING
            and self.position > 0
            and not self.working(Leg.SL)
            and any(o.kind is Leg.SL and o.status is OrderStatus.REJECTED for o in self.orders)
        )

    def working(self, kind: Leg) -> list[ProtectiveOrder]:
        return [o for o in self.orders if o.kind is kind and o.working]

    # ---- inputs ------------------------------------------------------------------------------
    def on_entry_fill(
        self,
        cum_filled: Decimal,
        cum_notional: Decimal,
        now_ms: int,
        inst: Instrument,
        *,
        fee_rates: tuple[Decimal, Decimal],
        first_fill_ms: int | None = None,
    ) -> list[Command]:
        """Cumulative entry fill (idempotent): place or resize the brackets to match it.
        `first_fill_ms`: when the venue executed the first fill, if known (S4 may learn of it
        much later, e.g. under a 429 storm); the naked time runs from it."""
        if cum_filled <= self.entry_filled or self.final:
            return []
        self.entry_filled, self.entry_notional = cum_filled, cum_notional
        if self.first_fill_ms is None:
            self.first_fill_ms = min(now_ms, first_fill_ms or now_ms)
        if self.state is BracketState.WAITING_ENTRY:
            self.state = BracketState.PROTECTING
        return self._converge(inst, fee_rates)

    def on_rejected(self, client_order_id: str, reason: str, now_ms: int) -> list[Command]:
        return self.on_report(client_order_id, OrderStatus.REJECTED, ZERO, now_ms)

    def on_report(
        self, client_order_id: str, status: OrderStatus, cum_filled: Decimal, now_ms: int
    ) -> list[Command]:
        order = next((o for o in self.orders if o.client_order_id == client_order_id), None)
        if order is None:
            return []
        new = cum_filled - order.filled
        if new > 0:
            order.filled = cum_filled
            self.exited += new
        first_ack = order.status is None and status is not OrderStatus.REJECTED
        if order.status is None or not order.status.is_terminal:
            order.status = status
        if order.kind is Leg.SL and first_ack and self.protected_ms is None:
            self.protected_ms = now_ms
        if self.position < 0:
            self.state = BracketState.FAILED
            return [Alert("BRACKET_OVERCLOSE", f"{client_order_id} closed past flat")]
        if self.state is BracketState.PROTECTING and self.position == 0 and self.exited > 0:
            return self._close(now_ms)
        if self.state is BracketState.CLOSING:
            return self._maybe_closed(now_ms)
        cmds: list[Command] = []
        if first_ack and self.state is BracketState.PROTECTING:
            # The replacement is live: now the superseded order of that kind can go.
            cmds += [
                Cancel(o.kind, o.client_order_id)
                for o in self.working(order.kind)
                if o is not order and o.status is not None
            ]
        if status is OrderStatus.REJECTED and self.state is BracketState.PROTECTING:
            cmds.append(
                Alert(
                    "BRACKET_REJECTED",
                    f"{client_order_id} ({order.kind}) rejected; position {self.position} "
                    + ("is naked" if not self.working(Leg.SL) else "keeps its previous stop"),
                )
            )
        return cmds

    def on_position(self, qty: Decimal, now_ms: int) -> list[Command]:
        """Absolute position size from the venue (reconciliation / a manual close)."""
        if qty == 0 and self.state is BracketState.PROTECTING:
            self.exited = self.entry_filled
            return self._close(now_ms)
        return []

    def on_entry_done(self, now_ms: int) -> list[Command]:
        """The entry ended (filled, cancelled or expired); with nothing filled, nothing to do."""
        if self.entry_filled == 0 and self.state is BracketState.WAITING_ENTRY:
            return self._maybe_closed(now_ms)  # nothing was placed: closed at once
        return []

    # ---- internals ---------------------------------------------------------------------------
    def new_id(self) -> str:
        cid = f"{self.parent_client_order_id}-E{self.next_child}"
        self.next_child += 1
        return cid

    def _converge(self, inst: Instrument, fee_rates: tuple[Decimal, Decimal]) -> list[Command]:
        cmds: list[Command] = []
        qty = self.position
        targets: list[tuple[Leg, Decimal | None]] = [
            (Leg.SL, self.sl_price),
            (Leg.TP, self._tp_trigger(inst, fee_rates)),
        ]
        for kind, price in targets:  # stop first: protection before profit
            if price is None:
                continue
            live = self.working(kind)
            cur = live[-1] if live else None
            if cur is not None and cur.qty == qty and cur.stop_price == price:
                continue
            order = ProtectiveOrder(
                kind=kind, client_order_id=self.new_id(), qty=qty, stop_price=price
            )
            self.orders.append(order)
            cmds.append(self.place(order))
        return cmds

    def place(self, order: ProtectiveOrder) -> Place:
        """The conditional order to send for `order` (the same id on every resend)."""
        return Place(
            leg=order.kind,
            client_order_id=order.client_order_id,
            side=self.exit_side,
            type=OrderType.STOP_MARKET if order.kind is Leg.SL else OrderType.TAKE_PROFIT_MARKET,
            qty=order.qty,
            stop_price=order.stop_price,
            working_type=self.working_type,
            reduce_only=True,
        )

    def _tp_trigger(self, inst: Instrument, fee_rates: tuple[Decimal, Decimal]) -> Decimal | None:
        if self.tp_price is not None:
            return self.tp_price
        if self.tp_net_profit_usdt is None or self.avg_entry is None:
            return None
        return solve_tp_price(
            inst,
            side=self.position_side,
            entry=self.avg_entry,
            qty=self.position,
            net_profit_usdt=self.tp_net_profit_usdt,
            entry_fee_rate=fee_rates[0],
            exit_fee_rate=fee_rates[1],
        )

    def _close(self, now_ms: int) -> list[Command]:
        self.state = BracketState.CLOSING
        cmds: list[Command] = [Cancel(o.kind, o.client_order_id) for o in self.orders if o.working]
        return cmds + self._maybe_closed(now_ms)

    def _maybe_closed(self, now_ms: int) -> list[Command]:
        if any(o.working for o in self.orders):
            return []
        self.state = BracketState.CLOSED
        self.closed_ms = now_ms
        return [Event("BRACKETS_CLOSED", self.summary())]

    def summary(self) -> dict[str, Any]:
        return {
            "parent_client_order_id": self.parent_client_order_id,
            "state": self.state.value,
            "entry_filled": str(self.entry_filled),
            "avg_entry": str(self.avg_entry) if self.avg_entry is not None else None,
            "exited": str(self.exited),
            "naked_ms": self.naked_ms,
            "orders": [o.model_dump(mode="json", exclude={"filled"}) for o in self.orders],
        }

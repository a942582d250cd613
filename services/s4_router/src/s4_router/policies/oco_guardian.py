"""Client-side OCO guardian: two exit legs of one SPOT position, exactly one of which may execute.

Used when the venue has no native OCO lists, or when `S4_OCO_GUARDIAN=true` forces it. A pure
state machine (no I/O, no clock reads): the router feeds it events (venue execution reports,
poll results, prices, timer ticks) and carries out the commands it returns. Its whole state is a
pydantic model persisted after every step (`model_dump(mode="json")`, loaded with
`model_validate`), so a restarted S4 re-arms it from the store and the venue.

Legs (for a long position the exits SELL; a short mirrors every comparison):

* TP: a LIMIT (post-only) at `tp_price`;
* SL: a STOP_LOSS_LIMIT triggered at `sl_price` (limit `sl_limit_price`).

On a spot venue each resting SELL leg locks the whole position's base asset, so both legs can
rest at once only when the balance covers twice the quantity. Otherwise the *priority* leg rests
at the venue (default SL: the protection survives an S4 outage) and the other is triggered
locally by price: when it triggers, the resting leg is cancelled, the cancel acknowledgement is
awaited (funds are locked until then) and the triggered leg is sent as a MARKET order for what
remains.

States::

    ARMING ──all resting legs acknowledged──► ARMED
    ARMED ──one leg partially filled──► PARTIAL (resting sibling resized to the remainder:
                                                 cancel → ack → re-place; local sibling resized
                                                 in memory)
    ARMED/PARTIAL ──one leg filled──► RESOLVING (cancel of the resting sibling sent)
    ARMED/PARTIAL ──local leg's price reached──► TRIGGERED (cancel of the resting leg sent;
                                                 on ack the triggered leg goes out as MARKET)
    RESOLVING ──sibling cancel acknowledged──► RESOLVED
    TRIGGERED ──triggered leg filled──► RESOLVED
    any ──both legs executed beyond the position / leg rejected twice──► FAILED (alert)

Fills are counted once per leg by cumulative quantity (reports may be delayed, duplicated or
arrive out of order); the sum of both legs' fills can never exceed the position, and a report
that would make it do so puts the guardian in FAILED with an OVERFILL alert.
"""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from typing import Any

from pydantic import Field

from s4_router.policies.protective import Alert, Cancel, Event, MachineState, Place, Query
from s4_router.policies.protective import Command as Command
from s4_router.policies.protective import Leg as Leg  # re-exported: the guardian's legs
from tradekit.enums import OrderStatus, OrderType, Side
from tradekit.money import ZERO


class GuardianState(StrEnum):
    ARMING = "ARMING"
    ARMED = "ARMED"
    PARTIAL = "PARTIAL"
    RESOLVING = "RESOLVING"
    TRIGGERED = "TRIGGERED"
    RESOLVED = "RESOLVED"
    FAILED = "FAILED"

    @property
    def is_final(self) -> bool:
        return self in (GuardianState.RESOLVED, GuardianState.FAILED)


class LegMode(StrEnum):
    RESTING = "RESTING"  # an order at the venue
    LOCAL = "LOCAL"  # watched by the guardian, sent when the price reaches it


# ---- per-leg bookkeeping ---------------------------------------------------------------------
class LegState(MachineState):
    leg: Leg
    mode: LegMode
    qty: Decimal  # what the current order (or the local watch) is for
    client_order_id: str | None = None  # current venue order, if any
    status: OrderStatus | None = None  # of the current order
    filled: Decimal = ZERO  # cumulative over every order this leg has had
    # Every order this leg has had: cid -> cumulative fill reported (late reports still count).
    orders: dict[str, Decimal] = Field(default_factory=dict)
    ended: list[str] = Field(default_factory=list)  # orders whose terminal report was handled
    cancel_sent_ms: int | None = None
    pending_resize: bool = False  # re-place after the cancel acknowledgement
    rejects: int = 0

    @property
    def live(self) -> bool:
        # An order sent but not yet acknowledged (status None) counts: it may rest already.
        return (
            self.mode is LegMode.RESTING
            and self.client_order_id is not None
            and (self.status is None or not self.status.is_terminal)
        )


class OcoGuardian(MachineState):
    """One guardian per SPOT position. Construct with :meth:`new`, then call :meth:`arm`."""

    parent_client_order_id: str
    position_side: Side  # side of the entry: BUY ⇒ long ⇒ exits SELL
    qty: Decimal
    tp_price: Decimal
    sl_price: Decimal
    sl_limit_price: Decimal
    tp: LegState
    sl: LegState
    next_child: int  # `{parent}-E{n}`: deterministic, persisted, never reused
    state: GuardianState = GuardianState.ARMING
    winner: Leg | None = None
    triggered: Leg | None = None
    timings: dict[str, int] = Field(default_factory=dict)
    cancel_timeout_ms: int = 2_000

    # ---- construction ------------------------------------------------------------------------
    @classmethod
    def new(
        cls,
        *,
        parent_client_order_id: str,
        position_side: Side,
        qty: Decimal,
        tp_price: Decimal,
        sl_price: Decimal,
        sl_limit_price: Decimal | None = None,
        both_rest: bool,
        priority: Leg = Leg.SL,
        first_child: int = 2,
    ) -> OcoGuardian:
        if qty <= 0:
            raise ValueError("guardian needs a positive position quantity")
        long = position_side is Side.BUY
        if (long and not tp_price > sl_price) or (not long and not tp_price < sl_price):
            raise ValueError("take profit must lie beyond the stop on the profit side")

        def mode(leg: Leg) -> LegMode:
            return LegMode.RESTING if both_rest or leg is priority else LegMode.LOCAL

        return cls(
            parent_client_order_id=parent_client_order_id,
            position_side=position_side,
            qty=qty,
            tp_price=tp_price,
            sl_price=sl_price,
            sl_limit_price=sl_limit_price or sl_price,
            tp=LegState(leg=Leg.TP, mode=mode(Leg.TP), qty=qty),
            sl=LegState(leg=Leg.SL, mode=mode(Leg.SL), qty=qty),
            next_child=first_child,
        )

    @property
    def final(self) -> bool:
        return self.state.is_final

    @property
    def exit_side(self) -> Side:
        return self.position_side.opposite

    def leg(self, leg: Leg) -> LegState:
        return self.tp if leg is Leg.TP else self.sl

    @property
    def filled(self) -> Decimal:
        return self.tp.filled + self.sl.filled

    @property
    def remaining(self) -> Decimal:
        return self.qty - self.filled

    def leg_of(self, client_order_id: str) -> Leg | None:
        return next((ls.leg for ls in (self.tp, self.sl) if client_order_id in ls.orders), None)

    # ---- inputs ------------------------------------------------------------------------------
    def arm(self, now_ms: int) -> list[Command]:
        """Place the resting leg(s)."""
        self.timings.setdefault("armed_ms", now_ms)
        cmds: list[Command] = []
        for ls in (self.sl, self.tp):  # the stop first: protection before profit
            if ls.mode is LegMode.RESTING and ls.client_order_id is None:
                cmds.append(self._place(ls, ls.qty, market=False))
        if not cmds:
            self.state = GuardianState.ARMED
        return cmds

    def on_report(
        self, client_order_id: str, status: OrderStatus, order_filled: Decimal, now_ms: int
    ) -> list[Command]:
        """A venue execution report or poll answer for one leg order (cumulative fill).

        Idempotent: duplicates, delayed and out-of-order reports add no quantity, and a
        terminal report is acted on once per order."""
        leg = self.leg_of(client_order_id)
        if leg is None or self.state is GuardianState.FAILED:
            return []
        ls = self.leg(leg)
        new_fill = order_filled - ls.orders[client_order_id]
        if new_fill > 0:
            ls.orders[client_order_id] = order_filled
            ls.filled += new_fill
            self.timings.setdefault("first_fill_ms", now_ms)
            self.timings[f"{leg.value.lower()}_fill_ms"] = now_ms
            if self.filled > self.qty:
                return self._fail(
                    "OCO_OVERFILL",
                    f"{self.parent_client_order_id}: legs executed {self.filled} > position "
                    f"{self.qty}",
                )
        current = client_order_id == ls.client_order_id
        first_end = status.is_terminal and client_order_id not in ls.ended
        if status.is_terminal and first_end:
            ls.ended.append(client_order_id)
        if current and (first_end or not status.is_terminal):
            ls.status = status
            if status.is_terminal:
                ls.cancel_sent_ms = None
        if self.state is GuardianState.RESOLVED:
            return []
        if self.remaining == 0:
            return self._close_out(leg, now_ms)
        if not current:
            return []  # an older order of this leg: its fills are counted, nothing else
        if status is OrderStatus.ACCEPTED and self.state is GuardianState.ARMING:
            if not any(x.mode is LegMode.RESTING and x.status is None for x in (self.tp, self.sl)):
                self.state = GuardianState.ARMED
            return []
        if new_fill > 0 and not status.is_terminal:
            return self._resize_sibling(leg, now_ms)
        if first_end:
            return self._leg_ended(ls, now_ms)
        return []

    def on_price(self, bid: Decimal, ask: Decimal, now_ms: int) -> list[Command]:
        """Trigger a LOCAL leg when the price reaches it (exit-side touch: bid for a long)."""
        if self.state not in (GuardianState.ARMING, GuardianState.ARMED, GuardianState.PARTIAL):
            return []
        touch = bid if self.exit_side is Side.SELL else ask
        long = self.position_side is Side.BUY
        for ls in (self.sl, self.tp):  # stop has precedence if both could fire
            if ls.mode is not LegMode.LOCAL:
                continue
            level = self.sl_price if ls.leg is Leg.SL else self.tp_price
            # A long's stop and a short's take profit lie below the market, the others above.
            if touch <= level if (ls.leg is Leg.SL) == long else touch >= level:
                return self._trigger(ls.leg, now_ms)
        return []

    def on_timer(self, now_ms: int) -> list[Command]:
        """Polling fallback: a cancel not acknowledged in time is queried at the venue."""
        cmds: list[Command] = []
        for ls in (self.tp, self.sl):
            if (
                ls.cancel_sent_ms is not None
                and ls.client_order_id is not None
                and now_ms - ls.cancel_sent_ms >= self.cancel_timeout_ms
            ):
                ls.cancel_sent_ms = now_ms
                cmds.append(Query(ls.leg, ls.client_order_id))
        return cmds

    def on_rejected(self, client_order_id: str, reason: str, now_ms: int) -> list[Command]:
        """The venue refused a leg (e.g. a stop that would trigger immediately)."""
        leg = self.leg_of(client_order_id)
        if leg is None:
            return []
        ls = self.leg(leg)
        ls.status = OrderStatus.REJECTED
        ls.rejects += 1
        if ls.rejects >= 2:
            return self._fail("OCO_LEG_REJECTED", f"{client_order_id}: {reason}")
        if leg is Leg.SL:
            # A stop refused because the price is already through it: exit now.
            return self._trigger(Leg.SL, now_ms)
        # A post-only TP refused because it would cross: the profit is there, take it locally.
        ls.mode = LegMode.LOCAL
        ls.client_order_id = None
        return []

    # ---- internals ---------------------------------------------------------------------------
    def _place(self, ls: LegState, qty: Decimal, *, market: bool) -> Place:
        ls.client_order_id = f"{self.parent_client_order_id}-E{self.next_child}"
        self.next_child += 1
        ls.orders[ls.client_order_id] = ZERO
        ls.status = None
        ls.qty = qty
        ls.cancel_sent_ms = None
        ls.pending_resize = False
        if market:
            ls.mode = LegMode.RESTING
            type_, price, stop = OrderType.MARKET, None, None
        elif ls.leg is Leg.TP:
            type_, price, stop = OrderType.LIMIT_MAKER, self.tp_price, None
        else:
            type_, price, stop = OrderType.STOP_LOSS_LIMIT, self.sl_limit_price, self.sl_price
        return Place(ls.leg, ls.client_order_id, self.exit_side, type_, qty, price, stop)

    def _cancel(self, ls: LegState, now_ms: int) -> Cancel:
        assert ls.client_order_id is not None
        ls.cancel_sent_ms = now_ms
        self.timings.setdefault("cancel_sent_ms", now_ms)
        return Cancel(ls.leg, ls.client_order_id)

    def _resize_sibling(self, leg: Leg, now_ms: int) -> list[Command]:
        sib = self.leg(leg.sibling)
        self.state = GuardianState.PARTIAL
        if sib.mode is LegMode.LOCAL:
            sib.qty = self.remaining  # nothing at the venue to change
            return []
        if sib.live and sib.cancel_sent_ms is None:
            sib.pending_resize = True
            return [self._cancel(sib, now_ms)]
        return []

    def _close_out(self, leg: Leg, now_ms: int) -> list[Command]:
        """The position is fully exited through `leg`; make sure nothing else can execute."""
        self.winner = self.winner or leg
        sib = self.leg(leg.sibling)
        sib.pending_resize = False
        if sib.live:
            self.state = GuardianState.RESOLVING
            return [self._cancel(sib, now_ms)] if sib.cancel_sent_ms is None else []
        return self._resolve(now_ms)

    def _leg_ended(self, ls: LegState, now_ms: int) -> list[Command]:
        """A leg order reached CANCELED/EXPIRED/REJECTED with position left."""
        if self.state is GuardianState.RESOLVING:
            return self._resolve(now_ms) if not self.leg(ls.leg.sibling).live else []
        if self.state is GuardianState.TRIGGERED:
            if ls.leg is not self.triggered:  # the resting leg is gone: send the exit
                trig = self.leg(self.triggered or ls.leg.sibling)
                return [self._place(trig, self.remaining, market=True)]
            # The triggered market order ended short (thin book): send the rest again.
            ls.rejects += 1
            if ls.rejects >= 3:
                return self._fail("OCO_EXIT_INCOMPLETE", f"{ls.client_order_id} ended short")
            return [self._place(ls, self.remaining, market=True)]
        if ls.pending_resize:
            return [self._place(ls, self.remaining, market=False)]
        # Cancelled or expired without us asking: the side is unprotected. Re-arm it once.
        ls.rejects += 1
        if ls.rejects >= 2:
            return self._fail("OCO_LEG_LOST", f"{ls.client_order_id} ended {ls.status}")
        return [
            Alert("OCO_LEG_REARMED", f"{ls.client_order_id} ended {ls.status}; re-placed"),
            self._place(ls, self.remaining, market=False),
        ]

    def _trigger(self, leg: Leg, now_ms: int) -> list[Command]:
        self.triggered = leg
        self.timings.setdefault("triggered_ms", now_ms)
        self.state = GuardianState.TRIGGERED
        resting = self.leg(leg.sibling)
        if resting.live:  # its funds are locked until the cancel is acknowledged
            return [self._cancel(resting, now_ms)] if resting.cancel_sent_ms is None else []
        return [self._place(self.leg(leg), self.remaining, market=True)]

    def _resolve(self, now_ms: int) -> list[Command]:
        self.state = GuardianState.RESOLVED
        self.timings["resolved_ms"] = now_ms
        winner = self.winner or (Leg.TP if self.tp.filled >= self.sl.filled else Leg.SL)
        self.winner = winner
        # Written to `strategy_events`, published on `router:events`.
        summary = {"winner": winner.value, **self.summary(), "mode": "guardian"}
        return [Event("OCO_RESOLVE", summary)]

    def _fail(self, kind: str, message: str) -> list[Command]:
        self.state = GuardianState.FAILED
        return [Alert(kind, message)]

    def summary(self) -> dict[str, Any]:
        return {
            "parent_client_order_id": self.parent_client_order_id,
            "state": self.state.value,
            "winner": self.winner.value if self.winner else None,
            "qty": str(self.qty),
            "legs": {
                ls.leg.value: ls.model_dump(
                    mode="json", include={"mode", "client_order_id", "status", "filled"}
                )
                for ls in (self.tp, self.sl)
            },
            "timings": dict(self.timings),
        }

"""SPOT OCO at the venue (`S4_OCO_GUARDIAN=false`): one native order list per position. A pure
state machine (no I/O, no clock reads) over a pydantic state persisted after every step.

The list is `{parent}-E{n}`, its legs E{n+1} (take profit, LIMIT_MAKER) and E{n+2} (stop,
STOP_LOSS_LIMIT with a limit price, else STOP_LOSS). The venue cancels the other leg when one
fills; this machine only follows the list's reports to its end::

    PENDING ──list acknowledged──► EXEC_STARTED ──venue ends the list──► ALL_DONE (OCO_RESOLVE)

A list done with neither leg filled (cancelled or expired outside S4) leaves the position
unprotected: a critical `OCO_LIST_DONE_UNFILLED` alert before the event. A send the venue never
answered stays PENDING and is looked up by its list client id (resent with the same ids only once
it provably never landed: the service layer's rule).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from s4_router.policies.protective import Alert, Command, Event, Leg, MachineState, PlaceList
from tradekit.enums import OrderStatus, Side
from tradekit.ids import parent_of
from tradekit.money import ZERO


class ListStatus(StrEnum):
    PENDING = "PENDING"  # sent (or about to be), not acknowledged by the venue
    EXEC_STARTED = "EXEC_STARTED"  # resting at the venue
    ALL_DONE = "ALL_DONE"  # the venue ended the list


class NativeLeg(MachineState):
    client_order_id: str
    status: OrderStatus | None = None  # None: not reported yet
    filled: Decimal = ZERO  # cumulative, as the venue reports it


class LegReport(BaseModel):
    """One leg order as the venue's list report shows it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    client_order_id: str
    status: OrderStatus
    filled: Decimal


class NativeOco(MachineState):
    list_client_order_id: str
    order_list_id: str | None = None  # the venue's id, once acknowledged
    status: ListStatus = ListStatus.PENDING
    side: Side  # of the exits
    qty: Decimal
    filled: Decimal  # the entry's fill the list protects
    tp_price: Decimal
    sl_price: Decimal
    sl_limit_price: Decimal | None = None
    legs: dict[Leg, NativeLeg]
    winner: Leg | None = None
    timings: dict[str, int]

    @classmethod
    def new(
        cls,
        *,
        parent_client_order_id: str,
        position_side: Side,
        qty: Decimal,
        filled: Decimal,
        tp_price: Decimal,
        sl_price: Decimal,
        sl_limit_price: Decimal | None,
        first_child: int,
        now_ms: int,
    ) -> NativeOco:
        n, p = first_child, parent_client_order_id
        return cls(
            list_client_order_id=f"{p}-E{n}",
            side=position_side.opposite,
            qty=qty,
            filled=filled,
            tp_price=tp_price,
            sl_price=sl_price,
            sl_limit_price=sl_limit_price,
            legs={
                Leg.TP: NativeLeg(client_order_id=f"{p}-E{n + 1}"),
                Leg.SL: NativeLeg(client_order_id=f"{p}-E{n + 2}"),
            },
            timings={"armed": now_ms},
        )

    @property
    def parent(self) -> str:
        ids = parent_of(self.list_client_order_id)
        return ids[0] if ids is not None else self.list_client_order_id

    @property
    def final(self) -> bool:
        return self.status is ListStatus.ALL_DONE

    @property
    def acked(self) -> bool:
        return self.order_list_id is not None

    def place(self) -> PlaceList:
        """The list to send (the same ids on every resend)."""
        return PlaceList(
            list_client_order_id=self.list_client_order_id,
            side=self.side,
            qty=self.qty,
            tp_price=self.tp_price,
            sl_price=self.sl_price,
            sl_limit_price=self.sl_limit_price,
            tp_client_order_id=self.legs[Leg.TP].client_order_id,
            sl_client_order_id=self.legs[Leg.SL].client_order_id,
        )

    def leg_of(self, client_order_id: str) -> Leg | None:
        return next((k for k, v in self.legs.items() if v.client_order_id == client_order_id), None)

    def unchanged(self, open_orders: Mapping[str, tuple[OrderStatus, Decimal]]) -> bool:
        """Both legs still open at the venue as last reported: the list has nothing new."""
        return all(
            open_orders.get(leg.client_order_id) == (leg.status, leg.filled)
            for leg in self.legs.values()
        )

    def on_report(
        self, client_order_id: str, status: OrderStatus, filled: Decimal, now_ms: int
    ) -> list[Command]:
        return []  # the list reports as a whole (`on_list`)

    def on_rejected(self, client_order_id: str, reason: str, now_ms: int) -> list[Command]:
        raise NotImplementedError  # a refused list falls back to the guardian (I/O: the driver)

    def on_list(
        self, order_list_id: str, done: bool, orders: Sequence[LegReport], now_ms: int
    ) -> list[Command]:
        """The venue's report of the whole list (idempotent: fills are cumulative)."""
        if self.order_list_id is None:
            self.order_list_id = order_list_id
            self.timings.setdefault("acked", now_ms)
        self.status = ListStatus.ALL_DONE if done else ListStatus.EXEC_STARTED
        for o in orders:
            name = self.leg_of(o.client_order_id)
            if name is None:
                continue
            if o.filled > 0:
                self.timings.setdefault(f"{name.value.lower()}_filled", now_ms)
            elif o.status is OrderStatus.CANCELED:
                self.timings.setdefault(f"{name.value.lower()}_cancelled", now_ms)
            self.legs[name] = NativeLeg(
                client_order_id=o.client_order_id, status=o.status, filled=o.filled
            )
        if not done:
            return []
        self.timings.setdefault("resolved", now_ms)
        tp, sl = self.legs[Leg.TP].filled, self.legs[Leg.SL].filled
        self.winner = Leg.TP if tp > 0 and tp >= sl else Leg.SL if sl > 0 else None
        cmds: list[Command] = []
        if self.winner is None:
            # Done at the venue with neither leg filled: the position is no longer protected.
            why = f"OCO list {self.list_client_order_id} ended with no leg filled: unprotected"
            cmds.append(Alert("OCO_LIST_DONE_UNFILLED", why))
        legs = {
            k.value: {"mode": "VENUE", **v.model_dump(mode="json")} for k, v in self.legs.items()
        }
        cmds.append(
            Event(
                "OCO_RESOLVE",
                {
                    "winner": self.winner.value if self.winner else None,
                    "mode": "native",
                    "state": "RESOLVED",
                    "parent_client_order_id": self.parent,
                    "qty": str(self.qty),
                    "order_list_id": self.order_list_id,
                    "list_client_order_id": self.list_client_order_id,
                    "legs": legs,
                    "timings": dict(self.timings),
                },
            )
        )
        return cmds

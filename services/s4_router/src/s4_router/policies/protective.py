"""One command set for the protective machines (FUT SL/TP `brackets`, the SPOT `oco_guardian`,
the SPOT `oco_native` list): what each asks the service layer to do. Pure: no I/O. The machines
are fed venue reports (cumulative fills: a duplicated or reordered report counts nothing twice)
and return these commands; one interpreter (`service_layer.protection_interp`) carries them out.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict

from tradekit.enums import OrderType, Side


class Leg(StrEnum):
    """The two exits of a protected position."""

    TP = "TP"
    SL = "SL"

    @property
    def sibling(self) -> Leg:
        return Leg.SL if self is Leg.TP else Leg.TP


class MachineState(BaseModel):
    """A machine's state, persisted after every step as `model_dump(mode="json")` and loaded with
    `model_validate`: mutable (the machine updates itself), validated when loaded."""

    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True, slots=True)
class Place:
    """Send one protective order; `working_type` set: a FUT conditional (algo) order."""

    leg: Leg
    client_order_id: str
    side: Side
    type: OrderType
    qty: Decimal
    price: Decimal | None = None
    stop_price: Decimal | None = None
    working_type: str | None = None
    reduce_only: bool = False


@dataclass(frozen=True, slots=True)
class PlaceList:
    """Send one venue OCO list: a LIMIT_MAKER take profit and a stop (STOP_LOSS_LIMIT with a
    `stop_limit_price`, else STOP_LOSS), each leg under its own client id."""

    list_client_order_id: str
    side: Side
    qty: Decimal
    tp_price: Decimal
    sl_price: Decimal
    sl_limit_price: Decimal | None
    tp_client_order_id: str
    sl_client_order_id: str


@dataclass(frozen=True, slots=True)
class Cancel:
    leg: Leg
    client_order_id: str


@dataclass(frozen=True, slots=True)
class Query:
    """Polling fallback: ask the venue for this order and feed the answer back as a report."""

    leg: Leg
    client_order_id: str


@dataclass(frozen=True, slots=True)
class Alert:
    """A critical alert on the `alerts` stream."""

    kind: str
    message: str


@dataclass(frozen=True, slots=True)
class Event:
    """A `strategy_events` record `{name.lower()}:{parent}` and a `router:events` entry."""

    name: str
    data: dict[str, Any]


Command = Place | PlaceList | Cancel | Query | Alert | Event

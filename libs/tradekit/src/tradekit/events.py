"""Events published on Redis streams: `orders:executed`, `router:events`, `alerts`."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal

from pydantic import Field

from tradekit.base import Record
from tradekit.enums import Market, OrderStatus, Side

Severity = Literal["info", "warning", "critical"]


class OrderExecuted(Record):
    """Published on `orders:executed` after the order and its fills are persisted."""

    event: Literal["ORDER_EXECUTED"] = "ORDER_EXECUTED"
    client_order_id: str
    intent_id: str
    market: Market
    symbol: str
    side: Side
    status: OrderStatus
    qty: Decimal
    filled_qty: Decimal
    avg_price: Decimal | None
    fee: Decimal
    fills: int
    ts: int
    policy: str | None = None
    message: str | None = None


class RouterEvent(Record):
    """One step of an execution policy, on `router:events`."""

    event: str
    client_order_id: str | None = None
    symbol: str | None = None
    ts: int
    data: dict[str, Any] = Field(default_factory=dict)


class Alert(Record):
    """Something an operator must look at, on `alerts`."""

    source: Literal["s3-strategy", "s4-router", "venue"]
    kind: str
    severity: Severity = "warning"
    message: str
    ts: int
    data: dict[str, Any] = Field(default_factory=dict)

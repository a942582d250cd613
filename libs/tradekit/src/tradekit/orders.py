"""Order and fill records as persisted in `orders` / `fills` and reported by S4."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tradekit.enums import Liquidity, Market, OrderStatus, OrderType, RequestResult, Side


class StateChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: OrderStatus
    ts: int
    reason: str | None = None


class OrderRecord(BaseModel):
    """An order S4 owns: the parent (the intent's client_order_id) or a child `-E{n}`."""

    model_config = ConfigDict(extra="forbid")

    client_order_id: str
    parent_client_order_id: str | None = None
    intent_id: str
    venue: str
    market: Market
    symbol: str
    side: Side
    type: OrderType
    qty: Decimal
    price: Decimal | None = None
    stop_price: Decimal | None = None
    reduce_only: bool = False
    status: OrderStatus = OrderStatus.NEW
    venue_order_id: str | None = None
    filled_qty: Decimal = Decimal(0)
    avg_price: Decimal | None = None
    fee: Decimal = Decimal(0)
    history: list[StateChange] = Field(default_factory=list)
    intent: dict[str, Any] | None = None
    message: str | None = None
    created_ts: int
    updated_ts: int


class FillRecord(BaseModel):
    """One execution. Unique by (venue, order_id, trade_id)."""

    model_config = ConfigDict(extra="forbid")

    venue: str
    order_id: str  # the venue's order id
    trade_id: str
    client_order_id: str
    parent_client_order_id: str | None = None
    market: Market
    symbol: str
    side: Side
    price: Decimal
    qty: Decimal
    fee: Decimal
    fee_asset: str
    liquidity: Liquidity
    mid_at_send: Decimal | None = None
    book_top3: dict[str, list[tuple[Decimal, Decimal]]] | None = None
    slippage_bps: Decimal | None = None
    ts_intent: int | None = None
    ts_send: int | None = None
    ts_ack: int | None = None
    ts_fill: int


class OrderResponse(BaseModel):
    """S4's answer to POST /orders and /cancel (spec §D1)."""

    model_config = ConfigDict(extra="forbid")

    result: RequestResult
    order_ids: list[str] = Field(default_factory=list)
    message: str | None = None
    client_order_id: str | None = None
    status: OrderStatus | None = None
    duplicate: bool = False

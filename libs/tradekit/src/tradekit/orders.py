"""Order and fill records as persisted in `orders` / `fills` and reported by S4."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from pydantic import Field

from tradekit.base import Record
from tradekit.enums import (
    Contingency,
    Liquidity,
    Market,
    OrderRole,
    OrderStatus,
    OrderType,
    RequestResult,
    Side,
    TimeInForce,
)


class Adjustment(Record):
    """A requested value S4 changed under its settings (reported, never silent)."""

    field: str
    requested: str
    applied: str
    reason: str


class StateChange(Record):
    status: OrderStatus
    ts: int
    reason: str | None = None


class OrderRecord(Record):
    """An order S4 owns: the parent (the intent's client_order_id) or a child `-E{n}`."""

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
    # ---- execution detail (S4 Maker→Taker / TWAP) ---------------------------------------------
    role: OrderRole | None = None
    slice_index: int | None = Field(default=None, ge=0)
    post_only: bool = False
    time_in_force: TimeInForce | None = None
    arrival_mid: Decimal | None = Field(
        default=None, description="parent: mid when S4 accepted the intent (slippage reference)"
    )
    mid_at_send: Decimal | None = None
    book_top3: dict[str, list[tuple[Decimal, Decimal]]] | None = None
    ts_send: int | None = None
    ts_ack: int | None = None
    # Persisted execution-policy state of a parent: a restart resumes from it.
    exec_state: dict[str, Any] | None = None
    cancel_requested: bool = False
    # Requested values the router changed under its settings (also in the POST answer).
    adjustments: list[Adjustment] = Field(default_factory=list)
    # ---- linked orders (OCO legs, protective orders tied to a position) ----------------------
    link_group: str | None = Field(
        default=None, description="orders that depend on each other share this id"
    )
    contingency: Contingency | None = None


class FillRecord(Record):
    """One execution. Unique by (venue, order_id, trade_id)."""

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
    arrival_mid: Decimal | None = Field(
        default=None, description="mid when S4 accepted the intent; slippage_bps is against it"
    )
    role: OrderRole | None = None
    slice_index: int | None = None


class OrderResponse(Record):
    """S4's answer to POST /orders and /cancel (spec §D1)."""

    result: RequestResult
    order_ids: list[str] = Field(default_factory=list)
    message: str | None = None
    client_order_id: str | None = None
    status: OrderStatus | None = None
    duplicate: bool = False
    filled_qty: Decimal | None = None
    reason: str | None = Field(default=None, description="refusal code (pre-trade 422s)")
    adjustments: list[Adjustment] = Field(default_factory=list)

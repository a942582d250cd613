"""HTTP schemas of S4. The order body itself is the shared wire contract
(`tradekit.intents.OrderIntent`, spec §D1); cancel and lookup shapes live here."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tradekit.ids import CLIENT_ORDER_ID_PATTERN
from tradekit.intents import SAFE_ID_PATTERN


class CancelRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    order_id: str | None = Field(default=None, pattern=SAFE_ID_PATTERN)
    client_order_id: str | None = Field(default=None, pattern=CLIENT_ORDER_ID_PATTERN)

    @model_validator(mode="after")
    def _one(self) -> CancelRequest:
        if (self.order_id is None) == (self.client_order_id is None):
            raise ValueError("give exactly one of order_id or client_order_id")
        return self


class OrderView(BaseModel):
    model_config = ConfigDict(extra="forbid")

    order: dict[str, Any]
    children: list[dict[str, Any]]
    fills: list[dict[str, Any]]


class Health(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: str
    exchange: dict[str, Any]
    redis: bool
    store: dict[str, Any]
    route_table_rev: str | None
    config: dict[str, Any] = Field(
        default_factory=dict,
        description="hot reload: route_table {rev, path, state ok|refused, error, swaps}, "
        "restart_required / reloaded settings, settings_error",
    )
    circuit_breaker: str = Field(description="CLOSED | HALF_OPEN | OPEN")
    breaker: dict[str, Any] = Field(default_factory=dict)
    clock: dict[str, Any] = Field(default_factory=dict)
    entries_allowed: bool = True
    executions: dict[str, Any] = Field(default_factory=dict)
    consumer: dict[str, Any]
    reconcile: dict[str, Any] = Field(default_factory=dict)
    weight: dict[str, Any] = Field(
        default_factory=dict, description="request-weight budget per pool (used, limit, pacing)"
    )

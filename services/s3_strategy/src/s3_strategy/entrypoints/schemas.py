"""HTTP schemas of S3 (separate from the domain objects)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from tradekit.enums import Market, Side


class DecideContext(BaseModel):
    model_config = ConfigDict(extra="forbid")

    features: dict[str, float] | None = Field(
        default=None, description="supply or override features (what-if, replay); `ts` in ms"
    )
    market: Market = Market.FUT


class DecideRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    symbol: str = Field(min_length=2, max_length=20)
    sideHint: Side | None = None
    dry_run: bool = False
    context: DecideContext | None = None

    @field_validator("symbol")
    @classmethod
    def _upper(cls, v: str) -> str:
        return v.upper()


class GateOut(BaseModel):
    gate: str
    passed: bool
    observed: float | None
    threshold: float


class DecideResponse(BaseModel):
    model_config = ConfigDict(extra="forbid")

    decision: Literal["open", "skip"]
    intent: dict[str, Any] | None = None
    reason: str
    message: str | None = None
    config_rev: str
    rules_fired: list[dict[str, Any]]
    gates: list[GateOut]
    signal_id: str
    dry_run: bool
    publish: dict[str, Any] | None = None


class Health(BaseModel):
    status: str
    redis: bool
    store: dict[str, Any]
    config_rev: str
    rules_loaded: int
    ml_model_version: str | None
    symbols: list[str]

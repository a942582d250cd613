"""Typed, frozen views of what S3 decides with: the bundle `params` and the `S3_*` limits.

Both are validated once when a bundle is loaded (lint before swap); a decision only reads them.
`extra="forbid"` everywhere: a misspelt key in a bundle is a load error, not a silent default.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

PosDec = Annotated[Decimal, Field(gt=0, allow_inf_nan=False)]
NonNegDec = Annotated[Decimal, Field(ge=0, allow_inf_nan=False)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class MlRow(_Frozen):
    p_min: float = Field(ge=0, le=1, allow_inf_nan=False)
    size_mult: PosDec


class MlParams(_Frozen):
    """L2: the scorer must answer within `deadline_ms`; otherwise (or on error) `fallback`
    applies: "size_mult" multiplies by `fallback_size_mult` (neutral 1.0 by default: the rules and
    gates still decide), "skip" skips with ML_UNAVAILABLE."""

    deadline_ms: float = Field(default=2.0, gt=0, le=1000)
    fallback: Literal["size_mult", "skip"] = "size_mult"
    fallback_size_mult: PosDec = Decimal(1)


class BracketParams(_Frozen):
    """SL/TP emission. `enabled: false` emits a plain entry (no sl/tp, no OCO): S4 refuses
    protective orders until they are implemented there, so the S3↔S4 integration runs so."""

    enabled: bool = True
    entry_fee: Literal["taker", "maker"] = "taker"
    exit_fee: Literal["taker", "maker"] = "taker"
    atr_feature: str = Field(default="atr_14", pattern=r"^[a-z][a-z0-9_]*$")


class FutPolicy(_Frozen):
    type: Literal["MAKER_TAKER", "MARKET", "TWAP"] = "MAKER_TAKER"
    route_table: str = "default"
    taker_fallback: Literal["market", "chase_one_tick"] = "market"
    # MAKER_TAKER: attach the band's TWAP slicing when the band has more than one slice.
    twap: bool = True


class SpotPolicy(_Frozen):
    """SPOT entries carry their exit as an OCO (tp/sl prices). `tp_pct` is the net profit target
    after both fees as a fraction of the quote spent; `sl_pct` the stop distance as a fraction of
    the entry (capped by S3_MAX_LOSS_USDT / qty like FUT). Absent ⇒ the FUT rules apply
    (tp_net_profit_pct, S3_ATR_MULT·ATR). `entry` is the policy used when brackets are off."""

    type: Literal["OCO"] = "OCO"
    tp_pct: PosDec | None = None
    sl_pct: PosDec | None = None
    entry: Literal["MAKER_TAKER", "MARKET"] = "MAKER_TAKER"
    route_table: str = "default"


class ExecPolicies(_Frozen):
    FUT: FutPolicy = FutPolicy()
    SPOT: SpotPolicy = SpotPolicy()


class RiskBudget(_Frozen):
    # Margin (FUT) / quote (SPOT) committed by entries in flight, plus the largest margin the
    # next entry may take, must stay within this (gate `risk_budget`).
    max_margin_in_flight_usdt: PosDec = Decimal(1000)


class RiskParams(_Frozen):
    budget: RiskBudget = RiskBudget()


class RulesParams(_Frozen):
    max_depth: int = Field(default=6, ge=1, le=32)


class BundleParams(_Frozen):
    size_mult_clamp: tuple[PosDec, PosDec] = (Decimal("0.5"), Decimal("1.5"))
    ml_table: tuple[MlRow, ...] = (MlRow(p_min=0.6, size_mult=Decimal(1)),)
    ml: MlParams = MlParams()
    feature_max_age_ms: int | None = Field(default=None, ge=1)
    tp_net_profit_pct: PosDec = Decimal("0.10")
    spot_quote_budget_usdt: PosDec = Decimal(200)
    exec_policy: ExecPolicies = ExecPolicies()
    brackets: BracketParams = BracketParams()
    risk: RiskParams = RiskParams()
    rules: RulesParams = RulesParams()

    @field_validator("size_mult_clamp")
    @classmethod
    def _clamp(cls, v: tuple[Decimal, Decimal]) -> tuple[Decimal, Decimal]:
        if v[0] > v[1]:
            raise ValueError("size_mult_clamp: min > max")
        return v

    @field_validator("ml_table")
    @classmethod
    def _table(cls, v: tuple[MlRow, ...]) -> tuple[MlRow, ...]:
        if not v:
            raise ValueError("ml_table: at least one row")
        ps = [r.p_min for r in v]
        if len(set(ps)) != len(ps):
            raise ValueError("ml_table: duplicate p_min")
        return tuple(sorted(v, key=lambda r: r.p_min))


class EngineLimits(_Frozen):
    """The `S3_*` values a decision depends on (spec §E). They are part of the recorded decision
    context, so that a replay uses the limits of the time, not today's environment."""

    max_funding_abs: NonNegDec
    spread_bp_limit_default: PosDec
    depth_top1_usdt_min_default: NonNegDec
    leverage_default: int = Field(ge=1, le=125)
    margin_base_usdt: PosDec
    max_loss_usdt: PosDec
    atr_mult: PosDec
    concurrent_entries_per_market: int = Field(ge=0)
    feature_max_age_ms: int = Field(ge=1)

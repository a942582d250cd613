"""HTTP schemas of S3 (separate from the domain objects).

Responses are built by the service as plain JSON-ready dicts and serialised with orjson (the
hot path skips response validation); these models document them in OpenAPI and the contract
tests (tests/contract/test_decide_contract.py) hold every response to them.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from s3_strategy.domain.gates import GateName
from s3_strategy.domain.reasons import Reason
from s3_strategy.service_layer.decide import FEATURE_ABS_MAX, TS_MAX, TS_MIN, DecideInput
from tradekit.enums import Market, Side
from tradekit.intents import OrderIntent

# Strict: `true` or `"65000"` is not a number (lax mode would read them as 1.0 / 65000.0). The
# magnitude bound keeps absurd values (1e30) out of the pipeline and the stored signal; the
# factor_registry bounds are checked by the engine (skip FEATURE_OUT_OF_RANGE). The bounds
# are the service's own (FEATURE_ABS_MAX; `ts` epoch ms from 2001 to 2286, TS_MIN..TS_MAX).
FeatureValue = Annotated[
    float, Field(strict=True, allow_inf_nan=False, ge=-FEATURE_ABS_MAX, le=FEATURE_ABS_MAX)
]
FeatureName = Annotated[str, Field(pattern=r"^([a-z][a-z0-9_]*|ts)$", max_length=64)]


class _Strict(BaseModel):
    # Every request and response body: an unknown field is an error, never ignored.
    model_config = ConfigDict(extra="forbid")


class DecideContext(_Strict):
    features: dict[FeatureName, FeatureValue] | None = Field(
        default=None,
        max_length=256,
        description="dry runs only (`dry_run: true`; a live decision reads market data from "
        "Redis alone and answers 422): supply or override features (what-if); `ts` (epoch ms) "
        "sets the snapshot time the staleness check uses",
    )
    market: Market = Market.FUT

    @field_validator("features")
    @classmethod
    def _ts(cls, v: dict[str, float] | None) -> dict[str, float] | None:
        ts = (v or {}).get("ts")
        if ts is not None and (not ts.is_integer() or not TS_MIN <= ts <= TS_MAX):
            raise ValueError(f"ts must be epoch milliseconds (13 digits), got {ts!r}")
        return v


# One definition for `symbol` and `symbols[]`: a batch's symbols become DecideRequests inside
# the route, where a ValidationError would be a 500 instead of the 422 naming the field.
Symbol = Annotated[str, Field(min_length=2, max_length=20), AfterValidator(str.upper)]


class DecideRequest(_Strict):
    symbol: Symbol
    sideHint: Side | None = None
    dry_run: bool = False
    context: DecideContext | None = None

    def as_input(self) -> DecideInput:
        ctx = self.context
        return DecideInput(
            symbol=self.symbol,
            market=ctx.market if ctx else Market.FUT,
            side_hint=self.sideHint,
            dry_run=self.dry_run,
            features=ctx.features if ctx else None,
        )


class DecideBatchRequest(_Strict):
    """Either `items` (full requests) or `symbols` with shared `dry_run`/`context`."""

    items: list[DecideRequest] | None = Field(default=None, min_length=1)
    symbols: list[Symbol] | None = Field(default=None, min_length=1)
    dry_run: bool = False
    context: DecideContext | None = None

    @model_validator(mode="after")
    def _one_shape(self) -> DecideBatchRequest:
        if (self.items is None) == (self.symbols is None):
            raise ValueError("give exactly one of `items` or `symbols`")
        return self

    def requests(self) -> list[DecideRequest]:
        if self.items is not None:
            return self.items
        return [
            DecideRequest(symbol=s, dry_run=self.dry_run, context=self.context)
            for s in self.symbols or []
        ]


class GateOut(_Strict):
    gate: GateName
    passed: bool
    observed: float | None
    threshold: float


class RuleFiredOut(_Strict):
    rule_id: str
    action: Literal["size_mult", "skip_entry"]
    value: float | None = None


class RulesMultOut(_Strict):
    before_clamp: float
    after_clamp: float


class MlOut(_Strict):
    p: float | None
    model_version: str
    fallback: bool
    error: str | None = None
    size_mult: float | None = None


class SizingOut(_Strict):
    rules_mult: float
    ml_mult: float
    size_mult: float
    entry: str
    qty: str
    notional_usdt: str
    margin_usdt: str
    leverage: int | None = None


class BracketsOut(_Strict):
    sl: str
    tp: str
    d: str
    d_base: str
    d_cap: str
    loss_at_sl_usdt: str
    target_net_usdt: str
    net_at_tp_usdt: str
    fees: dict[str, Literal["taker", "maker"]]
    sl_one_tick_floor: bool


class PublishOut(_Strict):
    stream: Literal["ok", "failed", "skipped"]
    rest: Literal["ok", "failed", "skipped"]
    stream_id: str | None
    s4: dict[str, Any] | None
    errors: list[str]


class DecideResponse(_Strict):
    decision: Literal["open", "skip"]
    reason: Reason
    message: str | None = None
    side: Side | None = None
    config_rev: str
    ctx_rev: str
    signal_id: str
    dry_run: bool
    gates: list[GateOut]
    rules_fired: list[RuleFiredOut]
    rules_mult: RulesMultOut | None = None
    ml: MlOut | None = None
    sizing: SizingOut | None = None
    brackets: BracketsOut | None = None
    intent: OrderIntent | None = Field(
        default=None, description="the body S4 accepts (tradekit OrderIntent), when open"
    )
    publish: PublishOut | None = None


class BatchItemError(_Strict):
    symbol: str
    status: int
    error: str


class DecideBatchResponse(BaseModel):
    count: int
    results: list[DecideResponse | BatchItemError]


class ReplayResponse(_Strict):
    signal_id: str
    identical: bool
    differences: list[str]
    config_rev: str
    ctx_rev: str
    engine_version: dict[str, str | None]
    model_version: dict[str, str | None]
    replayed_at: int
    result: DecideResponse


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    redis: bool
    store: dict[str, Any]
    config_rev: str
    ctx_rev: str
    bundle_id: str
    rules_loaded: int
    ml_model_version: str
    entries_in_flight: int | None
    symbols: list[str]
    config: dict[str, Any] = Field(
        default_factory=dict,
        description="hot reload: state current|lagging, target_rev (config_active), "
        "announced_rev (cfg:active_rev), error, last_check_ms, last_swap_ms, swaps",
    )

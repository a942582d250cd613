"""Order intents: the body S3 emits and S4 accepts on `POST /orders` and `orders:intent`.

The two shapes are those of spec/004 §D1 (FUT and SPOT-OCO). `exec_policy` is a discriminated
union on `type`; the spec's FUT example omits `type`, so a policy without one is read as
MAKER_TAKER (maker first, taker fallback, optionally sliced by `twap`).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

from tradekit.base import Payload
from tradekit.enums import Market, Side
from tradekit.ids import CLIENT_ORDER_ID_PATTERN

# Bounded: 1e308 is a typo, not an order (and beyond 28 significant digits Decimal rounding
# raises instead of answering). Every price and quantity we trade is far below 1e12.
MAX_NUMBER = Decimal("1e12")
PosDecimal = Annotated[Decimal, Field(gt=0, le=MAX_NUMBER, allow_inf_nan=False)]
# Free-form ids travel into Redis keys, the store and logs: bounded, from a safe charset.
SAFE_ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,64}$"
SafeId = Annotated[str, Field(pattern=SAFE_ID_PATTERN)]
# Epoch ms bound (year 2286): a larger number is not a time; freshness refuses the future.
MAX_TS_MS = 9_999_999_999_999


# TWAP and Maker→Taker bounds, one definition for the TWAP policy and a Maker→Taker's TWAP.
Slices = Annotated[int, Field(ge=1, le=100)]
GapMs = Annotated[int, Field(ge=0, le=3_600_000)]
JitterPct = Annotated[Decimal, Field(ge=0, le=Decimal("0.5"))]
MakerWaitMs = Annotated[int | None, Field(ge=0, le=600_000)]


class TwapSpec(Payload):
    slices: Slices
    gap_ms: GapMs
    jitter_pct: JitterPct = Decimal("0.1")


class MakerTakerPolicy(Payload):
    """Post-only at best; after `maker_wait_ms` cancel, await the ack, send the rest as taker."""

    type: Literal["MAKER_TAKER"] = "MAKER_TAKER"
    maker_wait_ms: MakerWaitMs = None
    twap: TwapSpec | None = None
    chase_one_tick: bool = False


class TwapPolicy(Payload):
    type: Literal["TWAP"] = "TWAP"
    slices: Slices
    gap_ms: GapMs
    jitter_pct: JitterPct = Decimal("0.1")
    maker_wait_ms: MakerWaitMs = None


class MarketPolicy(Payload):
    type: Literal["MARKET"] = "MARKET"


class OcoPolicy(Payload):
    """SPOT entry followed by an OCO exit: take-profit limit and stop-loss legs."""

    type: Literal["OCO"] = "OCO"
    tp_price: PosDecimal
    sl_price: PosDecimal
    sl_limit_price: PosDecimal | None = None


def _policy_tag(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("type", "MAKER_TAKER"))
    return str(getattr(value, "type", "MAKER_TAKER"))


ExecPolicy = Annotated[
    Annotated[MakerTakerPolicy, Tag("MAKER_TAKER")]
    | Annotated[TwapPolicy, Tag("TWAP")]
    | Annotated[MarketPolicy, Tag("MARKET")]
    | Annotated[OcoPolicy, Tag("OCO")],
    Discriminator(_policy_tag),
]


class StopLoss(Payload):
    type: Literal["STOP_MARKET"] = "STOP_MARKET"
    price: PosDecimal


class TakeProfit(Payload):
    """Either an explicit trigger `price`, or a `target` the router solves the price for."""

    type: Literal["TAKE_PROFIT_MARKET"] = "TAKE_PROFIT_MARKET"
    price: PosDecimal | None = None
    target: Literal["net_profit_usdt"] | None = None
    value: PosDecimal | None = None

    @model_validator(mode="after")
    def _price_or_target(self) -> TakeProfit:
        if self.price is None and (self.target is None or self.value is None):
            raise ValueError("tp needs either `price` or both `target` and `value`")
        if self.price is not None and (self.target is not None or self.value is not None):
            # Which one would win is a guess: refused rather than one silently ignored.
            raise ValueError("tp: give either `price` or `target`+`value`, not both")
        return self


class OrderIntent(Payload):
    """One order intent (spec §D1). Quantities and prices are Decimal; JSON numbers or strings."""

    intent_id: SafeId
    market: Market
    symbol: str = Field(pattern=r"^[A-Z0-9]{2,20}$")
    side: Side
    qty: PosDecimal
    exec_policy: ExecPolicy = Field(default_factory=MakerTakerPolicy)
    sl: StopLoss | None = None
    tp: TakeProfit | None = None
    client_order_id: str = Field(pattern=CLIENT_ORDER_ID_PATTERN)
    reduce_only: bool = False
    leverage: int | None = Field(default=None, ge=1, le=125)
    # Price the decision was made at (S3 fills it; used for slippage/notional checks).
    ref_price: PosDecimal | None = None
    signal_id: SafeId | None = None
    config_rev: SafeId | None = None
    created_ts: int | None = Field(
        default=None, ge=0, le=MAX_TS_MS, description="epoch ms of the decision"
    )

    @field_validator("symbol", mode="before")
    @classmethod
    def _upper(cls, v: Any) -> Any:
        return v.upper() if isinstance(v, str) else v

    @model_validator(mode="after")
    def _shape(self) -> OrderIntent:
        oco = isinstance(self.exec_policy, OcoPolicy)
        if oco and self.market is not Market.SPOT:
            raise ValueError("exec_policy OCO is a SPOT policy; futures use sl/tp brackets")
        if self.market is Market.SPOT and (self.sl or self.tp):
            raise ValueError("SPOT intents carry protection as exec_policy OCO, not sl/tp")
        if self.market is Market.SPOT and self.reduce_only:
            raise ValueError("reduce_only applies to FUT only")
        if self.market is Market.SPOT and self.leverage is not None:
            raise ValueError("leverage applies to FUT only; SPOT has no leverage")
        if self.reduce_only and self.leverage is not None:
            raise ValueError("leverage does not apply to a reduce-only close")
        if isinstance(self.exec_policy, OcoPolicy):
            p = self.exec_policy
            # Entry BUY exits by SELL: take profit above the stop; mirrored for SELL.
            if self.side is Side.BUY and not p.tp_price > p.sl_price:
                raise ValueError("exec_policy: BUY needs tp_price > sl_price")
            if self.side is Side.SELL and not p.tp_price < p.sl_price:
                raise ValueError("exec_policy: SELL needs tp_price < sl_price")
        if self.sl and self.tp and self.tp.price is not None:
            if self.side is Side.BUY and not self.tp.price > self.sl.price:
                raise ValueError("BUY needs tp.price > sl.price")
            if self.side is Side.SELL and not self.tp.price < self.sl.price:
                raise ValueError("SELL needs tp.price < sl.price")
        return self

    @property
    def needs_protection(self) -> bool:
        return self.sl is not None or self.tp is not None or isinstance(self.exec_policy, OcoPolicy)

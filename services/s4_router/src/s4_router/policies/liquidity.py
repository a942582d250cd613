"""Liquidity probe: before each child is sent, look at spread and top-of-book depth.

* spread wider than `spread_bps_max`, or top-1 depth (on the side a taker consumes) below
  `depth_top1_usdt_min` ⇒ DELAY by `retry_ms`, at most `max_delay_ms` per child; after that the
  child goes anyway (degraded: the decision says so) — an intent is never parked forever;
* a taker child larger than `max_child_fraction` of the top level's quantity ⇒ SPLIT: the child
  is cut to that fraction (the rest follows in later children, each probed again). If even that
  is below minNotional the book is too thin to split: DELAY, then a minimum-size child.

Post-only children rest and consume no depth, so only taker children are split.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from s4_router.policies.model import Book
from tradekit.enums import OrderRole, Side
from tradekit.instrument import Instrument
from tradekit.money import ZERO


class LiquidityConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    spread_bps_max: Decimal | None = None
    depth_top1_usdt_min: Decimal | None = None
    max_child_fraction: Decimal = Field(default=Decimal("0.5"), gt=0, le=1)
    retry_ms: int = Field(default=250, ge=1)
    max_delay_ms: int = Field(default=2000, ge=0)


class ProbeAction(StrEnum):
    GO = "GO"
    DELAY = "DELAY"
    SPLIT = "SPLIT"


@dataclass(frozen=True, slots=True)
class ProbeDecision:
    action: ProbeAction
    qty: Decimal  # the child quantity to send (GO/SPLIT)
    spread_bps: Decimal
    top1_qty: Decimal
    top1_usdt: Decimal
    reasons: tuple[str, ...] = ()
    delay_ms: int = 0
    degraded: bool = False

    def as_event(self) -> dict[str, object]:
        return {
            "action": self.action.value,
            "qty": str(self.qty),
            "spread_bps": str(self.spread_bps.quantize(Decimal("0.01"))),
            "top1_qty": str(self.top1_qty),
            "top1_usdt": str(self.top1_usdt.quantize(Decimal("0.01"))),
            "reasons": list(self.reasons),
            "delay_ms": self.delay_ms,
            "degraded": self.degraded,
        }


def min_tradable_qty(inst: Instrument, price: Decimal) -> Decimal:
    """Smallest quantity on the step whose notional at `price` meets minNotional."""
    qty = max(inst.stepSize, inst.minQty)
    if price > 0 and qty * price < inst.minNotional:
        qty = inst.round_qty(inst.minNotional / price, "up")
    return qty


def probe(
    book: Book,
    *,
    side: Side,
    role: OrderRole,
    qty: Decimal,
    inst: Instrument,
    cfg: LiquidityConfig,
    delayed_ms: int,
) -> ProbeDecision:
    levels = book.asks if side is Side.BUY else book.bids  # what a taker consumes first
    top_price, top_qty = levels[0] if levels else (ZERO, ZERO)
    can_wait = delayed_ms + cfg.retry_ms <= cfg.max_delay_ms
    if not book.two_sided:
        d = ProbeDecision(ProbeAction.GO, qty, ZERO, top_qty, top_price * top_qty, degraded=True)
        reasons = ("one_sided_book",)
        return _delay(d, reasons, cfg) if can_wait else replace(d, reasons=reasons)
    spread = book.spread_bps
    top_usdt = top_price * top_qty
    why: list[str] = []
    if cfg.spread_bps_max is not None and spread > cfg.spread_bps_max:
        why.append("spread_wide")
    if cfg.depth_top1_usdt_min is not None and top_usdt < cfg.depth_top1_usdt_min:
        why.append("depth_thin")
    base = ProbeDecision(
        ProbeAction.GO, qty, spread, top_qty, top_usdt, tuple(why), degraded=bool(why)
    )
    if why and can_wait:
        return _delay(base, base.reasons, cfg)
    if role is OrderRole.TAKER:
        cap = (
            inst.round_qty(top_qty * cfg.max_child_fraction, "down")
            if top_qty * cfg.max_child_fraction >= inst.stepSize
            else ZERO
        )
        if qty > cap:
            floor_qty = min_tradable_qty(inst, book.mid)
            if cap >= floor_qty:
                over = (*why, "child_over_depth_fraction")
                return replace(base, action=ProbeAction.SPLIT, qty=cap, reasons=over)
            thin = (*why, "too_thin_to_split")
            if can_wait:
                return _delay(base, thin, cfg)
            split = min(qty, floor_qty)
            return replace(base, action=ProbeAction.SPLIT, qty=split, reasons=thin, degraded=True)
    return base


def _delay(d: ProbeDecision, reasons: tuple[str, ...], cfg: LiquidityConfig) -> ProbeDecision:
    return replace(
        d,
        action=ProbeAction.DELAY,
        qty=ZERO,
        reasons=reasons,
        delay_ms=cfg.retry_ms,
        degraded=False,
    )

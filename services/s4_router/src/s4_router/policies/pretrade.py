"""Pre-trade checks (pure): what a risk desk refuses before anything is stored as executable or
sent. Each check returns a :class:`Refusal` (closed reason code, message naming the field) or
None; the router's intake answers a refusal with 422 (issue 11 points 9-14).

Two phases, because some checks need the live book and the intake fetches it only once:

* :func:`check_intake` — no market data: freshness of `created_ts`, quantity and prices on the
  instrument's step / tick (a value finer than the instrument is refused, never silently
  rounded), per-instrument quantity limits, SL / TP / OCO prices on the protective side of
  each other;
* :func:`check_market` — against the live mid of the book the intake fetched: price collar on
  `ref_price`, notional limits (per instrument and global) at `ref_price` or the mid, SL / TP
  (FUT) and OCO legs (SPOT) on the right side of the market and at least
  `min_stop_distance_bps` from it. An invalid bracket refuses the whole intent before the
  entry: a stop that would trigger at once leaves the position naked or stops it out at a loss.

Reduce-only intents only reduce risk: they skip the size limits and the collar (a close must
never be blocked by a stale reference), but not freshness (a stale close may hit a newer
position) nor precision.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from tradekit.enums import Market, Side
from tradekit.errors import InvalidIntent
from tradekit.instrument import Instrument
from tradekit.intents import OcoPolicy, OrderIntent
from tradekit.money import BPS


class Reason(StrEnum):
    """Closed list of pre-trade refusal codes (the `reason` of a 422 answer)."""

    MISSING_CREATED_TS = "MISSING_CREATED_TS"
    STALE_INTENT = "STALE_INTENT"
    FUTURE_INTENT = "FUTURE_INTENT"
    QTY_OFF_STEP = "QTY_OFF_STEP"
    PRICE_OFF_TICK = "PRICE_OFF_TICK"
    MAX_ORDER_QTY = "MAX_ORDER_QTY"
    MAX_ORDER_NOTIONAL = "MAX_ORDER_NOTIONAL"
    PRICE_COLLAR = "PRICE_COLLAR"
    BRACKET_INVALID = "BRACKET_INVALID"
    OCO_INVALID = "OCO_INVALID"
    NUMBER_OUT_OF_RANGE = "NUMBER_OUT_OF_RANGE"


@dataclass(frozen=True, slots=True)
class Refusal:
    reason: Reason
    message: str
    field: str | None = None


class PretradeRefused(InvalidIntent):
    """A refusal raised from the intake's validation step (answered 422, nothing stored)."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(f"{refusal.reason.value}: {refusal.message}", field=refusal.field)
        self.reason = refusal.reason.value


@dataclass(frozen=True, slots=True)
class PretradeLimits:
    """From S4 settings (`S4_MAX_ORDER_NOTIONAL_USDT`, `S4_PRICE_COLLAR_BPS`, ...)."""

    max_order_notional_usdt: Decimal = Decimal(250_000)
    price_collar_bps: Decimal = Decimal(200)
    min_stop_distance_bps: Decimal = Decimal(5)
    intent_max_age_ms: int = 10_000
    intent_max_future_ms: int = 1_000


# ---- phase 1: no market data ----------------------------------------------------------------
def check_intake(
    intent: OrderIntent, inst: Instrument, *, now_ms: int, limits: PretradeLimits
) -> Refusal | None:
    try:
        return (
            check_freshness(intent, now_ms=now_ms, limits=limits)
            or check_precision(intent, inst)
            or check_qty_limits(intent, inst)
            or check_protection_shape(intent)
        )
    except ArithmeticError as exc:  # a Decimal beyond the context: refused, never a 500
        return Refusal(Reason.NUMBER_OUT_OF_RANGE, f"number out of range: {exc!r}")


def check_freshness(intent: OrderIntent, *, now_ms: int, limits: PretradeLimits) -> Refusal | None:
    ts = intent.created_ts
    if ts is None:
        return Refusal(
            Reason.MISSING_CREATED_TS,
            "created_ts (epoch ms of the decision) is required: S4 executes only fresh intents",
            "created_ts",
        )
    age = now_ms - ts
    if age > limits.intent_max_age_ms:
        return Refusal(
            Reason.STALE_INTENT,
            f"created_ts: intent is {age} ms old, over S4_INTENT_MAX_AGE_MS="
            f"{limits.intent_max_age_ms}; the market it was decided on is gone",
            "created_ts",
        )
    if -age > limits.intent_max_future_ms:
        return Refusal(
            Reason.FUTURE_INTENT,
            f"created_ts: intent is {-age} ms in the future, over the allowed skew "
            f"S4_INTENT_MAX_FUTURE_MS={limits.intent_max_future_ms}",
            "created_ts",
        )
    return None


def check_precision(intent: OrderIntent, inst: Instrument) -> Refusal | None:
    """Quantity on stepSize, every price sent to the venue on tickSize."""
    if not inst.is_on_step(intent.qty):
        return Refusal(
            Reason.QTY_OFF_STEP,
            f"qty {intent.qty} is finer than {inst.symbol} stepSize {inst.stepSize}",
            "qty",
        )
    for field, price in _venue_prices(intent):
        if not inst.is_on_tick(price):
            return Refusal(
                Reason.PRICE_OFF_TICK,
                f"{field} {price} is finer than {inst.symbol} tickSize {inst.tickSize}",
                field,
            )
    return None


def check_qty_limits(intent: OrderIntent, inst: Instrument) -> Refusal | None:
    if intent.reduce_only:
        return None
    for name, cap in (("max_order_qty", inst.max_order_qty), ("maxQty", inst.maxQty)):
        if cap is not None and intent.qty > cap:
            return Refusal(
                Reason.MAX_ORDER_QTY,
                f"qty {intent.qty} exceeds {inst.symbol} {name} {cap}",
                "qty",
            )
    return None


def check_protection_shape(intent: OrderIntent) -> Refusal | None:
    """SL / TP on the protective sides of each other (the schema checks SL vs TP; this adds
    the stop-limit price of an OCO stop leg)."""
    pol = intent.exec_policy
    if isinstance(pol, OcoPolicy) and pol.sl_limit_price is not None:
        # Exit of a BUY is a SELL stop-limit: its limit at or below the trigger (mirrored).
        bad = (
            pol.sl_limit_price > pol.sl_price
            if intent.side is Side.BUY
            else pol.sl_limit_price < pol.sl_price
        )
        if bad:
            rel = "<=" if intent.side is Side.BUY else ">="
            return Refusal(
                Reason.OCO_INVALID,
                f"exec_policy.sl_limit_price {pol.sl_limit_price} must be {rel} sl_price "
                f"{pol.sl_price} for a {intent.side.value} entry",
                "exec_policy.sl_limit_price",
            )
    return None


# ---- phase 2: against the live book ---------------------------------------------------------
def check_market(
    intent: OrderIntent,
    inst: Instrument,
    qty: Decimal,
    *,
    mid: Decimal,
    limits: PretradeLimits,
) -> Refusal | None:
    try:
        return (
            check_collar(intent, mid=mid, limits=limits)
            or check_notional_limits(intent, inst, qty, mid=mid, limits=limits)
            or check_protection_vs_market(intent, mid=mid, limits=limits)
        )
    except ArithmeticError as exc:
        return Refusal(Reason.NUMBER_OUT_OF_RANGE, f"number out of range: {exc!r}")


def check_collar(intent: OrderIntent, *, mid: Decimal, limits: PretradeLimits) -> Refusal | None:
    if intent.reduce_only or intent.ref_price is None or mid <= 0:
        return None
    off = abs(intent.ref_price - mid) / mid * BPS
    if off > limits.price_collar_bps:
        return Refusal(
            Reason.PRICE_COLLAR,
            f"ref_price {intent.ref_price} is {off:.1f} bps from the live mid {mid}, over "
            f"S4_PRICE_COLLAR_BPS={limits.price_collar_bps}",
            "ref_price",
        )
    return None


def check_notional_limits(
    intent: OrderIntent,
    inst: Instrument,
    qty: Decimal,
    *,
    mid: Decimal,
    limits: PretradeLimits,
) -> Refusal | None:
    if intent.reduce_only:
        return None
    # The larger of the two prices: a stale low ref_price must not slip a big order through.
    price = max(intent.ref_price or mid, mid)
    notional = qty * price
    for name, cap in (
        (f"{inst.symbol} max_order_notional_usdt", inst.max_order_notional_usdt),
        ("S4_MAX_ORDER_NOTIONAL_USDT", limits.max_order_notional_usdt),
    ):
        if cap is not None and notional > cap:
            return Refusal(
                Reason.MAX_ORDER_NOTIONAL,
                f"qty {qty} × {price} = {notional.normalize():f} USDT exceeds {name}={cap}",
                "qty",
            )
    return None


def check_protection_vs_market(
    intent: OrderIntent, *, mid: Decimal, limits: PretradeLimits
) -> Refusal | None:
    """BUY: sl < market < tp, SELL mirrored, each at least `min_stop_distance_bps` away."""
    if mid <= 0:
        return None
    gap = mid * limits.min_stop_distance_bps / BPS
    below, above = mid - gap, mid + gap
    long = intent.side is Side.BUY
    legs: list[tuple[str, Decimal, bool, Reason]] = []  # (field, price, is_stop, reason)
    pol = intent.exec_policy
    if intent.market is Market.FUT:
        if intent.sl is not None:
            legs.append(("sl.price", intent.sl.price, True, Reason.BRACKET_INVALID))
        if intent.tp is not None and intent.tp.price is not None:
            legs.append(("tp.price", intent.tp.price, False, Reason.BRACKET_INVALID))
    elif isinstance(pol, OcoPolicy):
        legs.append(("exec_policy.sl_price", pol.sl_price, True, Reason.OCO_INVALID))
        legs.append(("exec_policy.tp_price", pol.tp_price, False, Reason.OCO_INVALID))
    for field, price, is_stop, reason in legs:
        # A long's stop sits below the market and its target above; a short's mirrored.
        must_be_below = is_stop == long
        ok = price <= below if must_be_below else price >= above
        if not ok:
            rel = "below" if must_be_below else "above"
            what = "stop" if is_stop else "take profit"
            return Refusal(
                reason,
                f"{field} {price}: a {intent.side.value} entry's {what} must be {rel} the live "
                f"mid {mid} by at least S4_MIN_STOP_DISTANCE_BPS={limits.min_stop_distance_bps}"
                f" bps; the whole intent is refused before the entry",
                field,
            )
    return None


def _venue_prices(intent: OrderIntent) -> list[tuple[str, Decimal]]:
    out: list[tuple[str, Decimal]] = []
    if intent.sl is not None:
        out.append(("sl.price", intent.sl.price))
    if intent.tp is not None and intent.tp.price is not None:
        out.append(("tp.price", intent.tp.price))
    pol = intent.exec_policy
    if isinstance(pol, OcoPolicy):
        out += [("exec_policy.tp_price", pol.tp_price), ("exec_policy.sl_price", pol.sl_price)]
        if pol.sl_limit_price is not None:
            out.append(("exec_policy.sl_limit_price", pol.sl_limit_price))
    return out

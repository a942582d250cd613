"""Step 6, SL/TP (spec §C3), solved in Decimal and rounded protectively by tradekit.Instrument.

Stop loss: the loss at the stop **including both legs' fees** never exceeds `max_loss`:
long `qty·(entry − SL) + qty·entry·f_in + qty·SL·f_stop ≤ max_loss`, i.e.
`SL ≥ (entry·(1 + f_in) − max_loss/qty) / (1 − f_stop)`; short
`SL ≤ (max_loss/qty + entry·(1 − f_in)) / (1 + f_stop)`. `d_cap` is that SL's distance from the
entry and `d = min(d_base, d_cap)` with `d_base = S3_ATR_MULT · ATR` (or, for SPOT with
`sl_pct`, `sl_pct · entry`); long `SL = entry − d` rounded *up* to the tick (towards the entry),
short mirrored, then checked in exact arithmetic and moved towards the entry while a hair over.
`f_stop` is the taker fee: a STOP_MARKET (or a triggered stop leg) takes liquidity.

When no stop at least one tick from the entry meets the cap (fees alone above it, or a cap
smaller than one tick times the quantity) the solve raises `LossCapUnreachable` and the decision
skips `MAX_LOSS_UNREACHABLE`: it never opens with a stop that loses more than the cap. A
distance under one tick (tiny ATR) puts the stop one tick from the entry, within the cap, and
`sl_one_tick_floor` says so. A long stop at or below zero (a budget larger than the position's
value) is placed at one tick.

Take profit: solved so that the net profit after both legs' fees is at least `target`:
long `qty·(TP − entry) − qty·entry·f_in − qty·TP·f_out ≥ target`, i.e.
`TP ≥ (target/qty + entry·(1 + f_in)) / (1 − f_out)`; short
`TP ≤ (entry·(1 − f_in) − target/qty) / (1 + f_out)`. Fees are the instrument's taker fee on
entry and exit unless the bundle says maker (`brackets.entry_fee` / `exit_fee`): a Maker→Taker
entry may well be taker and a TAKE_PROFIT_MARKET exit always is, so taker is the safe
assumption. TP rounds *away* from the entry, then is checked in exact arithmetic and moved one
more tick if Decimal's 28-digit division left it a hair short. A short TP at or below zero is
`BRACKETS_INVALID`.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from tradekit.enums import Side
from tradekit.instrument import Instrument

_MAX_NUDGES = 4


class BracketError(Exception):
    pass


@dataclass(frozen=True, slots=True)
class Brackets:
    sl: Decimal
    tp: Decimal
    d: Decimal
    d_base: Decimal
    d_cap: Decimal
    loss_at_sl: Decimal
    target_net: Decimal
    net_at_tp: Decimal
    sl_one_tick_floor: bool


def net_profit(
    side: Side, entry: Decimal, exit_: Decimal, qty: Decimal, f_in: Decimal, f_out: Decimal
) -> Decimal:
    gross = (exit_ - entry) * qty if side is Side.BUY else (entry - exit_) * qty
    return gross - qty * entry * f_in - qty * exit_ * f_out


class LossCapUnreachable(BracketError):
    """No stop price on the tick, below a long / above a short entry, keeps the loss at the
    stop (fees included) within `max_loss`."""


def loss_at_stop(
    side: Side, entry: Decimal, sl: Decimal, qty: Decimal, f_in: Decimal, f_stop: Decimal
) -> Decimal:
    """The loss if the stop fills at `sl`: the price move plus both legs' fees."""
    return -net_profit(side, entry, sl, qty, f_in, f_stop)


def loss_cap_distance(
    side: Side, entry: Decimal, qty: Decimal, max_loss: Decimal, f_in: Decimal, f_stop: Decimal
) -> Decimal:
    """The largest stop distance whose loss, fees included, is `max_loss` (≤ 0: none is)."""
    if side is Side.BUY:
        return entry - (entry * (1 + f_in) - max_loss / qty) / (1 - f_stop)
    return (max_loss / qty + entry * (1 - f_in)) / (1 + f_stop) - entry


def stop_loss(
    inst: Instrument,
    side: Side,
    entry: Decimal,
    qty: Decimal,
    d: Decimal,
    max_loss: Decimal,
    f_in: Decimal,
    f_stop: Decimal,
) -> tuple[Decimal, bool]:
    tick = inst.tickSize
    if side is Side.BUY:
        nearest = inst.round_price(entry - tick, "up")
        if nearest <= 0:  # the entry is within one tick of zero: no stop can sit below it
            raise BracketError(f"no stop price on tick {tick} below the entry {entry}")
        sl = inst.exit_price(Side.BUY, entry - d) if d > 0 else nearest
        if sl <= 0:
            sl = tick
        floor = sl >= nearest
        sl = min(sl, nearest)
        for _ in range(_MAX_NUDGES):
            if loss_at_stop(side, entry, sl, qty, f_in, f_stop) <= max_loss or sl >= nearest:
                break
            sl += tick
    else:
        nearest = inst.round_price(entry + tick, "down")
        sl = inst.exit_price(Side.SELL, entry + d) if d > 0 else nearest
        floor = sl <= nearest
        sl = max(sl, nearest)
        for _ in range(_MAX_NUDGES):
            if loss_at_stop(side, entry, sl, qty, f_in, f_stop) <= max_loss or sl <= nearest:
                break
            sl -= tick
    loss = loss_at_stop(side, entry, sl, qty, f_in, f_stop)
    if loss > max_loss:
        raise LossCapUnreachable(
            f"no stop on tick {tick} keeps the loss within {max_loss} USDT (fees included): "
            f"the nearest, {sl}, loses {loss.quantize(Decimal('0.0001'))} for qty {qty}"
        )
    return sl, floor


def take_profit(
    inst: Instrument,
    side: Side,
    entry: Decimal,
    qty: Decimal,
    target: Decimal,
    f_in: Decimal,
    f_out: Decimal,
) -> tuple[Decimal, Decimal]:
    tick = inst.tickSize
    if side is Side.BUY:
        tp = inst.exit_price(Side.BUY, (target / qty + entry * (1 + f_in)) / (1 - f_out))
        step = tick
    else:
        tp = inst.exit_price(Side.SELL, (entry * (1 - f_in) - target / qty) / (1 + f_out))
        step = -tick
    net = net_profit(side, entry, tp, qty, f_in, f_out)
    for _ in range(_MAX_NUDGES):
        if net >= target:
            break
        tp += step
        net = net_profit(side, entry, tp, qty, f_in, f_out)
    if tp <= 0 or net < target:
        raise BracketError(f"no take-profit price reaches net {target} (short TP {tp})")
    return tp, net


def solve(
    inst: Instrument,
    side: Side,
    entry: Decimal,
    qty: Decimal,
    *,
    d_base: Decimal,
    max_loss: Decimal,
    target_net: Decimal,
    f_in: Decimal,
    f_out: Decimal,
    f_stop: Decimal | None = None,
) -> Brackets:
    """`f_out` is the take-profit exit's fee, `f_stop` the stop's (default `f_out`)."""
    fs = f_out if f_stop is None else f_stop
    d_cap = loss_cap_distance(side, entry, qty, max_loss, f_in, fs)
    d = d_base if d_base < d_cap else d_cap
    sl, floor = stop_loss(inst, side, entry, qty, d, max_loss, f_in, fs)
    tp, net = take_profit(inst, side, entry, qty, target_net, f_in, f_out)
    loss = loss_at_stop(side, entry, sl, qty, f_in, fs)
    return Brackets(sl, tp, d, d_base, d_cap, loss, target_net, net, floor)

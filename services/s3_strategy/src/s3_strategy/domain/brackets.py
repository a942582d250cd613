"""Step 6, SL/TP (spec §C3), solved in Decimal and rounded protectively by tradekit.Instrument.

Stop loss: `d = min(d_base, max_loss / qty)` where `d_base = S3_ATR_MULT · ATR` (or, for SPOT
with `sl_pct`, `sl_pct · entry`); long `SL = entry − d` rounded *up* to the tick (towards the
entry), short mirrored. Hence the loss at the stop, `|entry − SL| · qty`, never exceeds
`max_loss`. Two edges:

* the budgeted distance is under one tick (tiny ATR, large qty): the stop goes one tick from
  the entry (a stop at the entry would trigger at once); the loss may then exceed `max_loss` by
  less than `tick · qty`, and `sl_one_tick_floor` says so;
* a long stop at or below zero (a budget larger than the position's value) is placed at one
  tick: the whole position is within the loss budget; when even that is not below the entry
  (an entry under one tick) the decision is `BRACKETS_INVALID`.

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


def net_profit(side: Side, entry: Decimal, exit_: Decimal, qty: Decimal, f_in: Decimal,
               f_out: Decimal) -> Decimal:  # fmt: skip
    gross = (exit_ - entry) * qty if side is Side.BUY else (entry - exit_) * qty
    return gross - qty * entry * f_in - qty * exit_ * f_out


def stop_loss(
    inst: Instrument, side: Side, entry: Decimal, qty: Decimal, d: Decimal, max_loss: Decimal
) -> tuple[Decimal, bool]:
    tick = inst.tickSize
    floor = False
    if side is Side.BUY:
        sl = inst.stop_loss_price(Side.BUY, entry - d)
        for _ in range(_MAX_NUDGES):
            if (entry - sl) * qty <= max_loss:
                break
            sl += tick
        if sl >= entry:
            sl, floor = inst.round_price(entry - tick, "up"), True
        if sl <= 0:
            sl = tick
        if sl >= entry:  # the entry is within one tick of zero: no stop can sit below it
            raise BracketError(f"no stop price on tick {tick} below the entry {entry}")
    else:
        sl = inst.stop_loss_price(Side.SELL, entry + d)
        for _ in range(_MAX_NUDGES):
            if (sl - entry) * qty <= max_loss:
                break
            sl -= tick
        if sl <= entry:
            sl, floor = inst.round_price(entry + tick, "down"), True
    return sl, floor


def take_profit(
    inst: Instrument, side: Side, entry: Decimal, qty: Decimal, target: Decimal,
    f_in: Decimal, f_out: Decimal,
) -> tuple[Decimal, Decimal]:  # fmt: skip
    tick = inst.tickSize
    if side is Side.BUY:
        tp = inst.take_profit_price(Side.BUY, (target / qty + entry * (1 + f_in)) / (1 - f_out))
        step = tick
    else:
        tp = inst.take_profit_price(Side.SELL, (entry * (1 - f_in) - target / qty) / (1 + f_out))
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
) -> Brackets:
    d_cap = max_loss / qty
    d = d_base if d_base < d_cap else d_cap
    sl, floor = stop_loss(inst, side, entry, qty, d, max_loss)
    tp, net = take_profit(inst, side, entry, qty, target_net, f_in, f_out)
    loss = (entry - sl) * qty if side is Side.BUY else (sl - entry) * qty
    return Brackets(sl, tp, d, d_base, d_cap, loss, target_net, net, floor)

"""TWAP slicing: how a quantity is cut and when each slice goes.

* `split_quantity`: `slices` near-equal parts on the instrument's step (the odd steps go to the
  first slices); if the smallest part would be below minNotional the quantity is re-split into
  fewer slices, so no slice is ever below it (the remainder is merged, never dropped);
* `schedule`: slice i is due at `start + i·gap ± jitter·gap` (slice 0 at `start`), the jitter
  drawn from a generator seeded by the parent's client order id: a restart recomputes the same
  times, and the times are persisted anyway.
"""

from __future__ import annotations

import random
from decimal import Decimal

from tradekit.instrument import Instrument
from tradekit.routing import TwapBand

# An execution's slicing (persisted in its state): a route band's, or the intent's within them.
TwapPlan = TwapBand


def split_quantity(total: Decimal, slices: int, inst: Instrument, price: Decimal) -> list[Decimal]:
    """Cut `total` (on step) into at most `slices` parts, none below the instrument's minimum."""
    step = inst.stepSize
    units = int(total / step)
    if units <= 0:
        return [total]
    n = max(1, min(slices, units))
    while True:
        base, extra = divmod(units, n)
        qtys = [(base + (1 if i < extra else 0)) * step for i in range(n)]
        smallest = qtys[-1]
        if n == 1 or (smallest * price >= inst.minNotional and smallest >= inst.minQty):
            return [q.quantize(step) if step < 1 else q for q in qtys]
        n -= 1


def schedule(
    *, start_ms: int, slices: int, gap_ms: int, jitter_pct: Decimal, seed: str
) -> list[int]:
    rng = random.Random(f"twap:{seed}")
    jitter = float(jitter_pct) * gap_ms
    due = [start_ms]
    for i in range(1, slices):
        offset = round(rng.uniform(-jitter, jitter)) if jitter else 0
        due.append(max(due[-1], start_ms + i * gap_ms + offset))
    return due

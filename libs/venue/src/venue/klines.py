"""Candlesticks (klines) of the simulated market: `GET /api/v3/klines` and MEXC's equivalent.

One-minute bars are built from every market step (price: the step's last print, else the mid;
volume: the printed quantity) and kept for `max_bars` minutes per symbol; longer intervals are
aggregated from them on request, aligned on the epoch like Binance's (a 5m bar opens at :00,
:05, …). The newest bar is the one still forming, as on a real venue.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, replace
from decimal import Decimal

from tradekit.money import ZERO

MINUTE_MS = 60_000
INTERVALS_MS: dict[str, int] = {
    **{f"{n}m": n * MINUTE_MS for n in (1, 3, 5, 15, 30)},
    **{f"{n}h": n * 60 * MINUTE_MS for n in (1, 2, 4)},
    "1d": 1440 * MINUTE_MS,
}


@dataclass(slots=True)
class Bar:
    open_time: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal = ZERO
    quote_volume: Decimal = ZERO
    trades: int = 0

    def merge(self, later: Bar) -> None:
        """Extend this bar by `later` (a market step, or a shorter bar of this one's interval)."""
        self.high = max(self.high, later.high)
        self.low = min(self.low, later.low)
        self.close = later.close
        self.volume += later.volume
        self.quote_volume += later.quote_volume
        self.trades += later.trades


class KlineBook:
    def __init__(self, max_bars: int = 7 * 1440) -> None:
        self.max_bars = max_bars
        self._bars: dict[str, deque[Bar]] = {}

    def record(
        self, symbol: str, ts: int, price: Decimal, qty: Decimal = ZERO, count: int = 0
    ) -> None:
        bars = self._bars.setdefault(symbol, deque(maxlen=self.max_bars))
        start = ts // MINUTE_MS * MINUTE_MS
        step = Bar(start, price, price, price, price, ZERO + qty, ZERO + qty * price, count)
        if bars and bars[-1].open_time == start:
            bars[-1].merge(step)
        elif not bars or bars[-1].open_time < start:
            bars.append(step)

    def klines(
        self,
        symbol: str,
        interval: str,
        *,
        limit: int = 500,
        start_ms: int | None = None,
        end_ms: int | None = None,
    ) -> list[Bar]:
        """Bars of `interval`, oldest first, the last `limit` within [start_ms, end_ms]."""
        size = INTERVALS_MS[interval]
        out: list[Bar] = []
        for b in self._bars.get(symbol, ()):
            start = b.open_time // size * size
            if out and out[-1].open_time == start:
                out[-1].merge(b)
            else:
                out.append(replace(b, open_time=start))  # a copy: merge() extends it
        if start_ms is not None:
            out = [b for b in out if b.open_time >= start_ms]
        if end_ms is not None:
            out = [b for b in out if b.open_time <= end_ms]
        if start_ms is not None and end_ms is None:
            return out[:limit]
        return out[-limit:]

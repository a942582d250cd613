"""Market-data features S3's gates and rules read from ``feat:last:{symbol}``: the one
definition, computed by the market-data feeder (``md_feeder``) and checked by the tests.

Pure functions over books and bars, plus a small stateful :class:`FeatureCalculator` that
ingests book ticks, trades (or ready 1-minute bars) and funding, and gives the features of a
:class:`tradekit.market.FeatureSnapshot` (``{"symbol", "ts", <name>: float}``) as a flat dict.

Definitions (all prices in quote currency, USDT):

* ``mid`` = (best bid + best ask) / 2; ``spread_bps`` = (ask − bid) / mid × 10⁴.
* ``depth_top1_usdt`` = **min** of the best bid's and the best ask's notional (price × qty). The
  minimum because the gate asks "can a top-of-book order of this size trade without walking
  the book?" and the decision may go either way: the thinner side binds.
* ``depth_top{N}_usdt`` = min over the two sides of the summed notional of the first N levels
  (same reasoning); ``depth_top{N}_bid_usdt`` / ``_ask_usdt`` give each side.
* ``funding_rate`` (futures): the venue's current funding rate, when known.
* ``atr_{P}`` = Wilder's ATR over P closed 1-minute bars (seeded by the mean of the first P true
  ranges, then ``ATR = (ATR·(P−1) + TR) / P``).
* ``rv_{W}m`` = realised volatility: standard deviation of the last W 1-minute log returns,
  annualised (× √525 600).
* ``rv_pctile_30d`` = percentile rank as a fraction (0–1, as spec §G's rules compare it) of the
  current ``rv`` among the ``rv`` values of every closed 1-minute bar of the last 30 days. With
  a shorter history it ranks against what exists (``rv_history_minutes`` says how much), and it
  is omitted until there are at least 2 values to rank.
* ``ma7_5m`` / ``ma25_5m`` = simple moving averages of the closes of the last 7 / 25 *closed*
  5-minute bars (closed bars only, so a value never repaints within a bar).
* ``ts`` = epoch ms of the latest input the snapshot reflects.

A feature that cannot be computed yet (not enough bars) is absent from the dict, never 0.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from tradekit.money import BPS, ZERO

Level = tuple[Decimal, Decimal]

MINUTE_MS = 60_000
MINUTES_PER_YEAR = 525_600


@dataclass(frozen=True, slots=True)
class Bar:
    open_ts: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal = ZERO


# ---- pure functions --------------------------------------------------------------------------
def mid(bid: Decimal, ask: Decimal) -> Decimal:
    return (bid + ask) / 2


def spread_bps(bid: Decimal, ask: Decimal) -> Decimal:
    return (ask - bid) / mid(bid, ask) * BPS


def side_depth_usdt(levels: Sequence[Level], n: int) -> Decimal:
    """Summed notional of the first `n` levels of one side (best first)."""
    return sum((p * q for p, q in levels[:n]), ZERO)


def depth_top1_usdt(bids: Sequence[Level], asks: Sequence[Level]) -> Decimal:
    """min(best bid notional, best ask notional): the thinner side binds."""
    return min(side_depth_usdt(bids, 1), side_depth_usdt(asks, 1))


def log_returns(closes: Sequence[Decimal]) -> list[float]:
    return [math.log(float(b) / float(a)) for a, b in itertools.pairwise(closes) if a > 0]


def realized_vol(closes: Sequence[Decimal]) -> float | None:
    """Annualised sample standard deviation of log returns; None with fewer than 2 returns."""
    rets = log_returns(closes)
    if len(rets) < 2:
        return None
    mean = sum(rets) / len(rets)
    var = sum((r - mean) ** 2 for r in rets) / (len(rets) - 1)
    return math.sqrt(var) * math.sqrt(MINUTES_PER_YEAR)


def percentile_rank(history: Sequence[float], value: float) -> float:
    """Share (0–1) of `history` at or below `value` (`history` sorted ascending)."""
    if not history:
        raise ValueError("empty history")
    return bisect.bisect_right(history, value) / len(history)


def sma(values: Sequence[Decimal], n: int) -> Decimal | None:
    if len(values) < n:
        return None
    return sum(values[-n:], ZERO) / n


def aggregate(bars: Sequence[Bar], minutes: int) -> list[Bar]:
    """Group 1-minute bars into `minutes`-minute bars aligned on epoch multiples (complete or
    not: callers decide which to keep)."""
    out: list[Bar] = []
    span = minutes * MINUTE_MS
    for b in bars:
        start = b.open_ts // span * span
        if out and out[-1].open_ts == start:
            last = out[-1]
            out[-1] = Bar(
                start,
                last.open,
                max(last.high, b.high),
                min(last.low, b.low),
                b.close,
                last.volume + b.volume,
            )
        else:
            out.append(Bar(start, b.open, b.high, b.low, b.close, b.volume))
    return out


# ---- stateful calculator -------------------------------------------------------------------
class FeatureCalculator:
    """Ingests ticks/trades/bars for one symbol; `values()` gives the flat feature dict."""

    def __init__(
        self,
        symbol: str,
        *,
        atr_period: int = 14,
        rv_window: int = 60,
        depth_levels: int = 5,
        ma_fast: int = 7,
        ma_slow: int = 25,
    ) -> None:
        self.symbol = symbol
        self.atr_period = atr_period
        self.rv_window = rv_window
        self.depth_levels = depth_levels
        self.ma_fast, self.ma_slow = ma_fast, ma_slow
        self._history_minutes = 30 * 24 * 60  # rv_pctile_30d ranks against 30 days
        self._bars: deque[Bar] = deque(maxlen=max(atr_period * 10, rv_window + 1, ma_slow * 5 + 5))
        self._current: Bar | None = None
        self._bids: tuple[Level, ...] = ()
        self._asks: tuple[Level, ...] = ()
        self._funding: Decimal | None = None
        self._ts = 0
        self._atr: Decimal | None = None
        self._atr_seed: list[Decimal] = []
        self._prev_close: Decimal | None = None
        # rv history: time-ordered (for expiry) and sorted (for ranking) views.
        self._rv_fifo: deque[tuple[int, float]] = deque()
        self._rv_sorted: list[float] = []
        self._rv: float | None = None

    # ---- inputs -------------------------------------------------------------------------------
    def on_book(self, ts: int, bids: Sequence[Level], asks: Sequence[Level]) -> None:
        self._bids, self._asks = tuple(bids), tuple(asks)
        self._touch(ts)

    def on_funding(self, ts: int, rate: Decimal) -> None:
        self._funding = rate
        self._touch(ts)

    def on_trade(self, ts: int, price: Decimal, qty: Decimal) -> None:
        """A print: updates the forming 1-minute bar, closing the previous one if needed."""
        self._roll(ts)
        start = ts // MINUTE_MS * MINUTE_MS
        c = self._current
        if c is None:
            self._current = Bar(start, price, price, price, price, qty)
        else:
            self._current = Bar(
                c.open_ts, c.open, max(c.high, price), min(c.low, price), price, c.volume + qty
            )
        self._touch(ts)

    def on_bar(self, bar: Bar) -> None:
        """A closed 1-minute bar (history backfill or an external kline feed)."""
        if self._current is not None and self._current.open_ts <= bar.open_ts:
            self._close(self._current)
            self._current = None
        self._close(bar)
        self._touch(bar.open_ts + MINUTE_MS - 1)

    def _touch(self, ts: int) -> None:
        self._ts = max(self._ts, ts)
        self._roll(ts)

    def _roll(self, ts: int) -> None:
        if self._current is not None and ts >= self._current.open_ts + MINUTE_MS:
            self._close(self._current)
            self._current = None

    def _close(self, bar: Bar) -> None:
        if self._bars and bar.open_ts <= self._bars[-1].open_ts:
            return  # out of order or duplicate: bars only move forward
        tr = bar.high - bar.low
        if self._prev_close is not None:
            tr = max(tr, abs(bar.high - self._prev_close), abs(bar.low - self._prev_close))
        if self._atr is None:
            self._atr_seed.append(tr)
            if len(self._atr_seed) == self.atr_period:
                self._atr = sum(self._atr_seed, ZERO) / self.atr_period
        else:
            self._atr = (self._atr * (self.atr_period - 1) + tr) / self.atr_period
        self._prev_close = bar.close
        self._bars.append(bar)
        closes = [b.close for b in list(self._bars)[-(self.rv_window + 1) :]]
        rv = realized_vol(closes)
        if rv is not None:
            self._rv = rv
            self._rv_fifo.append((bar.open_ts, rv))
            bisect.insort(self._rv_sorted, rv)
            horizon = bar.open_ts - self._history_minutes * MINUTE_MS
            while self._rv_fifo and self._rv_fifo[0][0] <= horizon:
                _, old = self._rv_fifo.popleft()
                del self._rv_sorted[bisect.bisect_left(self._rv_sorted, old)]

    # ---- output -------------------------------------------------------------------------------
    def bars_1m(self) -> list[Bar]:
        return list(self._bars)

    def values(self) -> dict[str, float]:
        """The features alone (name → value); absent when not computable yet."""
        v: dict[str, float] = {}
        if self._bids and self._asks:
            bid, ask = self._bids[0][0], self._asks[0][0]
            v["mid"] = float(mid(bid, ask))
            v["spread_bps"] = float(spread_bps(bid, ask))
            v["depth_top1_usdt"] = float(depth_top1_usdt(self._bids, self._asks))
            n = self.depth_levels
            bid_n = side_depth_usdt(self._bids, n)
            ask_n = side_depth_usdt(self._asks, n)
            v[f"depth_top{n}_usdt"] = float(min(bid_n, ask_n))
            v[f"depth_top{n}_bid_usdt"] = float(bid_n)
            v[f"depth_top{n}_ask_usdt"] = float(ask_n)
        if self._funding is not None:
            v["funding_rate"] = float(self._funding)
        if self._atr is not None:
            v[f"atr_{self.atr_period}"] = float(self._atr)
        if self._rv is not None:
            v[f"rv_{self.rv_window}m"] = self._rv
            v["rv_history_minutes"] = float(len(self._rv_fifo))
            if len(self._rv_sorted) >= 2:
                v["rv_pctile_30d"] = percentile_rank(self._rv_sorted, self._rv)
        # Closed 5-minute bars only (time has reached their end): a value never repaints.
        span = 5 * MINUTE_MS
        closes = [b.close for b in aggregate(self._bars, 5) if b.open_ts + span <= self._ts + 1]
        for n in (self.ma_fast, self.ma_slow):
            ma = sma(closes, n)
            if ma is not None:
                v[f"ma{n}_5m"] = float(ma)
        if self._bars:
            v["last"] = float(self._bars[-1].close)
        return v

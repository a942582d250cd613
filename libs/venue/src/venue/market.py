"""Price processes that feed the venue's books: replayed real data and a seeded synthetic one.

Every process answers ``step(ts, dt_ms) -> MarketUpdate``: a full L2 book (best first) after
``dt_ms`` more milliseconds of market, and the trade prints that happened meanwhile. The venue
replaces its market levels with that book and matches our resting and conditional orders
against the prints and the new prices (see :mod:`venue.engine`).

* :class:`ReplayProcess` replays recorded Binance BTCUSDT quotes and trades (copied to
  ``fixtures/market/``), rescaled to a target price level (``× target / first_mid``) and looped
  seamlessly. The depth below the top of book has the shape of a recorded L2 snapshot.
* :class:`SyntheticProcess` is a seeded log-price random walk with regimes — calm, trending,
  wide_spread, thin_book, gap — each producing a 20-level book with plausible spread and depth
  and a Poisson stream of trade prints at the touch.
* :class:`MarketSimulator` steps all symbols together and derives the futures mark price (an
  exponentially smoothed mid) and a small, slowly varying funding rate per symbol.

Internally prices evolve as floats (they are a model, not money); everything handed to the
engine is a Decimal on the instrument's tick and step.
"""

from __future__ import annotations

import csv
import math
import random
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Protocol

from tradekit.enums import Side
from tradekit.instrument import Instrument, RoundMode, round_to_increment
from tradekit.money import ZERO
from venue.book import Level
from venue.models import TradePrint

EIGHT_DP = Decimal("0.00000001")
BOOK_LEVELS = 20  # levels per side of every process's book


def to_tick(value: float, tick: Decimal, mode: RoundMode = "nearest") -> Decimal:
    return round_to_increment(Decimal(repr(value)), tick, mode)


def to_qty(value: float, step: Decimal) -> Decimal:
    """A positive quantity on the step (at least one step: a level never shows zero)."""
    q = round_to_increment(Decimal(repr(max(value, 0.0))), step, "down")
    return q if q > 0 else step


@dataclass(frozen=True, slots=True)
class MarketUpdate:
    ts: int
    bids: list[Level]
    asks: list[Level]
    prints: list[TradePrint] = field(default_factory=list)

    @property
    def mid(self) -> Decimal | None:
        if not self.bids or not self.asks:
            return None
        return (self.bids[0][0] + self.asks[0][0]) / 2

    @property
    def last(self) -> Decimal | None:
        return self.prints[-1].price if self.prints else None


class PriceProcess(Protocol):
    symbol: str

    def step(self, ts: int, dt_ms: int) -> MarketUpdate: ...


# ---- synthetic -------------------------------------------------------------------------------
class Regime(StrEnum):
    CALM = "calm"
    TRENDING = "trending"
    WIDE_SPREAD = "wide_spread"
    THIN_BOOK = "thin_book"
    GAP = "gap"


@dataclass(frozen=True, slots=True)
class RegimeParams:
    vol_bps: float  # per sqrt(second)
    drift_bps: float  # per second, in the trend direction
    spread_bps: float  # mean spread
    level_gap_bps: float  # distance between consecutive levels
    depth_mult: float  # × the symbol's normal per-level depth
    trades_per_s: float
    gap_prob: float = 0.0  # per step
    gap_bps: float = 0.0


REGIMES: dict[Regime, RegimeParams] = {
    Regime.CALM: RegimeParams(1.0, 0.0, 0.6, 0.6, 1.0, 4.0),
    Regime.TRENDING: RegimeParams(1.5, 0.4, 1.0, 0.8, 0.8, 8.0),
    Regime.WIDE_SPREAD: RegimeParams(2.5, 0.0, 30.0, 6.0, 0.4, 1.0),
    Regime.THIN_BOOK: RegimeParams(2.0, 0.0, 4.0, 4.0, 0.05, 1.0),
    Regime.GAP: RegimeParams(1.0, 0.0, 2.0, 1.0, 0.7, 3.0, gap_prob=0.02, gap_bps=150.0),
}


class SyntheticProcess:
    """Seeded random walk for one symbol (same seed ⇒ same path, books and prints)."""

    def __init__(
        self,
        inst: Instrument,
        *,
        start_price: Decimal,
        level_notional: Decimal,
        seed: int = 0,
        regime: Regime = Regime.CALM,
    ) -> None:
        self.symbol = inst.symbol
        self.inst = inst
        self.regime = regime
        self._rng = random.Random(f"synthetic:{seed}:{inst.symbol}")
        self._mid = float(start_price)
        self._level_qty = float(level_notional / start_price)

    def step(self, ts: int, dt_ms: int) -> MarketUpdate:
        p = REGIMES[self.regime]
        rng = self._rng
        dt_s = max(dt_ms, 1) / 1000
        ret_bps = p.drift_bps * dt_s + p.vol_bps * math.sqrt(dt_s) * rng.gauss(0, 1)
        gapped = rng.random() < p.gap_prob
        if gapped:
            ret_bps += rng.choice((-1, 1)) * p.gap_bps * (0.5 + rng.random())
        self._mid *= math.exp(ret_bps / 10_000)
        tick = self.inst.tickSize
        spread = max(float(tick), self._mid * p.spread_bps / 10_000 * (0.5 + rng.random()))
        best_bid = to_tick(self._mid - spread / 2, tick, "down")
        best_ask = max(best_bid + tick, to_tick(self._mid + spread / 2, tick, "up"))
        gap = max(tick, to_tick(self._mid * p.level_gap_bps / 10_000, tick))
        base_qty = self._level_qty * p.depth_mult

        def side(best: Decimal, sign: int) -> list[Level]:
            out: list[Level] = []
            for i in range(BOOK_LEVELS):
                price = best + sign * gap * i
                if price <= 0:
                    break
                qty = base_qty * (1 + 0.15 * i) * rng.lognormvariate(0, 0.5)
                out.append((price, to_qty(qty, self.inst.stepSize)))
            return out

        bids, asks = side(best_bid, -1), side(best_ask, 1)
        prints: list[TradePrint] = []
        # A gap is a jump with no trading in between: stops then fill at the new book. Otherwise
        # a Poisson count of prints (Knuth's method: fine for our small rates, one RNG stream).
        lam = 0.0 if gapped else p.trades_per_s * dt_s
        n = 0
        if lam > 0:
            limit, prod = math.exp(-min(lam, 30.0)), rng.random()
            while prod > limit:
                n += 1
                prod *= rng.random()
        up_bias = 0.5 + max(-0.2, min(0.2, ret_bps / 10))
        for k in range(min(n, 50)):
            aggressor = Side.BUY if rng.random() < up_bias else Side.SELL
            price = best_ask if aggressor is Side.BUY else best_bid
            qty = Decimal(repr(rng.expovariate(1.0) * base_qty * 0.2)).quantize(EIGHT_DP)
            if qty > 0:
                prints.append(
                    TradePrint(
                        ts=ts - dt_ms + (k + 1) * dt_ms // (n + 1),
                        price=price,
                        qty=qty,
                        aggressor=aggressor,
                    )
                )
        return MarketUpdate(ts=ts, bids=bids, asks=asks, prints=prints)


# ---- replay ----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class RecordedMarket:
    """Recorded top of book, tape and depth shape (see fixtures/market/README.md)."""

    quotes: list[tuple[int, float, float, float, float]]  # ts, bid, bid_qty, ask, ask_qty
    trades: list[tuple[int, float, float, bool]]  # ts, price, qty, buyer_maker
    depth_profile: list[tuple[float, float]]  # (bps from best, qty), best first

    @property
    def first_mid(self) -> float:
        _, bid, _, ask, _ = self.quotes[0]
        return (bid + ask) / 2


def load_recorded_btcusdt() -> RecordedMarket:
    """Read the recorded CSVs from `fixtures/market/` of the repository this package lives in,
    found by walking up (the only file I/O of the package; callers do it once at start)."""
    for parent in Path(__file__).resolve().parents:
        d = parent / "fixtures" / "market"
        if (d / "btcusdt-quotes.csv").is_file():
            break
    else:
        raise FileNotFoundError("fixtures/market/ with the recorded BTCUSDT data was not found")
    with (d / "btcusdt-quotes.csv").open(newline="") as fh:
        quotes = [
            (
                int(r["ts_ms"]),
                float(r["bid"]),
                float(r["bid_size"]),
                float(r["ask"]),
                float(r["ask_size"]),
            )
            for r in csv.DictReader(fh)
        ]
    with (d / "btcusdt-trades.csv").open(newline="") as fh:
        trades = [
            (int(r["ts_ms"]), float(r["price"]), float(r["quantity"]), r["buyer_maker"] == "True")
            for r in csv.DictReader(fh)
        ]
    with (d / "btcusdt-depth-snap.csv").open(newline="") as fh:
        bids = sorted(
            ((float(r["price"]), float(r["qty"])) for r in csv.DictReader(fh) if r["side"] == "b"),
            reverse=True,
        )
    best = bids[0][0]
    profile = [((best - p) / best * 10_000, q) for p, q in bids if q > 0]
    quotes.sort(key=lambda q: q[0])
    trades.sort(key=lambda t: t[0])
    return RecordedMarket(quotes=quotes, trades=trades, depth_profile=profile)


class ReplayProcess:
    """Replays a :class:`RecordedMarket` rescaled to `target_price`, looping seamlessly.

    The recorded top-of-book sizes are often dust (fragmented 2021 spot flow), so the top level
    shows at least the recorded snapshot's top quantity; deeper levels follow the snapshot's
    shape (distance in bps, quantity), mirrored for the ask side.

    Looping: odd passes play the recording *reflected* around its first mid (``p' = M0²/p``,
    bid/ask swapped, aggressors flipped) and scaled to start where the previous pass ended. So
    the path is continuous at every seam and stays bounded (a plain loop would compound the
    recording's drift pass after pass).
    """

    def __init__(
        self,
        inst: Instrument,
        recorded: RecordedMarket,
        *,
        target_price: Decimal,
        start_ts: int,
    ) -> None:
        self.symbol = inst.symbol
        self.inst = inst
        self.rec = recorded
        self._start = start_ts
        self._scale0 = float(target_price) / recorded.first_mid
        _, bid, _, ask, _ = recorded.quotes[-1]
        self._loop_ratio = (bid + ask) / 2 / recorded.first_mid
        t0 = min(recorded.quotes[0][0], recorded.trades[0][0])
        t1 = max(recorded.quotes[-1][0], recorded.trades[-1][0])
        self._t0 = t0
        self._duration = t1 - t0 + 1
        self._elapsed = -1  # replay time already emitted (ms since start)
        self._q = 0  # cursor into quotes
        self._t = 0  # cursor into trades
        self._loop = 0

    def _price(self, p: float, loop: int) -> float:
        m0 = self.rec.first_mid
        return self._scale0 * self._loop_ratio * (m0 * m0 / p) if loop % 2 else self._scale0 * p

    def step(self, ts: int, dt_ms: int) -> MarketUpdate:
        target = max(ts - self._start, 0)
        prints: list[TradePrint] = []
        tick, step = self.inst.tickSize, self.inst.stepSize
        quote = self.rec.quotes[max(self._q - 1, 0)]
        quote_loop = self._loop
        while self._elapsed < target:
            base = self._loop * self._duration - self._t0
            # Emit recorded events up to `target` on this pass.
            while self._t < len(self.rec.trades) and base + self.rec.trades[self._t][0] <= target:
                t_ts, price, qty, buyer_maker = self.rec.trades[self._t]
                prints.append(
                    TradePrint(
                        ts=self._start + base + t_ts,
                        price=to_tick(self._price(price, self._loop), tick),
                        qty=Decimal(repr(qty)).quantize(EIGHT_DP),
                        # buyer_maker ⇒ the seller hit the bid; a reflected pass flips it.
                        aggressor=Side.SELL if buyer_maker != (self._loop % 2 == 1) else Side.BUY,
                    )
                )
                self._t += 1
            while self._q < len(self.rec.quotes) and base + self.rec.quotes[self._q][0] <= target:
                quote, quote_loop = self.rec.quotes[self._q], self._loop
                self._q += 1
            if base + self._t0 + self._duration <= target:
                self._loop, self._q, self._t = self._loop + 1, 0, 0  # next pass
                continue
            self._elapsed = target
        del prints[:-200]  # a huge jump would otherwise flood the engine with ancient prints
        _, bid, bid_qty, ask, ask_qty = quote
        if quote_loop % 2:  # reflected: the recorded ask becomes the bid
            bid, bid_qty, ask, ask_qty = ask, ask_qty, bid, bid_qty
        best_bid = to_tick(self._price(bid, quote_loop), tick, "down")
        best_ask = max(best_bid + tick, to_tick(self._price(ask, quote_loop), tick, "up"))
        prof = self.rec.depth_profile

        def side(best: Decimal, top_qty: float, sign: int) -> list[Level]:
            agg: dict[Decimal, Decimal] = {best: to_qty(max(top_qty, prof[0][1]), step)}
            for off_bps, q in prof[1:]:
                price = to_tick(
                    float(best) * (1 + sign * off_bps / 10_000), tick, "up" if sign > 0 else "down"
                )
                if price == best:
                    price = best + sign * tick
                agg[price] = agg.get(price, ZERO) + to_qty(q, step)
            ordered = sorted(agg.items(), key=lambda kv: kv[0], reverse=sign < 0)
            return ordered[:BOOK_LEVELS]

        return MarketUpdate(
            ts=ts, bids=side(best_bid, bid_qty, -1), asks=side(best_ask, ask_qty, 1), prints=prints
        )


# ---- all symbols -----------------------------------------------------------------------------
@dataclass(slots=True)
class _SymbolState:
    mark: Decimal | None = None
    funding_rate: Decimal = Decimal("0.0001")


class MarketSimulator:
    """Steps every symbol's process together; keeps mark prices and funding rates.

    Mark price = exponentially smoothed mid (``mark += α·(mid − mark)``, α per step), which
    lags fast moves like Binance's mark (an index + basis average) does. The funding rate is a
    mean-reverting walk around the 0.01% baseline, clamped to ±0.375%.
    """

    BASE_FUNDING = 0.0001
    MARK_ALPHA = Decimal("0.3")

    def __init__(self, *, step_ms: int = 1_000, seed: int = 0) -> None:
        if step_ms <= 0:
            raise ValueError("step_ms must be positive")
        self.step_ms = step_ms
        self.processes: dict[str, PriceProcess] = {}
        self._rng = random.Random(f"funding:{seed}")
        self._state: dict[str, _SymbolState] = {}

    def add(self, process: PriceProcess) -> None:
        self.processes[process.symbol] = process

    def state(self, symbol: str) -> _SymbolState:
        return self._state.setdefault(symbol, _SymbolState())

    def funding_rate(self, symbol: str) -> Decimal:
        return self.state(symbol).funding_rate

    def step(self, ts: int, dt_ms: int) -> dict[str, MarketUpdate]:
        out: dict[str, MarketUpdate] = {}
        for symbol in sorted(self.processes):
            upd = self.processes[symbol].step(ts, dt_ms)
            st = self.state(symbol)
            mid = upd.mid
            if mid is not None:
                st.mark = (
                    mid if st.mark is None else (st.mark + self.MARK_ALPHA * (mid - st.mark))
                ).quantize(EIGHT_DP)
            # Funding drifts slowly: a 1-minute-scaled shock, pulled back to the baseline.
            k = min(dt_ms / 60_000, 1.0)
            rate = float(st.funding_rate)
            shock = self._rng.gauss(0, 0.00002) * math.sqrt(k)
            rate += 0.05 * k * (self.BASE_FUNDING - rate) + shock
            st.funding_rate = Decimal(repr(max(-0.00375, min(0.00375, rate)))).quantize(EIGHT_DP)
            out[symbol] = upd
        return out

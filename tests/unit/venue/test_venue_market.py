"""Price processes (replay and synthetic regimes), the default venue, time and latency."""

from __future__ import annotations

import itertools
import statistics
from decimal import Decimal

import pytest

from svckit.clock import ManualClock
from tradekit.enums import Market, OrderStatus, OrderType, Side
from tradekit.instrument import Instrument
from venue.defaults import DEFAULT_INSTRUMENTS, default_venue
from venue.latency import LatencyModel
from venue.market import (
    Regime,
    ReplayProcess,
    SyntheticProcess,
    load_recorded_btcusdt,
)
from venue.models import BookView

D = Decimal
ETH = next(i for i in DEFAULT_INSTRUMENTS if i.symbol == "ETHUSDT")
BTC = next(i for i in DEFAULT_INSTRUMENTS if i.symbol == "BTCUSDT")


def book_mid(view: BookView) -> Decimal:
    return (view.bids[0][0] + view.asks[0][0]) / 2


def synth(inst: Instrument = ETH, seed: int = 1, regime: Regime = Regime.CALM) -> SyntheticProcess:
    return SyntheticProcess(
        inst, start_price=D("3400"), level_notional=D("80000"), seed=seed, regime=regime
    )


def run(proc: SyntheticProcess, steps: int = 200, dt: int = 1_000):
    return [proc.step(1_000 * (i + 1), dt) for i in range(steps)]


def test_synthetic_with_same_seed_produces_identical_books_and_prints() -> None:
    a, b, c = run(synth(seed=5)), run(synth(seed=5)), run(synth(seed=6))
    assert a == b
    assert a != c


@pytest.mark.parametrize("regime", list(Regime))
def test_synthetic_with_any_regime_produces_full_uncrossed_book(regime: Regime) -> None:
    for upd in run(synth(regime=regime), steps=50):
        assert len(upd.bids) == 20
        assert len(upd.asks) == 20
        assert upd.bids[0][0] < upd.asks[0][0]
        assert [p for p, _ in upd.bids] == sorted((p for p, _ in upd.bids), reverse=True)
        assert all(q > 0 for _, q in upd.bids + upd.asks)


def spread_bps(upd) -> float:
    return float((upd.asks[0][0] - upd.bids[0][0]) / upd.mid * 10_000)


def top_depth(upd) -> float:
    return float(upd.bids[0][1] * upd.bids[0][0])


def test_wide_spread_and_thin_book_regimes_with_same_seed_differ_from_calm_as_named() -> None:
    calm = run(synth(regime=Regime.CALM))
    wide = run(synth(regime=Regime.WIDE_SPREAD))
    thin = run(synth(regime=Regime.THIN_BOOK))
    assert statistics.mean(map(spread_bps, wide)) > 10 * statistics.mean(map(spread_bps, calm))
    assert statistics.mean(map(top_depth, thin)) < statistics.mean(map(top_depth, calm)) / 5


def test_gap_regime_with_many_steps_jumps_without_prints() -> None:
    updates = run(synth(regime=Regime.GAP), steps=400)
    jumps = [
        (prev, cur)
        for prev, cur in itertools.pairwise(updates)
        if abs(float(cur.mid / prev.mid) - 1) > 0.005
    ]
    assert jumps
    assert all(cur.prints == [] for _, cur in jumps)


def test_trending_regime_with_up_trend_drifts_up() -> None:
    proc = synth(regime=Regime.TRENDING)
    updates = run(proc, steps=1_800)
    assert updates[-1].mid > D("3400") * D("1.03")  # 0.4 bp/s over 30 min ≈ +7%


def test_replay_with_target_price_starts_at_target_and_prints_trades() -> None:
    rec = load_recorded_btcusdt()
    proc = ReplayProcess(BTC, rec, target_price=D("65000"), start_ts=0)
    first = proc.step(0, 1_000)
    assert first.mid is not None
    assert abs(first.mid - D("65000")) < D("10")
    later = [proc.step(t, 1_000) for t in range(1_000, 20_000, 1_000)]
    assert sum(len(u.prints) for u in later) > 100
    assert all(BTC.is_on_tick(pr.price) for u in later for pr in u.prints)


def test_replay_with_several_loops_stays_continuous_and_bounded() -> None:
    proc = ReplayProcess(BTC, load_recorded_btcusdt(), target_price=D("65000"), start_ts=0)
    mids = [proc.step(t, 500).mid for t in range(0, 400_000, 500)]  # ~9 passes
    assert all(m is not None for m in mids)
    steps = [abs(float(b / a) - 1) for a, b in itertools.pairwise(mids) if a and b]
    assert max(steps) < 0.001  # no seam jump (the recording's own moves are far smaller)
    assert all(D("64500") < m < D("65500") for m in mids if m is not None)


def test_default_venue_with_seed_prices_symbols_at_their_levels_and_funds_accounts() -> None:
    venue = default_venue(seed=2)
    mids = {s: book_mid(venue.book(Market.SPOT, s, 5)) for s in ("BTCUSDT", "ETHUSDT", "QRLUSDT")}
    assert abs(mids["BTCUSDT"] / D("65000") - 1) < D("0.002")
    assert abs(mids["ETHUSDT"] / D("3400") - 1) < D("0.002")
    assert abs(mids["QRLUSDT"] / D("0.5") - 1) < D("0.002")
    assert venue.balances()["USDT"].free == D("100000")
    assert venue.futures_account_info().wallet_balance == D("100000")
    qrl = venue.book(Market.SPOT, "QRLUSDT", 20)
    top = qrl.asks[0][0] * qrl.asks[0][1]
    assert D("100") < top < D("20000")  # thin-ish, but a small order still fills


def test_advance_with_resting_bid_below_market_fills_when_price_moves_through() -> None:
    clock = ManualClock(1_700_000_000_000)
    venue = default_venue(clock=clock, seed=4)
    book = venue.book(Market.SPOT, "ETHUSDT", 1)
    price = ETH.limit_price(Side.BUY, book.bids[0][0] * D("0.9995"))
    order = venue.place_order(
        Market.SPOT, "ETHUSDT", Side.BUY, OrderType.LIMIT, D("0.5"), price=price
    )
    assert order.status is OrderStatus.ACCEPTED
    for _ in range(120):
        venue.advance(60_000)
        got = venue.get_order(Market.SPOT, "ETHUSDT", order_id=order.order_id)
        if got.status is OrderStatus.FILLED:
            break
    assert got.status is OrderStatus.FILLED
    assert all(t.is_maker and t.price == price for t in got.trades)
    assert clock.now_ms() > 1_700_000_000_000


def test_advance_with_manual_clock_moves_clock_and_mark_follows_mid() -> None:
    clock = ManualClock(1_700_000_000_000)
    venue = default_venue(clock=clock, seed=1, replay=False)
    venue.advance(90_500)
    assert clock.now_ms() == 1_700_000_090_500
    mid = book_mid(venue.book(Market.FUT, "ETHUSDT", 1))
    assert abs(venue.mark_price("ETHUSDT") / mid - 1) < D("0.001")
    assert abs(venue.market.funding_rate("ETHUSDT")) < D("0.00375")


def test_server_time_with_skew_reports_clock_plus_skew() -> None:
    clock = ManualClock(1_700_000_000_000)
    venue = default_venue(clock=clock, server_time_skew_ms=1_500)
    assert venue.server_time_ms() == 1_700_000_001_500


def test_latency_with_same_seed_repeats_sequence() -> None:
    a = [LatencyModel(seed=9).sample_ms() for _ in range(1)]
    m1, m2 = LatencyModel(seed=9), LatencyModel(seed=9)
    s1 = [m1.sample_ms() for _ in range(200)]
    assert s1 == [m2.sample_ms() for _ in range(200)]
    assert min(s1) >= 8
    assert a[0] == s1[0]

"""Features against hand-computed values."""

from __future__ import annotations

import math
from decimal import Decimal

import pytest

from tradekit.features import (
    Bar,
    FeatureCalculator,
    aggregate,
    depth_top1_usdt,
    percentile_rank,
    realized_vol,
    sma,
    spread_bps,
)

D = Decimal
T0 = 1_700_000_040_000 // 300_000 * 300_000  # aligned on a 5-minute boundary


def bar(i: int, o: str, h: str, low: str, c: str) -> Bar:
    return Bar(T0 + i * 60_000, D(o), D(h), D(low), D(c))


# Hand-checked: TR = [2, 3 (h-prev c: 13-10), 4 (prev c 12 - low 8), 2], period 3:
# seed ATR = (2+3+4)/3 = 3; next = (3·2 + 2)/3 = 8/3.
BARS = [
    bar(0, "10", "11", "9", "10"),
    bar(1, "10", "13", "11", "12"),
    bar(2, "12", "11", "8", "9"),
    bar(3, "9", "10", "8", "9"),
]


def test_atr_with_tiny_bar_series_matches_wilder_by_hand() -> None:
    calc = FeatureCalculator("BTCUSDT", atr_period=3)
    atrs = []
    for b in BARS:
        calc.on_bar(b)
        atrs.append(calc.values().get("atr_3"))
    assert atrs == [None, None, 3.0, pytest.approx(8 / 3)]


def test_spread_bps_with_known_quote_matches_hand_value() -> None:
    # mid 100, spread 0.1 ⇒ 10 bp
    assert spread_bps(D("99.95"), D("100.05")) == D("10")


def test_depth_top1_with_uneven_sides_takes_thinner_side() -> None:
    bids = [(D("100"), D("2")), (D("99"), D("10"))]
    asks = [(D("101"), D("1")), (D("102"), D("1"))]
    assert depth_top1_usdt(bids, asks) == D("101")
    calc = FeatureCalculator("BTCUSDT", depth_levels=2)
    calc.on_book(T0, bids, asks)
    assert calc.values()["depth_top2_usdt"] == 203.0


def test_sma_with_short_series_returns_none_then_mean() -> None:
    assert sma([D(1), D(2)], 3) is None
    assert sma([D(1), D(2), D(3), D(4)], 3) == D(3)


def test_realized_vol_with_alternating_returns_matches_hand_value() -> None:
    closes = [D("100"), D("101"), D("100"), D("101")]
    r = math.log(1.01)
    rets = [r, -r, r]
    mean = sum(rets) / 3
    std = math.sqrt(sum((x - mean) ** 2 for x in rets) / 2)
    assert realized_vol(closes) == pytest.approx(std * math.sqrt(525_600))


def test_percentile_rank_with_sorted_history_counts_at_or_below() -> None:
    assert percentile_rank([1.0, 2.0, 3.0, 4.0], 2.0) == 0.5
    assert percentile_rank([1.0, 2.0, 3.0, 4.0], 5.0) == 1.0


def test_aggregate_with_ten_minutes_builds_two_five_minute_bars() -> None:
    ones = [bar(i, str(10 + i), str(11 + i), str(9 + i), str(10 + i)) for i in range(10)]
    fives = aggregate(ones, 5)
    assert [(b.open, b.high, b.low, b.close) for b in fives] == [
        (D(10), D(15), D(9), D(14)),
        (D(15), D(20), D(14), D(19)),
    ]


def test_calculator_with_book_trades_and_funding_emits_flat_snapshot() -> None:
    calc = FeatureCalculator("BTCUSDT", atr_period=3, rv_window=3, ma_fast=2, ma_slow=3)
    for b in BARS:
        calc.on_bar(b)
    calc.on_book(T0 + 4 * 60_000, [(D("99.95"), D("2"))], [(D("100.05"), D("1"))])
    calc.on_funding(T0 + 4 * 60_000, D("0.0001"))
    snap = calc.values()
    assert snap["mid"] == 100.0
    assert snap["spread_bps"] == pytest.approx(10.0)
    assert snap["depth_top1_usdt"] == pytest.approx(100.05)
    assert snap["funding_rate"] == pytest.approx(0.0001)
    assert snap["atr_3"] == pytest.approx(8 / 3)
    assert "ma2_5m" not in snap  # no 5-minute bar has closed yet
    # The flat shape S3 reads from feat:last (the publisher adds symbol and ts): numbers only.
    assert all(isinstance(v, float) for v in snap.values())


def test_calculator_with_trades_over_minutes_builds_bars_and_moving_averages() -> None:
    calc = FeatureCalculator("ETHUSDT", atr_period=2, ma_fast=2, ma_slow=3)
    # 16 minutes of prints, price = 100 + minute index; each minute: 2 trades.
    for m in range(16):
        base = T0 + m * 60_000
        calc.on_trade(base + 1_000, D(100 + m) - D("0.5"), D("1"))
        calc.on_trade(base + 30_000, D(100 + m), D("1"))
    calc.on_book(T0 + 16 * 60_000, [(D("115.9"), D("1"))], [(D("116.1"), D("1"))])
    snap = calc.values()
    bars = calc.bars_1m()
    assert len(bars) == 16
    assert bars[0].close == D(100)
    # Closed 5-minute bars: [0-4] close 104, [5-9] close 109, [10-14] close 114.
    assert snap["ma2_5m"] == pytest.approx((109 + 114) / 2)
    assert snap["ma3_5m"] == pytest.approx((104 + 109 + 114) / 3)
    assert snap["rv_pctile_30d"] >= 0
    assert snap["rv_history_minutes"] == 14.0  # rv needs 2 returns: from the 3rd bar on


def test_calculator_rv_pctile_with_calm_history_then_shock_ranks_at_top() -> None:
    calc = FeatureCalculator("X", rv_window=5)
    price = D(100)
    for m in range(200):
        step = D("0.01") if m % 2 else D("-0.01")
        price += step
        calc.on_bar(Bar(T0 + m * 60_000, price, price, price, price))
    calm = calc.values()["rv_pctile_30d"]
    for m in range(200, 203):
        price *= D("1.02") if m % 2 else D("0.98")
        calc.on_bar(Bar(T0 + m * 60_000, price, price, price, price))
    assert calc.values()["rv_pctile_30d"] == 1.0
    assert calm < 1.0

"""Route table, policy registry, circuit breaker, clock-skew guard, quality alarms."""

from __future__ import annotations

import json
from decimal import Decimal as D
from pathlib import Path

import pytest

from s4_router.policies.circuit_breaker import (
    BreakerState,
    CircuitBreaker,
    CircuitBreakerConfig,
)
from s4_router.policies.clock_guard import ClockSkewGuard
from s4_router.policies.quality_alarms import LowRatioAlarm, RateAlarm, RollingRatio
from s4_router.policies.registry import PolicyLimits, PolicyRefused, resolve_policy
from s4_router.policies.route_table import RouteTable, RouteTableError
from tests.conftest import FIXTURES
from tests.unit.s4.helpers import BTC
from tradekit.intents import MakerTakerPolicy, MarketPolicy, OcoPolicy, TwapPolicy, TwapSpec


def fixture_table() -> RouteTable:
    return RouteTable.parse(json.loads(Path(FIXTURES / "route_table.json").read_text()), rev="r1")


@pytest.mark.parametrize(
    ("notional", "band", "wait"),
    [("10", 0, 1500), ("200", 0, 1500), ("200.01", 1, 2000), ("500", 1, 2000), ("1e9", 2, 3000)],
)
def test_route_table_with_notional_picks_band_null_max_unbounded(
    notional: str, band: int, wait: int
) -> None:
    i, b = fixture_table().band_for(D(notional))
    assert (i, b.maker_wait_ms) == (band, wait)


def test_route_table_with_bounded_last_band_uses_it_above_max() -> None:
    t = RouteTable.parse([{"notional_usdt_max": 100, "maker_wait_ms": 5}], rev="x")
    assert t.band_for(D(1000))[0] == 0


@pytest.mark.parametrize(
    "bands",
    [
        [],
        [
            {"notional_usdt_max": None, "maker_wait_ms": 1},
            {"notional_usdt_max": 5, "maker_wait_ms": 1},
        ],
        [
            {"notional_usdt_max": 5, "maker_wait_ms": 1},
            {"notional_usdt_max": 5, "maker_wait_ms": 1},
        ],
        [{"notional_usdt_max": 5, "maker_wait_ms": 1, "extra": 1}],
    ],
)
def test_route_table_with_bad_bands_raises(bands: list[dict[str, object]]) -> None:
    with pytest.raises(RouteTableError):
        RouteTable.parse(bands, rev="x")


LIMITS = PolicyLimits(maker_max_wait_ms=3000, twap_max_slices=4)


def test_resolve_with_default_maker_taker_uses_route_band() -> None:
    r = resolve_policy(
        MakerTakerPolicy(), notional=D(300), table=fixture_table(), limits=LIMITS, inst=BTC
    )
    c = r.config
    assert (c.policy, c.maker.maker_wait_ms, c.route_band) == ("MAKER_TAKER", 2000, 1)
    assert c.twap is not None and (c.twap.slices, c.twap.gap_ms) == (2, 600)
    assert c.maker.probe.spread_bps_max == D(3)


def test_resolve_with_explicit_wait_over_max_is_capped_and_noted() -> None:
    r = resolve_policy(
        MakerTakerPolicy(maker_wait_ms=9000),
        notional=D(10),
        table=fixture_table(),
        limits=LIMITS,
        inst=BTC,
    )
    assert r.config.maker.maker_wait_ms == 3000 and "capped" in r.notes[0]
    assert r.config.twap is None


def test_resolve_with_too_many_slices_refuses() -> None:
    with pytest.raises(PolicyRefused, match="S4_TWAP_MAX_SLICES=4"):
        resolve_policy(
            MakerTakerPolicy(twap=TwapSpec(slices=5, gap_ms=10)),
            notional=D(10),
            table=fixture_table(),
            limits=LIMITS,
            inst=BTC,
        )
    with pytest.raises(PolicyRefused):
        resolve_policy(
            TwapPolicy(slices=9, gap_ms=1),
            notional=D(10),
            table=fixture_table(),
            limits=LIMITS,
            inst=BTC,
        )


def test_resolve_with_market_twap_and_oco_policies() -> None:
    t = fixture_table()
    m = resolve_policy(MarketPolicy(), notional=D("1e6"), table=t, limits=LIMITS, inst=BTC)
    assert m.config.policy == "MARKET" and m.config.maker.maker_wait_ms == 0 and not m.config.twap
    tw = resolve_policy(
        TwapPolicy(slices=3, gap_ms=100), notional=D(10), table=t, limits=LIMITS, inst=BTC
    )
    assert tw.config.policy == "TWAP" and tw.config.twap and tw.config.twap.slices == 3
    with pytest.raises(PolicyRefused, match="OCO"):
        resolve_policy(
            OcoPolicy(tp_price=D(2), sl_price=D(1)),
            notional=D(10),
            table=t,
            limits=LIMITS,
            inst=BTC,
        )


def test_resolve_with_band_slices_over_max_clamps() -> None:
    t = RouteTable.parse(
        [{"notional_usdt_max": None, "maker_wait_ms": 10, "twap": {"slices": 9, "gap_ms": 1}}],
        rev="x",
    )
    r = resolve_policy(MakerTakerPolicy(), notional=D(1), table=t, limits=LIMITS, inst=BTC)
    assert r.config.twap is not None and r.config.twap.slices == 4 and "clamped" in r.notes[0]


CB = CircuitBreakerConfig(
    window_ms=60_000, threshold=0.2, min_calls=10, open_ms=1000, max_open_ms=4000
)


def test_breaker_with_error_share_above_threshold_opens_and_refuses_entries() -> None:
    cb = CircuitBreaker(CB)
    for i in range(8):
        cb.record(i, error=False)
    cb.record(8, error=True)
    cb.record(9, error=True)
    assert cb.state(9) is BreakerState.CLOSED  # 2/10 = 20 %: not above
    cb.record(10, error=True)
    assert cb.state(10) is BreakerState.OPEN and cb.state(10).gauge == 2
    assert not cb.allows_entry(10)
    (t,) = cb.take_transitions()
    assert (t.src, t.dst, t.calls) == (BreakerState.CLOSED, BreakerState.OPEN, 11)


def test_breaker_with_few_calls_stays_closed() -> None:
    cb = CircuitBreaker(CB)
    for i in range(9):
        cb.record(i, error=True)
    assert cb.state(9) is BreakerState.CLOSED


def test_breaker_half_open_probe_success_closes_failure_reopens_with_backoff() -> None:
    cb = CircuitBreaker(CB)
    for i in range(10):
        cb.record(i, error=True)
    assert cb.state(1008) is BreakerState.OPEN
    assert cb.state(1009) is BreakerState.HALF_OPEN and cb.allows_entry(1009)
    cb.record(1010, error=True)
    assert cb.state(1010) is BreakerState.OPEN and cb.reopens_at() == 3010
    assert cb.state(3010) is BreakerState.HALF_OPEN
    cb.record(3011, error=False)
    assert cb.state(3011) is BreakerState.CLOSED and cb.error_rate(3011) == (0.0, 0)
    kinds = [(t.src.value, t.dst.value) for t in cb.take_transitions()]
    assert kinds == [
        ("CLOSED", "OPEN"),
        ("OPEN", "HALF_OPEN"),
        ("HALF_OPEN", "OPEN"),
        ("OPEN", "HALF_OPEN"),
        ("HALF_OPEN", "CLOSED"),
    ]


def test_breaker_with_old_errors_outside_window_forgets_them() -> None:
    cb = CircuitBreaker(CB)
    for i in range(9):
        cb.record(i, error=True)
    for i in range(10):
        cb.record(70_000 + i, error=False)
    assert cb.error_rate(70_010) == (0.0, 10)
    cb.record(70_011, error=True)
    assert cb.state(70_011) is BreakerState.CLOSED


def test_clock_guard_with_skew_over_limit_blocks_until_recovered() -> None:
    g = ClockSkewGuard(1000)
    assert g.observe(sent_ms=0, server_ms=900, received_ms=0) is None and g.ok
    change = g.observe(sent_ms=0, server_ms=1500, received_ms=10)
    assert change is not None and not change.ok and change.skew_ms == 1495 and not g.ok
    change = g.observe(sent_ms=0, server_ms=-200, received_ms=0)
    assert change is not None and change.ok and g.ok


def test_clock_guard_discards_a_sample_whose_round_trip_exceeds_the_bound() -> None:
    g = ClockSkewGuard(1000, max_rtt_ms=1000)
    # A request held 15 s (a throttle queue): its midpoint says 7.5 s of "skew". Discarded.
    assert g.observe(sent_ms=0, server_ms=15_000, received_ms=15_000) is None
    assert g.ok and g.skew_ms is None and g.discarded == 1
    change = g.observe(sent_ms=0, server_ms=1600, received_ms=100)  # a real 1.55 s skew
    assert change is not None and not change.ok and change.skew_ms == 1550


def test_quality_trackers_with_samples_and_cooldowns() -> None:
    r = RollingRatio(size=2)
    assert r.ratio is None
    r.add(D(0), D(1))
    r.add(D(1), D(1))
    r.add(D(1), D(2))
    assert r.samples == 2 and r.ratio == pytest.approx(2 / 3)
    alarm = LowRatioAlarm(threshold=0.3, min_samples=2, cooldown_ms=100)
    assert not alarm.check(0, 0.1, 1)
    assert alarm.check(0, 0.1, 2) and not alarm.check(50, 0.1, 2) and alarm.check(100, 0.1, 2)
    rate = RateAlarm(count=3, window_ms=1000, cooldown_ms=5000)
    assert [rate.hit(t) for t in (0, 10, 2000, 2100, 2200, 2300)] == [
        False,
        False,
        False,
        False,
        True,
        False,
    ]

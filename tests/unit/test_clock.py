"""svckit.clock's ManualClock and the tests' TrackingClock (tests/tracking_clock.py: a venue
behind a facade) move forward only, their two readings together."""

from __future__ import annotations

import time

import pytest

from svckit.clock import Clock, ManualClock, WallClock
from tests.tracking_clock import TrackingClock


def test_tracking_clock_with_wall_time_flows_from_its_start() -> None:
    clock = TrackingClock(1_000_000)
    first = clock.now_ms()
    time.sleep(0.02)
    assert 1_000_000 <= first < clock.now_ms() < 1_000_000 + 5_000


def test_tracking_clock_with_advance_and_set_jumps_forward_only() -> None:
    clock = TrackingClock(1_000_000)
    assert clock.advance(60_000) >= 1_060_000
    clock.set(2_000_000)
    assert clock.now_ms() >= 2_000_000
    clock.set(1_500_000)  # in the past: time keeps flowing, no jump back
    assert clock.now_ms() >= 2_000_000
    with pytest.raises(ValueError):
        clock.advance(-1)


def test_manual_clock_with_advance_and_set_moves_both_readings_forward_only() -> None:
    clock = ManualClock(1_000_000)
    clock.advance(1_500)
    assert clock.now_ms() == 1_001_500 and clock.monotonic() == 1.5
    clock.set(1_002_000)
    assert clock.now_ms() == 1_002_000 and clock.monotonic() == 2.0
    with pytest.raises(ValueError):
        clock.advance(-1)
    with pytest.raises(ValueError):
        clock.set(1_001_999)
    assert clock.now_ms() == 1_002_000


def test_tracking_clock_with_advance_moves_its_monotonic_reading_too() -> None:
    clock = TrackingClock(1_000_000)
    before = clock.monotonic()
    clock.advance(60_000)
    assert clock.monotonic() >= before + 60


def test_every_clock_with_both_readings_is_a_clock() -> None:
    for clock in (WallClock(), ManualClock(), TrackingClock()):
        assert isinstance(clock, Clock)

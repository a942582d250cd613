"""TrackingClock: wall time from a chosen start, pushed forward on demand, never backwards."""

from __future__ import annotations

import time

import pytest

from venue.clock import TrackingClock


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

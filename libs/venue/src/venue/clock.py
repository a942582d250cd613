"""Injected clocks: the venue core never reads the system time or sleeps on its own.

Tests drive a :class:`ManualClock` explicitly; ``make run`` uses :class:`WallClock`. Anything that
needs "now" (order timestamps, rate-limit windows, delayed reports, market steps) asks the clock
it was given, so the same seed and the same sequence of calls reproduce the same venue.
"""

from __future__ import annotations

import time
from typing import Protocol, runtime_checkable


@runtime_checkable
class Clock(Protocol):
    """Anything that can say the current time in epoch milliseconds."""

    def now_ms(self) -> int: ...


class ManualClock:
    """A clock that only moves when told to (tests, accelerated simulations)."""

    def __init__(self, start_ms: int = 1_700_000_000_000) -> None:
        self._now = start_ms

    def now_ms(self) -> int:
        return self._now

    def advance(self, ms: int) -> int:
        """Move forward by `ms` (never backwards: a venue's clock is monotonic)."""
        if ms < 0:
            raise ValueError(f"cannot move a clock backwards ({ms} ms)")
        self._now += ms
        return self._now

    def set(self, now_ms: int) -> None:
        if now_ms < self._now:
            raise ValueError("cannot move a clock backwards")
        self._now = now_ms


class WallClock:
    """The system clock (epoch ms)."""

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000


class TrackingClock:
    """Wall-clock time from a chosen start, that tests can also push forward.

    ``now_ms()`` is ``start_ms`` plus the real time elapsed since construction (monotonic) plus
    whatever :meth:`advance` / :meth:`set` added. It is what a venue behind an HTTP facade needs
    in tests: clients sign requests with their own clock (ccxt adjusts to the server time once),
    so the venue's time must keep flowing like a real server's, while a test can still jump it.
    """

    def __init__(self, start_ms: int | None = None) -> None:
        self._t0 = time.monotonic_ns()
        self._start = WallClock().now_ms() if start_ms is None else start_ms
        self._offset = 0

    def now_ms(self) -> int:
        return self._start + (time.monotonic_ns() - self._t0) // 1_000_000 + self._offset

    def advance(self, ms: int) -> int:
        if ms < 0:
            raise ValueError(f"cannot move a clock backwards ({ms} ms)")
        self._offset += ms
        return self.now_ms()

    def set(self, now_ms: int) -> None:
        """Jump forward to `now_ms` (a target already in the past is a no-op: time flows)."""
        self._offset += max(0, now_ms - self.now_ms())

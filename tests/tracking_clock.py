"""A clock for a venue behind an HTTP facade in tests (tests only: no service runs on it)."""

from __future__ import annotations

import time

from svckit.clock import WallClock


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

    def monotonic(self) -> float:
        return (time.monotonic_ns() - self._t0) / 1e9 + self._offset / 1000

    def advance(self, ms: int) -> int:
        if ms < 0:
            raise ValueError(f"cannot move a clock backwards ({ms} ms)")
        self._offset += ms
        return self.now_ms()

    def set(self, now_ms: int) -> None:
        """Jump forward to `now_ms` (a target already in the past is a no-op: time flows)."""
        self._offset += max(0, now_ms - self.now_ms())

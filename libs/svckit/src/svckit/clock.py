"""Injected clocks, the only ones in the house: services, the venue simulator and the tests all
take a :class:`Clock` and never read the system time or sleep on their own.

Tests drive a :class:`ManualClock` explicitly (no sleeps; the same seed and the same calls
reproduce the same run); ``make run`` and production use :class:`WallClock`.
"""

from __future__ import annotations

import time
from typing import Protocol, runtime_checkable


@runtime_checkable
class Clock(Protocol):
    """Epoch milliseconds (timestamps, windows) and a monotonic reading in seconds (timeouts)."""

    def now_ms(self) -> int: ...

    def monotonic(self) -> float: ...


class WallClock:
    """The system clock (epoch ms) and the process's monotonic clock."""

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def monotonic(self) -> float:
        return time.monotonic()


class ManualClock:
    """A clock that only moves when told to (tests, accelerated simulations); never backwards,
    and both readings move together."""

    def __init__(self, start_ms: int = 1_700_000_000_000) -> None:
        self._ms = start_ms
        self._mono = 0.0

    def now_ms(self) -> int:
        return self._ms

    def monotonic(self) -> float:
        return self._mono

    def advance(self, ms: int) -> None:
        """Move forward by `ms`."""
        if ms < 0:
            raise ValueError(f"cannot move a clock backwards ({ms} ms)")
        self._ms += ms
        self._mono += ms / 1000

    def set(self, now_ms: int) -> None:
        """Jump to `now_ms` (not before the current time)."""
        if now_ms < self._ms:
            raise ValueError("cannot move a clock backwards")
        self.advance(now_ms - self._ms)

"""Circuit breaker on the venue's 5xx / 429 share over a rolling window (spec 004 §D4).

    CLOSED ──error share > threshold (≥ min_calls in window)──► OPEN
    OPEN ──open_ms elapsed──► HALF_OPEN ──next call ok──► CLOSED (window cleared)
                                         └─next call 5xx/429──► OPEN, open_ms doubled (≤ max)

OPEN refuses new entries; reduce-only orders and cancels always pass (closing and protecting
risk is always allowed). Pure: the caller passes `now` and the outcome of every venue call.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class BreakerState(StrEnum):
    CLOSED = "CLOSED"
    HALF_OPEN = "HALF_OPEN"
    OPEN = "OPEN"

    @property
    def gauge(self) -> int:
        return {"CLOSED": 0, "HALF_OPEN": 1, "OPEN": 2}[self.value]


class CircuitBreakerConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    window_ms: int = Field(default=60_000, ge=1)
    threshold: float = Field(default=0.2, gt=0, le=1)
    min_calls: int = Field(default=10, ge=1)
    open_ms: int = Field(default=5_000, ge=1)
    max_open_ms: int = Field(default=60_000, ge=1)


@dataclass(frozen=True, slots=True)
class Transition:
    ts: int
    src: BreakerState
    dst: BreakerState
    error_rate: float
    calls: int
    reason: str


class CircuitBreaker:
    def __init__(self, cfg: CircuitBreakerConfig) -> None:
        self.cfg = cfg
        self._state = BreakerState.CLOSED
        self._calls: deque[tuple[int, bool]] = deque()
        self._errors = 0
        self._opened_at = 0
        self._open_ms = cfg.open_ms
        self._pending: list[Transition] = []

    # ---- queries ------------------------------------------------------------------------------
    def state(self, now: int) -> BreakerState:
        if self._state is BreakerState.OPEN and now >= self._opened_at + self._open_ms:
            self._move(now, BreakerState.HALF_OPEN, "cool-down elapsed: probing")
        return self._state

    def allows_entry(self, now: int) -> bool:
        return self.state(now) is not BreakerState.OPEN

    def error_rate(self, now: int) -> tuple[float, int]:
        while self._calls and self._calls[0][0] <= now - self.cfg.window_ms:
            _, err = self._calls.popleft()
            self._errors -= int(err)
        n = len(self._calls)
        return (self._errors / n if n else 0.0), n

    def reopens_at(self) -> int | None:
        return self._opened_at + self._open_ms if self._state is BreakerState.OPEN else None

    def take_transitions(self) -> list[Transition]:
        out, self._pending = self._pending, []
        return out

    # ---- events -------------------------------------------------------------------------------
    def record(self, now: int, *, error: bool) -> None:
        state = self.state(now)
        if state is BreakerState.HALF_OPEN:
            if error:
                self._open_ms = min(self._open_ms * 2, self.cfg.max_open_ms)
                self._opened_at = now
                self._move(now, BreakerState.OPEN, "probe failed")
            else:
                self._calls.clear()
                self._errors = 0
                self._open_ms = self.cfg.open_ms
                self._move(now, BreakerState.CLOSED, "probe succeeded")
            return
        self._calls.append((now, error))
        self._errors += int(error)
        if state is BreakerState.OPEN:
            return
        rate, n = self.error_rate(now)
        if n >= self.cfg.min_calls and rate > self.cfg.threshold:
            self._opened_at = now
            self._move(now, BreakerState.OPEN, f"5xx/429 share {rate:.0%} of {n} calls")

    # ---- internals ----------------------------------------------------------------------------
    def _move(self, now: int, dst: BreakerState, reason: str) -> None:
        rate, n = self.error_rate(now)
        self._pending.append(Transition(now, self._state, dst, rate, n, reason))
        self._state = dst

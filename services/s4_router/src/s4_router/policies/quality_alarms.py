"""Execution-quality trackers behind the gauges and the alerts (pure; clock passed in).

* `RollingRatio` — Σnum / Σden over the last `size` samples (maker fill ratio: filled / posted
  quantity of maker children; taker rate: taker quantity / all filled quantity; TWAP slice fill
  ratio: filled / target per slice).
* `LowRatioAlarm` — fires when a ratio with ≥ `min_samples` samples is below `threshold`, at
  most once per `cooldown_ms`.
* `RateAlarm` — fires when ≥ `count` events fall in `window_ms`, at most once per cooldown
  (insufficient-balance rejects).
* `Cooldown` — the "at most once per" both share (also the intake's refusal alerts).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal


class RollingRatio:
    def __init__(self, size: int = 200) -> None:
        self._samples: deque[tuple[Decimal, Decimal]] = deque(maxlen=size)

    def add(self, num: Decimal, den: Decimal) -> None:
        if den > 0:
            self._samples.append((num, den))

    @property
    def samples(self) -> int:
        return len(self._samples)

    @property
    def ratio(self) -> float | None:
        den = sum((d for _, d in self._samples), Decimal(0))
        if den <= 0:
            return None
        return float(sum((n for n, _ in self._samples), Decimal(0)) / den)


@dataclass
class Cooldown:
    """At most once per `cooldown_ms`: `ready(now)` says yes and starts the next wait."""

    cooldown_ms: int
    _last: int | None = field(default=None, init=False)

    def ready(self, now: int) -> bool:
        if self._last is not None and now - self._last < self.cooldown_ms:
            return False
        self._last = now
        return True


@dataclass(kw_only=True)
class LowRatioAlarm(Cooldown):
    threshold: float
    min_samples: int

    def check(self, now: int, ratio: float | None, samples: int) -> bool:
        if ratio is None or samples < self.min_samples or ratio >= self.threshold:
            return False
        return self.ready(now)


@dataclass(kw_only=True)
class RateAlarm(Cooldown):
    count: int
    window_ms: int
    _events: deque[int] = field(default_factory=deque, init=False)

    def hit(self, now: int) -> bool:
        self._events.append(now)
        while self._events and self._events[0] <= now - self.window_ms:
            self._events.popleft()
        return len(self._events) >= self.count and self.ready(now)

"""Execution-quality trackers behind the gauges and the alerts (pure; clock passed in).

* `RollingRatio` — Σnum / Σden over the last `size` samples (maker fill ratio: filled / posted
  quantity of maker children; taker rate: taker quantity / all filled quantity; TWAP slice fill
  ratio: filled / target per slice).
* `LowRatioAlarm` — fires when a ratio with ≥ `min_samples` samples is below `threshold`, at
  most once per `cooldown_ms`.
* `RateAlarm` — fires when ≥ `count` events fall in `window_ms`, at most once per cooldown
  (insufficient-balance rejects).
"""

from __future__ import annotations

from collections import deque
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


class LowRatioAlarm:
    def __init__(self, *, threshold: float, min_samples: int, cooldown_ms: int) -> None:
        self.threshold = threshold
        self.min_samples = min_samples
        self.cooldown_ms = cooldown_ms
        self._last: int | None = None

    def check(self, now: int, ratio: float | None, samples: int) -> bool:
        if ratio is None or samples < self.min_samples or ratio >= self.threshold:
            return False
        if self._last is not None and now - self._last < self.cooldown_ms:
            return False
        self._last = now
        return True


class RateAlarm:
    def __init__(self, *, count: int, window_ms: int, cooldown_ms: int) -> None:
        self.count = count
        self.window_ms = window_ms
        self.cooldown_ms = cooldown_ms
        self._events: deque[int] = deque()
        self._last: int | None = None

    def hit(self, now: int) -> bool:
        self._events.append(now)
        while self._events and self._events[0] <= now - self.window_ms:
            self._events.popleft()
        if len(self._events) < self.count:
            return False
        if self._last is not None and now - self._last < self.cooldown_ms:
            return False
        self._last = now
        return True

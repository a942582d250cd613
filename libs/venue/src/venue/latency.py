"""Seeded latency model: how long a request *would* take, in ms.

The core never sleeps; it only returns a number. An adapter may wait that long (S4's
``SimExchange(simulate_latency=True)``) or add it to simulated timestamps.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class LatencyConfig:
    base_ms: float = 8.0  # the floor: network round trip to the venue
    jitter_mean_ms: float = 12.0  # exponential jitter on top
    tail_probability: float = 0.01  # occasional slow answers (GC pauses, matching backlog)
    tail_ms: float = 400.0


class LatencyModel:
    def __init__(self, config: LatencyConfig | None = None, *, seed: int = 0) -> None:
        self.config = config or LatencyConfig()
        self._rng = random.Random(f"latency:{seed}")

    def sample_ms(self, op: str = "place") -> int:
        """One draw (same seed ⇒ same sequence; `op` is accepted for per-op models later)."""
        c = self.config
        ms = c.base_ms + (self._rng.expovariate(1 / c.jitter_mean_ms) if c.jitter_mean_ms else 0)
        if self._rng.random() < c.tail_probability:
            ms += c.tail_ms
        return round(ms)

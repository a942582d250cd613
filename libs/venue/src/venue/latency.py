"""Seeded latency model: how long a request *would* take, in ms.

The core never sleeps; it only returns a number. An adapter may wait that long (S4's
``SimExchange(simulate_latency=True)``) or add it to simulated timestamps.
"""

from __future__ import annotations

import random


class LatencyModel:
    BASE_MS = 8.0  # the floor: network round trip to the venue
    JITTER_MEAN_MS = 12.0  # exponential jitter on top
    TAIL_PROBABILITY = 0.01  # occasional slow answers (GC pauses, matching backlog)
    TAIL_MS = 400.0

    def __init__(self, *, seed: int = 0) -> None:
        self._rng = random.Random(f"latency:{seed}")

    def sample_ms(self) -> int:
        """One draw (same seed ⇒ same sequence)."""
        ms = self.BASE_MS + self._rng.expovariate(1 / self.JITTER_MEAN_MS)
        if self._rng.random() < self.TAIL_PROBABILITY:
            ms += self.TAIL_MS
        return round(ms)

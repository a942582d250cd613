"""The venue's request weight as a budget S4 paces itself under.

Binance (and the simulator, and its facade) count request *weight* per clock minute and answer
429 past the limit (418, an IP ban, when a client keeps going). Every answer carries the weight
used so far in the minute (``X-MBX-USED-WEIGHT-1M``), counted for the whole account/IP: a peer
replica's calls are in it too. So the budget is kept from two sources:

* before a call, its estimated weight (Binance's published figures, declared with each call in
  :class:`.guard.GuardedExchange`) is charged locally, so a burst of concurrent calls is paced
  before any answer comes back;
* after a call, the venue's own figure (the header through ccxt's ``last_response_headers``, the
  simulator's limiter through the sim client) replaces the local count for the minute.

Two lanes. *Urgent* calls — reduce-only orders, cancels, protective placements, the server-time
probe — always go out: they only ever reduce risk, and the venue decides. *Normal* calls
(entries, polls, book and account reads) go out while the minute's usage stays under
``pace_fraction`` of the limit (the rest is headroom kept for the urgent lane); beyond it they
wait for the next minute, or for a venue 429's Retry-After, when that is at most
``max_wait_ms`` away, and are otherwise refused locally with :class:`WeightExhausted` — a
:class:`RateLimited` that provably never reached the venue (so a submit refused this way is
retried under the same id, never resolved as ambiguous, and the breaker does not count it).

Binance limits spot and futures weight separately: an adapter that says so
(``separate_weight_pools``) gets one budget per market.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass

from s4_router.adapters.exchange.base import RateLimited
from svckit.clock import Clock

MINUTE_MS = 60_000
Sleep = Callable[[float], Awaitable[None]]

# True inside urgent_lane() (read by the guard when it charges a call).
URGENT: contextvars.ContextVar[bool] = contextvars.ContextVar("s4_weight_urgent", default=False)


@contextlib.contextmanager
def urgent_lane() -> Iterator[None]:
    """Calls made inside (in this task) take the urgent lane: the reads a reduce-only close
    needs before its send (its pre-trade book) must not be paced behind entries and polls."""
    token = URGENT.set(True)
    try:
        yield
    finally:
        URGENT.reset(token)


class WeightExhausted(RateLimited):
    """Refused by S4's own budget: the request was never sent."""


@dataclass(frozen=True, slots=True)
class WeightConfig:
    limit_1m: int = 6_000
    pace_fraction: float = 0.8
    max_wait_ms: int = 1_000


class WeightBudget:
    """One pool of request weight (per clock minute, like the venue's)."""

    def __init__(self, cfg: WeightConfig, *, clock: Clock, sleep: Sleep) -> None:
        self.cfg = cfg
        self.clock = clock
        self.sleep = sleep
        self._window = -1
        self._used = 0
        self._blocked_until = 0  # a venue 429's Retry-After (normal lane holds until then)
        self.paced = 0  # normal calls that waited
        self.refused = 0  # normal calls refused locally

    @property
    def pace_at(self) -> int:
        return int(self.cfg.limit_1m * self.cfg.pace_fraction)

    def used(self) -> int:
        return self._used if self.clock.now_ms() // MINUTE_MS == self._window else 0

    def _roll(self, now: int) -> None:
        window = now // MINUTE_MS
        if window != self._window:
            self._window, self._used = window, 0

    async def acquire(self, weight: int, *, urgent: bool) -> None:
        """Charge `weight` for a call about to be sent; normal calls are paced (module doc)."""
        while True:
            now = self.clock.now_ms()
            self._roll(now)
            wait = 0 if urgent else max(0, self._blocked_until - now)
            if not urgent and self._used + weight > self.pace_at:
                wait = max(wait, (self._window + 1) * MINUTE_MS - now)
            if wait == 0:
                self._used += weight
                return
            if wait > self.cfg.max_wait_ms:
                self.refused += 1
                raise WeightExhausted(
                    f"request weight budget: {self._used}/{self.cfg.limit_1m} used this minute "
                    f"(normal calls pace at {self.pace_at}); not sent",
                    retry_after=math.ceil(wait / 1000),
                )
            self.paced += 1
            await self.sleep(wait / 1000)

    def observe(self, used_weight: int) -> None:
        """The venue's own count for the current minute (authoritative: it includes peers)."""
        self._roll(self.clock.now_ms())
        self._used = used_weight

    def on_rate_limited(self, retry_after_s: float | None) -> None:
        """The venue answered 429: hold the normal lane for its Retry-After (1 s if unsaid)."""
        wait_ms = int((retry_after_s or 1.0) * 1000)
        self._blocked_until = max(self._blocked_until, self.clock.now_ms() + wait_ms)

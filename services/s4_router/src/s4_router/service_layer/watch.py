"""Background watch on the venue: server time (clock-skew guard), the breaker's half-open
probe and its transitions (events, alerts). A cheap call (`GET /time`, weight 1) every
`S4_CLOCK_CHECK_MS`, and right when an OPEN breaker's cool-down ends so the probe does not wait
for the next entry."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from s4_router.adapters.exchange.base import ExchangeError
from s4_router.adapters.exchange.guard import GuardedExchange
from s4_router.metrics import RouterMetrics
from s4_router.policies.circuit_breaker import BreakerState, Transition
from s4_router.policies.clock_guard import ClockSkewGuard
from s4_router.service_layer.publisher import Publisher
from svckit.clock import Clock

log = logging.getLogger(__name__)

SAMPLE_ATTEMPTS = 3  # server-time requests per check when round trips are too long to trust


@dataclass(kw_only=True, eq=False)
class VenueWatch:
    exchange: GuardedExchange
    clock: Clock
    skew: ClockSkewGuard
    metrics: RouterMetrics
    publisher: Publisher
    interval_ms: int

    async def check(self) -> None:
        await self.exchange.flush()
        for _ in range(SAMPLE_ATTEMPTS):
            sent = self.clock.now_ms()
            try:
                server = await self.exchange.server_time_ms()
            except ExchangeError as exc:
                log.info("server time unavailable: %s", exc)
                return
            received = self.clock.now_ms()
            if self.skew.usable(sent_ms=sent, received_ms=received):
                break
            # A throttled or queued request is not skew: discard it and ask again.
            self.skew.observe(sent_ms=sent, server_ms=server, received_ms=received)
            self.metrics.clock_samples_discarded.inc()
            log.warning(
                "server-time sample discarded: round trip %d ms > %s ms",
                received - sent,
                self.skew.max_rtt_ms,
            )
        else:
            return
        change = self.skew.observe(sent_ms=sent, server_ms=server, received_ms=received)
        if self.skew.skew_ms is not None:
            self.metrics.clock_skew_ms.set(self.skew.skew_ms)
        if change is None:
            return
        if not change.ok:
            await self.publisher.alert(
                "CLOCK_SKEW",
                f"venue server time differs from ours by {change.skew_ms} ms "
                f"(> {self.skew.max_skew_ms} ms): new entries stopped",
                severity="critical",
                data={"skew_ms": change.skew_ms},
            )
        else:
            await self.publisher.alert(
                "CLOCK_SKEW_RECOVERED",
                f"clock skew back to {change.skew_ms} ms: new entries allowed",
                severity="info",
                data={"skew_ms": change.skew_ms},
            )

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.check()
            except Exception:  # CancelledError is not one: a stop still stops
                log.exception("venue watch failed")
            delay = self.interval_ms
            reopen = self.exchange.breaker.reopens_at()  # the half-open probe is due then
            if reopen is not None:
                delay = min(delay, max(reopen - self.clock.now_ms(), 10))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=delay / 1000)

    async def on_breaker(self, t: Transition) -> None:
        """The breaker's transitions: gauge, `CIRCUIT_BREAKER` event, OPEN / CLOSED alerts."""
        self.metrics.cb_state.set(t.dst.gauge)
        data = {
            "from": t.src.value,
            "to": t.dst.value,
            "error_rate": round(t.error_rate, 3),
            "calls": t.calls,
            "reason": t.reason,
        }
        await self.publisher.event("CIRCUIT_BREAKER", client_order_id=None, symbol=None, data=data)
        if t.dst is BreakerState.OPEN:
            await self.publisher.alert(
                "CIRCUIT_BREAKER_OPEN",
                f"venue 5xx/429 share {t.error_rate:.0%} of {t.calls} calls: new entries "
                f"refused ({t.reason})",
                severity="critical",
                data=data,
            )
        elif t.dst is BreakerState.CLOSED:
            await self.publisher.alert(
                "CIRCUIT_BREAKER_CLOSED",
                "venue healthy again: entries allowed",
                severity="info",
                data=data,
            )

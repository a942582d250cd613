"""Consumer of `orders:intent` (one Redis consumer group shared by all S4 replicas).

An entry is acknowledged only after the router has persisted its effects: the intent is
either refused (and, when the refusal depends on time — breaker, clock — stored as REJECTED),
finished, or durably accepted with its execution plan and running (an execution outlives the
entry: if this replica dies, the orphan sweep of another one resumes it from the store, and a
re-delivered entry is answered as a duplicate). Entries left pending by a dead consumer are
reclaimed with XAUTOCLAIM after `stream_claim_idle_ms`; an entry that fails
`stream_max_deliveries` times, or that is not a valid intent, goes to the dead-letter stream
`orders:intent:dlq` with an alert, then is acknowledged; so does an intent the router refused
without storing anything (invalid, stale, over a limit: the 4xx a REST caller would see), so
that no intent vanishes silently. The entries of one read are handled concurrently (at most
`concurrency` at a time): a slow venue call for one intent must not make the next ones stale.
`router_stream_lag` is the group's pending count, refreshed every few seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

from pydantic import ValidationError
from redis import exceptions as redis_exc

from s4_router.entrypoints.statuses import http_status
from s4_router.metrics import RouterMetrics
from s4_router.service_layer.router import OrderRouter
from svckit import keys
from svckit.clock import Clock
from svckit.errors import InfraError
from svckit.logging import log_scope
from svckit.redisio import (
    RedisClient,
    StreamEntry,
    ack,
    autoclaim,
    ensure_group,
    read_group,
    xadd_json,
)
from tradekit.events import Alert
from tradekit.intents import OrderIntent

log = logging.getLogger(__name__)


@dataclass(kw_only=True, eq=False)
class IntentConsumer:
    redis: RedisClient
    router: OrderRouter
    clock: Clock
    group: str
    consumer: str
    claim_idle_ms: int
    max_deliveries: int
    stream: str = keys.ORDERS_INTENT
    block_ms: int = 1000
    metrics: RouterMetrics | None = None
    lag_every_s: float = 5.0
    concurrency: int = 16
    handled: int = field(default=0, init=False)
    healthy: bool = field(default=False, init=False)
    _next_lag: float = field(default=0.0, init=False)

    def __post_init__(self) -> None:
        self._slots = asyncio.Semaphore(self.concurrency)

    async def run(self, stop: asyncio.Event) -> None:
        backoff = 0.1
        next_claim = 0.0
        while not stop.is_set():
            try:
                await ensure_group(self.redis, self.stream, self.group)
                entries: list[StreamEntry] = []
                if self.clock.monotonic() >= next_claim:
                    entries = await autoclaim(
                        self.redis,
                        self.stream,
                        self.group,
                        self.consumer,
                        min_idle_ms=self.claim_idle_ms,
                    )
                    next_claim = self.clock.monotonic() + self.claim_idle_ms / 4000
                if not entries:
                    entries = await read_group(
                        self.redis, self.stream, self.group, self.consumer, block_ms=self.block_ms
                    )
                self.healthy = True
                backoff = 0.1
                results = await asyncio.gather(
                    *(self._handle_bounded(e) for e in entries), return_exceptions=True
                )
                for res in results:
                    if isinstance(res, BaseException):
                        raise res  # the others were handled (and acknowledged) on their own
                await self._lag()
            except asyncio.CancelledError:
                raise
            except (redis_exc.RedisError, InfraError, OSError) as exc:
                # Redis or the store is down: nothing is acknowledged, so nothing is lost.
                self.healthy = False
                log.warning("intent consumer waiting for infrastructure: %s", exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=backoff)
                backoff = min(backoff * 2, 5.0)

    async def _lag(self) -> None:
        if self.metrics is None or self.clock.monotonic() < self._next_lag:
            return
        self._next_lag = self.clock.monotonic() + self.lag_every_s
        info: dict[str, object] = await self.redis.xpending(self.stream, self.group)
        pending = info.get("pending", 0)
        self.metrics.stream_lag.set(float(pending) if isinstance(pending, int | float) else 0.0)

    async def _handle_bounded(self, entry: StreamEntry) -> None:
        async with self._slots:
            await self.handle(entry)

    async def handle(self, entry: StreamEntry) -> None:
        if entry.payload is None:
            await self._dead_letter(entry, "entry is not a JSON object in field `data`")
            return
        try:
            intent = OrderIntent.model_validate(entry.payload)
        except ValidationError as exc:
            await self._dead_letter(entry, f"invalid intent: {exc.errors()[:3]}")
            return
        # Correlation for the logs of this intake and of the execution task it starts.
        with log_scope(
            signal_id=intent.signal_id,
            intent_id=intent.intent_id,
            client_order_id=intent.client_order_id,
        ):
            try:
                # Never wait for a maker/TWAP execution here: ack once it is durably running.
                outcome = await self.router.submit(intent, source="stream", sync_wait_ms=0)
            except (redis_exc.RedisError, InfraError, OSError):
                if entry.deliveries >= self.max_deliveries:
                    await self._dead_letter(entry, "infrastructure failures on every delivery")
                    return
                raise
            except Exception as exc:  # a bug must not wedge the stream: park the entry, alert
                log.exception("intent %s failed", entry.entry_id)
                if entry.deliveries >= self.max_deliveries:
                    await self._dead_letter(entry, f"handler error: {exc!r}")
                return
            reply = outcome.response
            if outcome.kind.refused_for_content and reply.status is None:
                # Refused with nothing stored: a REST caller would have read the 4xx; here the
                # dead-letter stream and its alert are the only record.
                await self._dead_letter(entry, f"refused ({http_status(outcome)}): {reply.message}")
                return
            await ack(self.redis, self.stream, self.group, entry.entry_id)
            self.handled += 1

    async def _dead_letter(self, entry: StreamEntry, why: str) -> None:
        await xadd_json(
            self.redis,
            keys.ORDERS_INTENT_DLQ,
            {
                "entry_id": entry.entry_id,
                "raw": entry.raw,
                "why": why,
                "deliveries": entry.deliveries,
            },
        )
        alert = Alert(
            source="s4-router",
            kind="INTENT_DEAD_LETTER",
            severity="critical",
            message=f"{self.stream} {entry.entry_id}: {why}",
            ts=self.clock.now_ms(),
            data={"entry_id": entry.entry_id},
        )
        if self.metrics is not None:  # the alert rules see alerts through this counter only
            self.metrics.alerts.labels(alert.kind).inc()
        await xadd_json(self.redis, keys.ALERTS, alert.model_dump(mode="json"))
        await ack(self.redis, self.stream, self.group, entry.entry_id)
        log.error("dead-lettered %s: %s", entry.entry_id, why)

"""Streams S4 writes: `router:events` (every policy step), `alerts`, `orders:executed`.

Router events and alerts are best effort: an execution must not stop because Redis hiccuped
while we were logging a step (the step itself is persisted in the store). `orders:executed`
is not: it is published after the order and its fills are persisted, and a failure propagates
so the step is retried. Outcome events (`orders:executed` and `EXEC_DONE` on `router:events`) are
published **once** per parent: a marker and the entry are written by one script
(`svckit.redisio.xadd_once`), so a retried step, a second request or a restart after a crash
between publishing and storing the terminal status publishes nothing twice.
"""

from __future__ import annotations

import logging
from typing import Any

from redis.exceptions import RedisError

from s4_router.metrics import RouterMetrics
from svckit import jsonutil, keys
from svckit.clock import Clock
from svckit.errors import InfraError
from svckit.redisio import STREAM_MAXLEN, RedisClient, xadd_json, xadd_once
from tradekit.events import Alert, OrderExecuted, RouterEvent, Severity

log = logging.getLogger(__name__)


class Publisher:
    def __init__(self, redis: RedisClient, *, clock: Clock, metrics: RouterMetrics) -> None:
        self.redis = redis
        self.clock = clock
        self.metrics = metrics

    async def event(
        self,
        name: str,
        *,
        client_order_id: str | None,
        symbol: str | None,
        data: dict[str, Any],
        once: bool = False,
    ) -> None:
        """A `router:events` entry, best effort; `once`: at most one per name and parent."""
        ev = RouterEvent(
            event=name,
            client_order_id=client_order_id,
            symbol=symbol,
            ts=self.clock.now_ms(),
            data=data,
        )
        doc = ev.model_dump(mode="json")
        try:
            if once:
                marker = f"{name}:{client_order_id}"
                await xadd_once(self.redis, keys.ROUTER_EVENTS, marker, doc)
            else:
                await xadd_json(self.redis, keys.ROUTER_EVENTS, doc)
        except InfraError as exc:
            log.warning("router event %s not published: %s", name, exc)

    async def events(
        self,
        batch: list[tuple[str, dict[str, Any]]],
        *,
        client_order_id: str | None,
        symbol: str | None,
    ) -> None:
        """Several events of one step in one round trip (pipelined XADDs)."""
        ts = self.clock.now_ms()
        try:
            pipe = self.redis.pipeline(transaction=False)
            for name, data in batch:
                ev = RouterEvent(
                    event=name, client_order_id=client_order_id, symbol=symbol, ts=ts, data=data
                )
                pipe.xadd(
                    keys.ROUTER_EVENTS,
                    {"data": jsonutil.dumps(ev.model_dump(mode="json"))},
                    maxlen=STREAM_MAXLEN,
                    approximate=True,
                )
            await pipe.execute()
        except (InfraError, RedisError) as exc:
            log.warning("%d router events not published: %s", len(batch), exc)

    async def alert(
        self,
        kind: str,
        message: str,
        *,
        severity: Severity = "warning",
        data: dict[str, Any] | None = None,
    ) -> None:
        log.warning("alert %s: %s", kind, message)
        self.metrics.alerts.labels(kind).inc()
        alert = Alert(
            source="s4-router",
            kind=kind,
            severity=severity,
            message=message,
            ts=self.clock.now_ms(),
            data=data or {},
        )
        try:
            await xadd_json(self.redis, keys.ALERTS, alert.model_dump(mode="json"))
        except InfraError as exc:
            log.error("alert %s not published: %s", kind, exc)

    async def executed(self, ev: OrderExecuted) -> None:
        """Publish the parent's outcome once (a second call publishes nothing)."""
        await xadd_once(
            self.redis, keys.ORDERS_EXECUTED, ev.client_order_id, ev.model_dump(mode="json")
        )

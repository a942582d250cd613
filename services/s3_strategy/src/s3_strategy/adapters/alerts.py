"""Alerts on the `alerts` stream (tradekit.events.Alert), rate-limited per (kind, symbol).

A condition that holds for every decision (no rules for a symbol, a factor nobody publishes)
would otherwise write one alert per decision; one per `S3_ALERT_MIN_INTERVAL_S` per replica is
enough to page someone, and the metrics carry the exact counts. Publish failures are never
rate-limited: each one names an intent. Writing an alert never fails a decision.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from s3_strategy.metrics import StrategyMetrics
from svckit import keys
from svckit.clock import Clock
from svckit.redisio import RedisClient, xadd_json
from tradekit.events import Alert, Severity

log = logging.getLogger(__name__)


@dataclass(kw_only=True, eq=False)
class AlertSink:
    redis: RedisClient
    clock: Clock
    metrics: StrategyMetrics
    min_interval_s: float
    _last: dict[tuple[str, str], int] = field(default_factory=dict, init=False)

    async def emit(
        self,
        kind: str,
        message: str,
        *,
        severity: Severity = "warning",
        symbol: str | None = None,
        data: dict[str, Any] | None = None,
        rate_limit: bool = True,
    ) -> bool:
        now = self.clock.now_ms()
        key = (kind, symbol or "")
        if rate_limit:
            last = self._last.get(key)
            if last is not None and now - last < int(self.min_interval_s * 1000):
                return False
            self._last[key] = now
        alert = Alert(
            source="s3-strategy",
            kind=kind,
            severity=severity,
            message=message,
            ts=now,
            data={**(data or {}), **({"symbol": symbol} if symbol else {})},
        )
        self.metrics.alerts.labels(kind).inc()
        log.warning("alert %s: %s", kind, message)
        try:
            await xadd_json(self.redis, keys.ALERTS, alert.model_dump(mode="json"))
        except Exception:
            log.exception("could not write alert %s", kind)
            return False
        return True

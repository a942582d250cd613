"""The feeder's Prometheus metrics (its own registry) and what /health reads from them."""

from __future__ import annotations

import time
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge


class FeedMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self._published = Counter(
            "md_snapshots_published_total",
            "mkt:tick + mkt:depth + feat:last sets published, by symbol",
            ["symbol"],
            registry=self.registry,
        )
        self._errors = Counter(
            "md_source_errors_total",
            "failed reads or publishes (redis: Redis unavailable; source: venue or stream; "
            "internal: an unexpected error, logged with its traceback)",
            ["kind"],
            registry=self.registry,
        )
        self._last = Gauge(
            "md_last_publish_timestamp_seconds",
            "wall time of the latest publish (alert when it stops moving)",
            registry=self.registry,
        )
        self.last_publish_s: float | None = None

    def published(self, symbols: Iterable[str]) -> None:
        now = time.time()
        for symbol in symbols:
            self._published.labels(symbol=symbol).inc()
        self.last_publish_s = now
        self._last.set(now)

    def error(self, kind: str) -> None:
        self._errors.labels(kind=kind).inc()

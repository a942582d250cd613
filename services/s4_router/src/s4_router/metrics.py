"""S4 Prometheus metrics (names follow spec §D6 with Prometheus conventions)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from svckit.metrics import LATENCY_BUCKETS


class RouterMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.submit_latency = Histogram(
            "router_submit_latency_seconds",
            "intent accepted -> venue acknowledged the first order",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.intents = Counter(
            "router_intents_total", "intents handled by outcome", ["source", "result"], registry=r
        )
        self.duplicates = Counter(
            "router_duplicate_intents_total", "resends answered from the store", registry=r
        )
        self.venue_errors = Counter(
            "router_venue_errors_total", "venue errors by class", ["kind"], registry=r
        )
        self.fills = Counter("router_fills_total", "fills persisted", ["liquidity"], registry=r)
        self.fees = Counter("router_fees_usdt_total", "fees paid (quote)", registry=r)
        self.slippage = Histogram(
            "router_slippage_bps",
            "fill price vs mid at send, adverse positive",
            buckets=(-5, -2, -1, -0.5, 0, 0.5, 1, 2, 5, 10, 20, 50),
            registry=r,
        )
        self.cb_state = Gauge(
            "router_circuit_breaker_state", "0 closed, 1 half-open, 2 open", registry=r
        )
        self.stream_lag = Gauge(
            "router_stream_lag", "pending entries of the consumer group", registry=r
        )
        self.ambiguous = Counter(
            "router_ambiguous_submits_total", "submits resolved from venue evidence", registry=r
        )

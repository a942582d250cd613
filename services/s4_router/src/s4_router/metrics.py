"""S4 Prometheus metrics (names follow spec §D6 with Prometheus conventions; the alert rules in
deploy/prometheus/alerts.yml and the Grafana dashboard use these names)."""

from __future__ import annotations

import functools

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from svckit.metrics import LATENCY_BUCKETS


class RouterMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        # Every metric of this instance goes to its own registry (replicas and tests apart).
        counter = functools.partial(Counter, registry=self.registry)
        gauge = functools.partial(Gauge, registry=self.registry)
        histogram = functools.partial(Histogram, registry=self.registry)
        self.submit_latency = histogram(
            "router_submit_latency_seconds",
            "intent accepted -> venue acknowledged the first order",
            buckets=LATENCY_BUCKETS,
        )
        self.intents = counter(
            "router_intents_total", "intents handled by outcome", ["source", "result"]
        )
        self.duplicates = counter(
            "router_duplicate_intents_total", "resends answered from the store"
        )
        self.refused = counter(
            "router_entries_refused_total",
            "new entries refused before anything was sent",
            ["reason"],
        )
        self.venue_errors = counter("router_venue_errors_total", "venue errors by class", ["kind"])
        self.children = counter("router_child_orders_total", "child orders sent by role", ["role"])
        self.naked = histogram(
            "router_naked_seconds",
            "position open with no acknowledged venue-side stop (first entry fill -> stop ack)",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10),
        )
        self.oco_cancel = histogram(
            "router_oco_sibling_cancel_seconds",
            "OCO guardian: leg fill observed -> sibling cancel sent",
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1),
        )
        self.oco_anomalies = counter(
            "router_oco_guardian_anomalies_total", "OCO guardian alerts raised"
        )
        self.reconcile_findings = counter(
            "router_reconcile_findings_total", "reconciliation findings", ["kind"]
        )
        self.fills = counter("router_fills_total", "fills persisted", ["liquidity"])
        self.overfills = counter(
            "router_overfills_total", "venue fills past an order's quantity (stored, alerted)"
        )
        self.request_timeouts = counter(
            "router_request_timeouts_total",
            "HTTP requests answered 503 at their deadline",
            ["endpoint"],
        )
        self.fees = counter("router_fees_usdt_total", "fees paid (quote)")
        self.slippage = histogram(
            "router_slippage_bps",
            "fill price vs arrival mid, adverse positive",
            buckets=(-20, -10, -5, -2, -1, -0.5, 0, 0.5, 1, 2, 5, 10, 20, 50),
        )
        self.maker_fill_ratio = gauge(
            "router_maker_fill_ratio", "filled / posted quantity of maker children (rolling window)"
        )
        self.taker_rate = gauge(
            "router_taker_rate", "taker share of filled quantity (rolling window)"
        )
        self.twap_slice_fill_ratio = gauge(
            "router_twap_slice_fill_ratio",
            "filled / target quantity of TWAP slices (rolling window)",
        )
        self.cb_state = gauge("router_circuit_breaker_state", "0 closed, 1 half-open, 2 open")
        self.clock_skew_ms = gauge("router_clock_skew_ms", "venue server time minus local time")
        self.stream_lag = gauge("router_stream_lag", "pending entries of the consumer group")
        self.ambiguous = counter(
            "router_ambiguous_submits_total", "submits resolved from venue evidence"
        )
        self.executions = gauge("router_executions_active", "executions running on this replica")
        self.recovered = counter(
            "router_executions_recovered_total",
            "executions resumed from the store (restart or dead replica)",
        )
        self.weight_used = gauge(
            "router_venue_weight_used",
            "venue request weight used this minute (X-MBX-USED-WEIGHT-1M), per weight pool",
            ["pool"],
        )
        self.weight_paced = counter(
            "router_venue_weight_paced_total",
            "normal-lane venue calls held back by the request-weight budget",
            ["outcome"],
        )
        self.book_source = counter(
            "router_pretrade_book_total",
            "pre-trade books by source (published mkt:depth, venue fetch, stale published)",
            ["source"],
        )
        self.clock_samples_discarded = counter(
            "router_clock_samples_discarded_total",
            "server-time samples discarded for a round trip beyond S4_CLOCK_SKEW_MAX_RTT_MS",
        )
        self.alerts = counter("router_alerts_total", "alerts published", ["kind"])

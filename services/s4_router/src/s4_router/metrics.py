"""S4 Prometheus metrics (names follow spec §D6 with Prometheus conventions; the alert rules in
deploy/prometheus/alerts.yml and the Grafana dashboard use these names)."""

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
        self.refused = Counter(
            "router_entries_refused_total",
            "new entries refused before anything was sent",
            ["reason"],
            registry=r,
        )
        self.venue_errors = Counter(
            "router_venue_errors_total", "venue errors by class", ["kind"], registry=r
        )
        self.children = Counter(
            "router_child_orders_total", "child orders sent by role", ["role"], registry=r
        )
        self.naked = Histogram(
            "router_naked_seconds",
            "position open with no acknowledged venue-side stop (first entry fill -> stop ack)",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10),
            registry=r,
        )
        self.oco_cancel = Histogram(
            "router_oco_sibling_cancel_seconds",
            "OCO guardian: leg fill observed -> sibling cancel sent",
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1),
            registry=r,
        )
        self.oco_anomalies = Counter(
            "router_oco_guardian_anomalies_total", "OCO guardian alerts raised", registry=r
        )
        self.reconcile_findings = Counter(
            "router_reconcile_findings_total", "reconciliation findings", ["kind"], registry=r
        )
        self.fills = Counter("router_fills_total", "fills persisted", ["liquidity"], registry=r)
        self.overfills = Counter(
            "router_overfills_total",
            "venue fills past an order's quantity (stored, alerted)",
            registry=r,
        )
        self.request_timeouts = Counter(
            "router_request_timeouts_total",
            "HTTP requests answered 503 at their deadline",
            ["endpoint"],
            registry=r,
        )
        self.fees = Counter("router_fees_usdt_total", "fees paid (quote)", registry=r)
        self.slippage = Histogram(
            "router_slippage_bps",
            "fill price vs arrival mid, adverse positive",
            buckets=(-20, -10, -5, -2, -1, -0.5, 0, 0.5, 1, 2, 5, 10, 20, 50),
            registry=r,
        )
        self.maker_fill_ratio = Gauge(
            "router_maker_fill_ratio",
            "filled / posted quantity of maker children (rolling window)",
            registry=r,
        )
        self.taker_rate = Gauge(
            "router_taker_rate", "taker share of filled quantity (rolling window)", registry=r
        )
        self.twap_slice_fill_ratio = Gauge(
            "router_twap_slice_fill_ratio",
            "filled / target quantity of TWAP slices (rolling window)",
            registry=r,
        )
        self.cb_state = Gauge(
            "router_circuit_breaker_state", "0 closed, 1 half-open, 2 open", registry=r
        )
        self.clock_skew_ms = Gauge(
            "router_clock_skew_ms", "venue server time minus local time", registry=r
        )
        self.stream_lag = Gauge(
            "router_stream_lag", "pending entries of the consumer group", registry=r
        )
        self.ambiguous = Counter(
            "router_ambiguous_submits_total", "submits resolved from venue evidence", registry=r
        )
        self.executions = Gauge(
            "router_executions_active", "executions running on this replica", registry=r
        )
        self.recovered = Counter(
            "router_executions_recovered_total",
            "executions resumed from the store (restart or dead replica)",
            registry=r,
        )
        self.weight_used = Gauge(
            "router_venue_weight_used",
            "venue request weight used this minute (X-MBX-USED-WEIGHT-1M), per weight pool",
            ["pool"],
            registry=r,
        )
        self.weight_paced = Counter(
            "router_venue_weight_paced_total",
            "normal-lane venue calls held back by the request-weight budget",
            ["outcome"],
            registry=r,
        )
        self.book_source = Counter(
            "router_pretrade_book_total",
            "pre-trade books by source (published mkt:depth, venue fetch, stale published)",
            ["source"],
            registry=r,
        )
        self.clock_samples_discarded = Counter(
            "router_clock_samples_discarded_total",
            "server-time samples discarded for a round trip beyond S4_CLOCK_SKEW_MAX_RTT_MS",
            registry=r,
        )
        self.alerts = Counter("router_alerts_total", "alerts published", ["kind"], registry=r)

"""S3 Prometheus metrics (spec §C6: decide latency, rules fired, gate skips, publish failures).

Label sets are closed: `reason` comes from domain.reasons.Reason, `rule_id` from the loaded
bundle (bounded by its size), `path` is stream|rest, `kind` an alert kind.
"""

from __future__ import annotations

import functools

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from svckit.metrics import LATENCY_BUCKETS

# The pure pipeline runs in microseconds; /decide latency uses the shared buckets.
PIPELINE_BUCKETS = (
    0.000005,
    0.00001,
    0.000025,
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.005,
    0.01,
)


class StrategyMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        # Every metric of this instance goes to its own registry (replicas and tests apart).
        counter = functools.partial(Counter, registry=self.registry)
        gauge = functools.partial(Gauge, registry=self.registry)
        histogram = functools.partial(Histogram, registry=self.registry)
        self.decide_latency = histogram(
            "s3_decide_latency_seconds",
            "POST /decide latency (I/O included)",
            ["dry_run"],
            buckets=LATENCY_BUCKETS,
        )
        self.pipeline_latency = histogram(
            "s3_pipeline_latency_seconds",
            "pure decision pipeline (no I/O)",
            buckets=PIPELINE_BUCKETS,
        )
        self.decisions = counter(
            "s3_decisions_total", "decisions by outcome", ["decision", "reason"]
        )
        self.rules_fired = counter("s3_rules_fired_total", "rules fired by id", ["rule_id"])
        self.gate_skips = counter("s3_gate_skips_total", "skips by reason code", ["reason"])
        self.publish_failures = counter(
            "s3_publish_failures_total", "intent publish failures by path", ["path"]
        )
        self.publish_undelivered = counter(
            "s3_publish_undelivered_total",
            "open decisions whose intent neither path delivered (S4 never got it)",
        )
        self.ml_fallbacks = counter(
            "s3_ml_fallbacks_total", "scorer timeouts/errors (fallback applied)"
        )
        self.alerts = counter("s3_alerts_total", "alerts written by kind", ["kind"])
        self.rules_loaded = gauge("s3_rules_loaded", "ENABLED rules in the loaded bundle")
        self.signal_batch = histogram(
            "s3_signal_batch_size",
            "signals per group commit",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
        )
        self.signal_commit = histogram(
            "s3_signal_commit_seconds",
            "time to store one group commit of signals",
            buckets=LATENCY_BUCKETS,
        )
        self.config_info = gauge(
            "s3_config_info", "loaded config (value 1)", ["config_rev", "ctx_rev"]
        )
        self.config_reloads = counter(
            "s3_config_reloads_total", "hot reload attempts by result (ok|failed)", ["result"]
        )
        self.config_lagging = gauge(
            "s3_config_lagging",
            "1 while this replica cannot load the active config revision (serves the last good)",
        )
        # Scheduled tasks (issue 14): task ∈ rebalance-symmetric|rebalance-intelligent|15-min-job,
        # action ∈ BUY|SELL|HOLD|none, outcome ∈ success|partial|error|replayed|dry_run|denied.
        self.task_runs = counter(
            "s3_task_runs_total", "scheduled task runs", ["task", "action", "outcome"]
        )
        self.task_duration = histogram(
            "s3_task_duration_seconds",
            "scheduled task run duration",
            ["task"],
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
        )

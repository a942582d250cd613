"""S3 Prometheus metrics (spec §C6: decide latency, rules fired, gate skips, publish failures)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

from svckit.metrics import LATENCY_BUCKETS


class StrategyMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.decide_latency = Histogram(
            "s3_decide_latency_seconds", "POST /decide pipeline latency", ["dry_run"],
            buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.decisions = Counter(
            "s3_decisions_total", "decisions by outcome", ["decision", "reason"], registry=r
        )
        self.rules_fired = Counter(
            "s3_rules_fired_total", "rules fired by id", ["rule_id"], registry=r
        )
        self.gate_skips = Counter(
            "s3_gate_skips_total", "skips by reason code", ["reason"], registry=r
        )
        self.publish_failures = Counter(
            "s3_publish_failures_total", "intent publish failures by path", ["path"], registry=r
        )

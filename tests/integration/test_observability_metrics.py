"""The dashboard and the alert rules read metrics the services really export: S3, S4 and the
market-data feeder are built as they run, and their /metrics families are compared with every
metric name in deploy/grafana/dashboard.json and deploy/prometheus/alerts.yml."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from md_feeder.app import create_app as md_app
from md_feeder.config import Settings as MDSettings
from s3_strategy.bootstrap import bootstrap as s3_bootstrap
from s3_strategy.config import Settings as S3Settings
from s3_strategy.entrypoints.api import create_app as s3_app
from s4_router.bootstrap import bootstrap as s4_bootstrap
from s4_router.config import Settings as S4Settings
from s4_router.entrypoints.api import create_app as s4_app
from svckit.redisio import RedisClient
from svckit.store.sqlite import SqliteStore
from tests.conftest import FIXTURES
from tests.unit.test_observability_files import alert_exprs, dashboard_exprs, promql_metric_names

# Series Prometheus makes itself (scrape health), not a service.
PROMETHEUS_OWN = {"up"}
SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
    "info": ("_info",),
    "stateset": ("",),
    "enum": ("",),
    "unknown": ("",),
}


def series_names(exposition: str) -> set[str]:
    """Every series name a scrape of this text can yield, labelled families with no child yet
    included (prometheus_client prints their HELP/TYPE)."""
    names = set()
    for fam in text_string_to_metric_families(exposition):
        names |= {fam.name + s for s in SUFFIXES[fam.type]}
        names |= {s.name for s in fam.samples}
    return names


@pytest.fixture
async def exported(
    redis: RedisClient, redis_addresses: list[str], tmp_path: Path
) -> AsyncIterator[dict[str, set[str]]]:
    s4_settings = S4Settings(
        redis_addresses=redis_addresses,
        data_dir=tmp_path,
        fixtures_dir=FIXTURES,
        route_table_path=FIXTURES / "route_table.json",
        market_publish_ms=50,
        stream_block_ms=50,
    )
    s3_settings = S3Settings(
        redis_addresses=redis_addresses,
        data_dir=tmp_path,
        fixtures_dir=FIXTURES,
        s4_url="http://s4",
    )
    md_settings = MDSettings(redis_addresses=redis_addresses, sim_block_ms=50)
    out: dict[str, set[str]] = {}
    async with AsyncExitStack() as es:
        s4_store = SqliteStore(tmp_path / "s4.sqlite3")
        es.push_async_callback(s4_store.close)
        s3_store = SqliteStore(tmp_path / "s3.sqlite3")
        es.push_async_callback(s3_store.close)
        s4c = await s4_bootstrap(s4_settings, redis=redis, store=s4_store)
        s3c = await s3_bootstrap(s3_settings, redis=redis, store=s3_store)
        apps = {
            "s4-router": s4_app(s4_settings, container=s4c),
            "s3-strategy": s3_app(s3_settings, container=s3c),
            "md-feeder": md_app(md_settings, redis=redis),
        }
        for name, app in apps.items():
            await es.enter_async_context(app.router.lifespan_context(app))
            client = await es.enter_async_context(
                httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://x")
            )
            resp = await client.get("/metrics")
            assert resp.status_code == 200, (name, resp.text)
            out[name] = series_names(resp.text)
        yield out


def test_series_names_with_unobserved_labelled_families_still_lists_them() -> None:
    text = (
        "# HELP a_total x\n# TYPE a_total counter\n"
        "# HELP h_seconds x\n# TYPE h_seconds histogram\n"
        'h_seconds_bucket{le="+Inf"} 0.0\nh_seconds_count 0.0\nh_seconds_sum 0.0\n'
    )
    assert {"a_total", "h_seconds_bucket", "h_seconds_count"} <= series_names(text)


async def test_dashboard_metrics_with_running_services_are_all_exported(
    exported: dict[str, set[str]],
) -> None:
    every = set().union(*exported.values()) | PROMETHEUS_OWN
    used = set().union(*(promql_metric_names(e) for e in dashboard_exprs()))
    assert used, "the dashboard has queries"
    assert sorted(used - every) == [], "dashboard queries metrics no service exports"


async def test_alert_rule_metrics_with_running_services_are_all_exported(
    exported: dict[str, set[str]],
) -> None:
    every = set().union(*exported.values()) | PROMETHEUS_OWN
    used = set().union(*(promql_metric_names(e) for e in alert_exprs()))
    assert used
    assert sorted(used - every) == [], "alert rules on metrics no service exports"
    # Each service's own families are really there (the fixture read three registries).
    assert "router_alerts_total" in exported["s4-router"]
    assert "s3_alerts_total" in exported["s3-strategy"]
    assert "md_last_publish_timestamp_seconds" in exported["md-feeder"]

"""S3 over HTTP (in-process ASGI) on a real Redis and a SQLite store: decisions, persistence,
bad input."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from s3_strategy.bootstrap import S3Container, bootstrap
from s3_strategy.config import Settings
from s3_strategy.entrypoints.api import create_app
from svckit import keys
from svckit.embedded_redis import EmbeddedRedis
from svckit.redisio import RedisClient, make_redis
from svckit.store.sqlite import SqliteStore
from tests.conftest import FIXTURES
from tests.helpers import S3_AUTH, S3_TEST_POLL_S, put_features

# tests.helpers' BTC snapshot lacks two factors the fixture rules for BTCUSDT reference
# rho_usdttwd_14, R-011: rv_1h); without them every decision is FEATURE_MISSING.
RULE_FEATURES = {"rho_usdttwd_14": 0.1, "rv_1h": 0.01}


@pytest.fixture
async def s3(
    redis: RedisClient, redis_addresses: list[str], tmp_path: Path
) -> AsyncIterator[tuple[httpx.AsyncClient, S3Container]]:
    # Several entries per market, so that a repeated decision reaches the idempotency check.
    settings = Settings(
        redis_addresses=redis_addresses,
        data_dir=tmp_path,
        fixtures_dir=FIXTURES,
        s4_url=None,
        concurrent_entries_per_market=5,
        config_poll_sec=S3_TEST_POLL_S,
    )
    store = SqliteStore(tmp_path / "store.sqlite3")
    container = await bootstrap(settings, redis=redis, store=store)
    app = create_app(settings, container=container)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://s3", headers=S3_AUTH
        ) as client,
    ):
        yield client, container
    await store.close()


async def test_decide_dry_run_with_fresh_features_opens_and_emits_nothing(
    s3: tuple[httpx.AsyncClient, S3Container], redis: RedisClient
) -> None:
    client, c = s3
    await put_features(redis, **RULE_FEATURES)
    r = await client.post("/decide", json={"symbol": "BTCUSDT", "dry_run": True})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["decision"] == "open" and body["reason"] == "OK"
    assert body["config_rev"] == c.service.engine.config_rev
    assert body["intent"]["qty"] == "0.006"  # 20 USDT · 20x / 65000.5 → step 0.001
    assert body["intent"]["client_order_id"].startswith("s3-btc-")
    assert [g["gate"] for g in body["gates"]] == [
        "funding_abs",
        "spread_bps",
        "depth_top1_usdt",
        "risk_budget",
        "concurrent_entries",
    ]
    assert await redis.xlen(keys.ORDERS_INTENT) == 0
    assert await redis.get(keys.idem_order(body["intent"]["client_order_id"])) is None
    signal = await c.store.get("signals", body["signal_id"])
    assert signal is not None and signal["dry_run"] is True
    assert signal["config_rev"] == c.service.engine.config_rev and signal["decision"] == "open"


async def test_decide_with_wide_spread_skips_with_gate_reason(
    s3: tuple[httpx.AsyncClient, S3Container], redis: RedisClient
) -> None:
    client, _ = s3
    await put_features(redis, spread_bps=9.0, **RULE_FEATURES)
    body = (await client.post("/decide", json={"symbol": "BTCUSDT"})).json()
    assert body["decision"] == "skip" and body["reason"] == "SPREAD_TOO_WIDE"
    failed = body["gates"][-1]
    assert failed == {"gate": "spread_bps", "passed": False, "observed": 9.0, "threshold": 3.0}
    assert await redis.xlen(keys.ORDERS_INTENT) == 0


async def test_decide_with_missing_or_stale_features_skips_not_errors(
    s3: tuple[httpx.AsyncClient, S3Container], redis: RedisClient
) -> None:
    client, _ = s3
    body = (await client.post("/decide", json={"symbol": "BTCUSDT"})).json()
    assert (body["decision"], body["reason"]) == ("skip", "FEATURE_MISSING")
    await put_features(redis, ts=1)
    body = (await client.post("/decide", json={"symbol": "BTCUSDT"})).json()
    assert (body["decision"], body["reason"]) == ("skip", "FEATURE_STALE")


async def test_decide_live_twice_on_same_features_emits_one_intent(
    s3: tuple[httpx.AsyncClient, S3Container], redis: RedisClient
) -> None:
    client, _ = s3
    await put_features(redis, **RULE_FEATURES)
    first = (await client.post("/decide", json={"symbol": "BTCUSDT"})).json()
    second = (await client.post("/decide", json={"symbol": "BTCUSDT"})).json()
    assert first["decision"] == "open" and first["publish"]["stream"] == "ok"
    assert (second["decision"], second["reason"]) == ("skip", "DUPLICATE_DECISION")
    assert await redis.xlen(keys.ORDERS_INTENT) == 1


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        ({"symbol": "DOGEUSDT"}, 422, "unknown symbol"),
        ({}, 422, "symbol"),
        ({"symbol": 5}, 422, "symbol"),
        ({"symbol": "BTCUSDT", "dry_run": "perhaps"}, 422, "dry_run"),
        ({"symbol": "BTCUSDT", "sideHint": "UP"}, 422, "sideHint"),
        ({"symbol": "BTCUSDT", "context": {"features": {"mid": "x"}}}, 422, "features"),
        ({"symbol": "BTCUSDT", "extra": 1}, 422, "extra"),
    ],
)
async def test_decide_with_bad_input_returns_4xx_naming_the_field(
    s3: tuple[httpx.AsyncClient, S3Container], body: object, status: int, needle: str
) -> None:
    client, _ = s3
    r = await client.post("/decide", json=body)
    assert r.status_code == status
    assert needle in r.text


async def test_decide_with_non_json_body_returns_422(
    s3: tuple[httpx.AsyncClient, S3Container],
) -> None:
    client, _ = s3
    r = await client.post("/decide", content=b"{oops", headers={"content-type": "application/json"})
    assert r.status_code == 422


async def test_health_and_metrics_with_running_service_report_dependencies(
    s3: tuple[httpx.AsyncClient, S3Container],
) -> None:
    client, c = s3
    h = (await client.get("/health")).json()
    assert h["status"] == "ok" and h["redis"] is True and h["store"]["ok"] is True
    assert h["config_rev"] == c.service.engine.config_rev and h["rules_loaded"] >= 1
    await client.post("/decide", json={"symbol": "BTCUSDT", "dry_run": True})
    m = (await client.get("/metrics")).text
    assert "s3_decide_latency_seconds_bucket" in m and "s3_gate_skips_total" in m


async def test_decide_with_redis_down_returns_503_and_health_reports_it(tmp_path: Path) -> None:
    server = EmbeddedRedis().start()
    client_r = make_redis(server.addresses)
    settings = Settings(
        redis_addresses=server.addresses, data_dir=tmp_path, fixtures_dir=FIXTURES, s4_url=None
    )
    store = SqliteStore(tmp_path / "store.sqlite3")
    container = await bootstrap(settings, redis=client_r, store=store)
    app = create_app(settings, container=container)
    try:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://s3", headers=S3_AUTH
            ) as cl,
        ):
            server.stop()
            h = await cl.get("/health")
            assert h.status_code == 503 and h.json()["redis"] is False
            live = await cl.get("/livez", headers={"Authorization": ""})
            assert live.status_code == 200 and live.json() == {"status": "alive", "ended": []}
            r = await cl.post("/decide", json={"symbol": "BTCUSDT"})
            assert r.status_code == 503 and "unavailable" in r.json()["detail"]
    finally:
        server.stop()
        await client_r.aclose()
        await store.close()

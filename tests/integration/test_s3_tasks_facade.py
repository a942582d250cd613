"""S3's tasks reading a venue over HTTP: `S3_EXCHANGE=binance` with `S3_EXCHANGE_BASE_URL` at the
simulator's facade (ccxt, real loopback HTTP), so the intelligent rebalance computes MA7/MA25
from the simulator's own QRLUSDT 5-minute klines, and the 15-minute job values the holding at
the venue's ticker. Dry runs: nothing is sent."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from s3_strategy.bootstrap import bootstrap
from s3_strategy.config import Settings
from s3_strategy.domain.rebalance.intelligent import IntelligentConfig, ma_signal
from s3_strategy.entrypoints.api import create_app
from svckit.redisio import RedisClient
from svckit.store.sqlite import SqliteStore
from tests.conftest import FIXTURES
from tests.contract.facade_harness import API_KEY, API_SECRET, START_MS, SwappableApp, plug
from tests.facade_server import FacadeServer
from tests.tracking_clock import TrackingClock
from venue.defaults import default_venue
from venue.venue import Venue

ADMIN = "facade-admin-token-0123456789abcdef"
MINUTE = 60_000


@pytest.fixture
async def s3(
    facade_server: tuple[FacadeServer, SwappableApp],
    redis: RedisClient,
    redis_addresses: list[str],
    tmp_path: Path,
) -> AsyncIterator[tuple[httpx.AsyncClient, Venue]]:
    srv, slot = facade_server
    venue = default_venue(clock=TrackingClock(START_MS), seed=9, step_ms=MINUTE, replay=False)
    venue.advance(151 * MINUTE)
    plug(slot, venue)
    settings = Settings(
        redis_addresses=redis_addresses,
        data_dir=tmp_path,
        fixtures_dir=FIXTURES,
        s4_url=None,
        admin_token=ADMIN,
        exchange="binance",
        exchange_base_url=srv.url,
        exchange_api_key=API_KEY,
        exchange_api_secret=API_SECRET,
    )
    store = SqliteStore(tmp_path / "store.sqlite3")
    c = await bootstrap(settings, redis=redis, store=store)
    app = create_app(settings, container=c)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://s3") as h,
    ):
        yield h, venue
    await store.close()


async def test_intelligent_dry_run_reads_the_simulators_5m_klines_through_ccxt(
    s3: tuple[httpx.AsyncClient, Venue],
) -> None:
    h, venue = s3
    r = await h.post(
        "/tasks/rebalance/intelligent",
        headers={"Authorization": f"Bearer {ADMIN}"},
        json={"dry_run": True, "context": {"cost_avg": "0.5"}},
    )
    assert r.status_code == 200, r.text
    plan = r.json()["plan"]
    closes = [b.close for b in venue.klines("QRLUSDT", "5m")[:-1]][-25:]
    ma_s, ma_l, sig, _ = ma_signal(closes, IntelligentConfig())
    assert plan["bars"] == 25
    assert plan["ma_indicators"]["signal"] == sig.value
    assert Decimal(plan["ma_indicators"]["ma_short"]) == ma_s
    assert Decimal(plan["ma_indicators"]["ma_long"]) == ma_l
    # 20,000 QRL at ~0.5 vs 100,000 USDT: far below target
    assert Decimal(plan["ratio"]) < Decimal("0.2")


async def test_15_min_job_dry_run_values_the_holding_at_the_venues_ticker(
    s3: tuple[httpx.AsyncClient, Venue],
) -> None:
    h, _ = s3
    r = await h.post(
        "/tasks/15-min-job", headers={"Authorization": f"Bearer {ADMIN}"}, json={"dry_run": True}
    )
    body = r.json()
    assert body["status"] == "success", body
    pos = body["cost_update"]["positions"]["QRL"]
    assert Decimal(pos["qty"]) == 20000 and pos["source"] == "estimate"
    assert Decimal(pos["unrealised_pnl"]) == 20000 * (Decimal(pos["price"]) - Decimal("0.05"))
    assert body["rebalance"]["plan"]["action"] == "BUY"
    assert body["rebalance"]["orders"] == []

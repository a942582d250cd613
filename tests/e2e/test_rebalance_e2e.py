"""End to end on the simulator: a *scheduled* symmetric rebalance of QRLUSDT. S3 (tasks) and S4
(router + venue simulator) run in-process on a real Redis and one SQLite file; the scheduler's
call carries its headers and a bearer token; the SPOT intent goes through S4's normal contract
(REST + `orders:intent`); the run ends with its fills persisted and the QRL:USDT value ratio back
within the threshold. A second slot then holds, and a replay trades nothing.

S3 reads the account and ticker through its SpotReader port; here the port is implemented over
the same in-process venue S4 trades on (S3's production adapter is ccxt: adapters/spot_reader)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from s3_strategy.adapters.spot_reader import SpotBalance, SpotReader, SpotReadError, SpotTicker
from s3_strategy.bootstrap import bootstrap as s3_bootstrap
from s3_strategy.config import Settings as S3Settings
from s3_strategy.entrypoints.api import create_app as s3_app
from s4_router.bootstrap import S4Container
from s4_router.bootstrap import bootstrap as s4_bootstrap
from s4_router.config import Settings as S4Settings
from s4_router.entrypoints.api import create_app as s4_app
from svckit.redisio import RedisClient
from svckit.store.base import Query
from svckit.store.sqlite import SqliteStore
from tests.conftest import FIXTURES
from tests.helpers import S4_AUTH
from tradekit.enums import Market
from venue.venue import Venue

D = Decimal
ADMIN = "e2e-admin-token-0123456789abcdef"
SYMBOL = "QRLUSDT"


class VenueSpotReader(SpotReader):
    """The port over the in-process simulator (what ccxt reads from a real venue)."""

    def __init__(self, venue: Venue) -> None:
        self.venue = venue

    async def balances(self, assets: Sequence[str]) -> dict[str, SpotBalance]:
        bal = self.venue.balances()
        return {
            a: SpotBalance(bal[a].free, bal[a].locked) if a in bal else SpotBalance(D(0))
            for a in assets
        }

    async def ticker(self, symbol: str) -> SpotTicker:
        t = self.venue.ticker(Market.SPOT, symbol)
        if t.bid is None or t.ask is None:
            raise SpotReadError("no book")
        mid = (t.bid[0] + t.ask[0]) / 2
        return SpotTicker(t.last or mid, t.bid[0], t.ask[0])

    async def closes(self, symbol: str, interval: str, limit: int) -> list[Decimal]:
        raise SpotReadError("not used by the symmetric rebalance")


async def wait_for(pred: Callable[[], Awaitable[bool]], within_s: float = 15.0) -> None:
    async with asyncio.timeout(within_s):
        while not await pred():  # noqa: ASYNC110 - polls the store
            await asyncio.sleep(0.02)


def headers(when: datetime, *, token: str = ADMIN, job: str = "rebalance-qrl") -> dict[str, str]:
    return {
        "Authorization": f"Bearer {token}",
        "X-CloudScheduler": "true",
        "X-CloudScheduler-JobName": f"projects/p/locations/l/jobs/{job}",
        "X-CloudScheduler-ScheduleTime": when.isoformat().replace("+00:00", "Z"),
    }


async def scheduled_sell_filled(
    s3: httpx.AsyncClient, s4c: Any, hdrs: dict[str, str], *, within_s: float = 15.0
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Run the scheduled symmetric rebalance (a SELL here), wait until S4 filled its one order,
    and return the answer and the order's fills (which add up to the planned quantity)."""
    r = await s3.post("/tasks/rebalance/symmetric", headers=hdrs)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    plan = body["plan"]
    assert plan["action"] == "SELL" and body["publish"]["s4"]["result"] == "OK", body
    [coid] = body["orders"]

    async def filled() -> bool:
        doc = await s4c.store.get("orders", coid)
        return doc is not None and doc["status"] == "FILLED"

    await wait_for(filled, within_s)
    fills = await s4c.store.find("fills", Query(where={"parent_client_order_id": coid}))
    assert fills and sum(Decimal(f["qty"]) for f in fills) == Decimal(plan["quantity"])
    return body, fills


async def s4_and_s3(
    stacks: AsyncExitStack,
    redis: RedisClient,
    s4_settings: S4Settings,
    s3_settings: S3Settings,
    spot_reader: Callable[[S4Container], SpotReader] | None = None,
) -> tuple[S4Container, httpx.AsyncClient]:
    """S4 and S3 in process on one SQLite file (`data_dir/store.sqlite3`), S3 calling S4's REST
    over ASGI; both lifespans run on `stacks`. `spot_reader` builds S3's SpotReader from S4's
    container (default: the one S3's settings configure). Returns S4's container and a client
    on S3."""
    db = s4_settings.data_dir / "store.sqlite3"
    s4_store = SqliteStore(db)
    stacks.push_async_callback(s4_store.close)
    s4c = await s4_bootstrap(s4_settings, redis=redis, store=s4_store)
    app4 = s4_app(s4_settings, container=s4c)
    await stacks.enter_async_context(app4.router.lifespan_context(app4))
    rest = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app4), base_url="http://s4", headers=S4_AUTH
    )
    s3_store = SqliteStore(db)
    stacks.push_async_callback(s3_store.close)
    extra = {"spot_reader": spot_reader(s4c)} if spot_reader else {}
    s3c = await s3_bootstrap(s3_settings, redis=redis, store=s3_store, http=rest, **extra)
    app3 = s3_app(s3_settings, container=s3c)
    await stacks.enter_async_context(app3.router.lifespan_context(app3))
    s3 = await stacks.enter_async_context(
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app3), base_url="http://s3")
    )
    return s4c, s3


@pytest.fixture
async def stacks(redis: RedisClient) -> AsyncIterator[AsyncExitStack]:
    async with AsyncExitStack() as stack:
        yield stack


async def test_scheduled_symmetric_rebalance_on_qrlusdt_fills_and_restores_the_ratio(
    stacks: AsyncExitStack, redis: RedisClient, redis_addresses: list[str], tmp_path: Path
) -> None:
    s4_settings = S4Settings(
        redis_addresses=redis_addresses,
        data_dir=tmp_path,
        fixtures_dir=FIXTURES,
        route_table_path=FIXTURES / "route_table.json",
        market_publish_ms=50,
        stream_block_ms=50,
        maker_max_wait_ms=0,
    )
    s3_settings = S3Settings(
        redis_addresses=redis_addresses,
        data_dir=tmp_path,
        fixtures_dir=FIXTURES,
        s4_url="http://s4",
        admin_token=ADMIN,
    )
    s4c, s3 = await s4_and_s3(
        stacks,
        redis,
        s4_settings,
        s3_settings,
        lambda c: VenueSpotReader(c.exchange.sim),  # type: ignore[attr-defined]
    )
    venue: Venue = s4c.exchange.sim  # type: ignore[attr-defined]
    # A QRL-heavy account: 2,000 QRL (~1,000 USDT at ~0.5) and 400 USDT ⇒ ~71 % in QRL.
    venue.spot_account._free.update({"QRL": D(2000), "USDT": D(400)})

    slot = datetime.now(UTC).replace(second=0, microsecond=0)
    body, fills = await scheduled_sell_filled(s3, s4c, headers(slot))
    [coid], qty = body["orders"], D(body["plan"]["quantity"])
    assert {f["symbol"] for f in fills} == {SYMBOL} and {f["side"] for f in fills} == {"SELL"}

    # The ratio is back within the threshold (valued at the current mid).
    reader = VenueSpotReader(venue)
    bal = await reader.balances(["QRL", "USDT"])
    t = await reader.ticker(SYMBOL)
    mid = (t.bid + t.ask) / 2  # type: ignore[operator]
    qrl_value = (bal["QRL"].free + bal["QRL"].locked) * mid
    ratio = qrl_value / (qrl_value + bal["USDT"].free + bal["USDT"].locked)
    assert abs(ratio - D("0.5")) < D("0.01"), ratio

    # Delivered again (scheduler retry): the stored result, nothing traded.
    again = await s3.post("/tasks/rebalance/symmetric", headers=headers(slot))
    assert again.json()["replayed"] is True and again.json()["orders"] == [coid]
    # The next slot's 15-minute job: cost from our own fill, then a HOLD.
    job = await s3.post("/tasks/15-min-job", headers=headers(slot + timedelta(minutes=15)))
    jb = job.json()
    assert jb["status"] == "success", jb
    assert jb["rebalance"]["plan"]["action"] == "HOLD"
    assert jb["rebalance"]["plan"]["reason_code"] == "WITHIN_THRESHOLD"
    pos = jb["cost_update"]["positions"]["QRL"]
    assert pos["fills"] == len(fills) and D(pos["unmatched_qty"]) == qty
    assert await s4c.store.count("orders", {"parent_client_order_id": None}) == 1

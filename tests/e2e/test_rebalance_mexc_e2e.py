"""End to end on MEXC's dialect: the seeds' venue through ccxt `mexc` on both sides. The venue
simulator is served over loopback HTTP as MEXC spot v3 (the facade's `mexc` dialect); S3's tasks
read balances and ticker through `S3_EXCHANGE=mexc`, S4 trades through `S4_EXCHANGE=mexc`. A
scheduled symmetric rebalance of QRLUSDT ends with its fill persisted under MEXC's string order
id and the QRL:USDT value ratio back within the threshold.

The registry is the project's, with every instrument spot-only: the facade has no MEXC futures
host (contract.mexc.com), and S4 loads only the market lists the registry trades."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from s3_strategy.config import Settings as S3Settings
from s4_router.config import Settings as S4Settings
from svckit.redisio import RedisClient
from tests.conftest import FIXTURES
from tests.contract.facade_harness import API_KEY, API_SECRET, SwappableApp
from tests.e2e.test_rebalance_e2e import headers, s4_and_s3, scheduled_sell_filled
from tests.facade_server import FacadeServer
from tests.tracking_clock import TrackingClock
from tradekit.enums import Market
from venue.defaults import default_venue
from venue.facade import create_facade
from venue.venue import Venue

D = Decimal
ADMIN = "mexc-e2e-admin-token-0123456789abcdef"
SYMBOL = "QRLUSDT"
MINUTE = 60_000


def spot_only_fixtures(tmp_path: Path) -> Path:
    out = tmp_path / "fixtures"
    shutil.copytree(FIXTURES, out)
    reg = out / "instrument_registry.json"
    rows = json.loads(reg.read_text())
    for row in rows:
        row["markets"] = ["SPOT"]
    reg.write_text(json.dumps(rows))
    return out


def ratio(venue: Venue) -> Decimal:
    bal = venue.balances()
    t = venue.ticker(Market.SPOT, SYMBOL)
    assert t.bid is not None and t.ask is not None
    mid = (t.bid[0] + t.ask[0]) / 2
    qrl = (bal["QRL"].free + bal["QRL"].locked) * mid
    return qrl / (qrl + bal["USDT"].free + bal["USDT"].locked)


@pytest.fixture
async def stacks(redis: RedisClient) -> AsyncIterator[AsyncExitStack]:
    async with AsyncExitStack() as stack:
        yield stack


async def test_scheduled_symmetric_rebalance_through_ccxt_mexc_on_both_sides(
    facade_server: tuple[FacadeServer, SwappableApp],
    stacks: AsyncExitStack,
    redis: RedisClient,
    redis_addresses: list[str],
    tmp_path: Path,
) -> None:
    srv, slot = facade_server
    # The venue's clock is the wall clock: S4 syncs with the venue's time and refuses to trade
    # on a skewed one.
    start = int(time.time() * 1000) - 30 * MINUTE
    venue = default_venue(clock=TrackingClock(start), seed=3, step_ms=MINUTE, replay=False)
    venue.advance(30 * MINUTE)  # 30 minutes of history, ending now
    # A QRL-heavy account: 2,000 QRL (~1,000 USDT at ~0.5) and 400 USDT ⇒ ~71 % in QRL.
    venue.spot_account._free.update({"QRL": D(2000), "USDT": D(400)})
    slot.app = create_facade(venue, api_key=API_KEY, api_secret=API_SECRET, dialect="mexc")
    fixtures = spot_only_fixtures(tmp_path)

    s4_settings = S4Settings(
        redis_addresses=redis_addresses,
        data_dir=tmp_path,
        fixtures_dir=fixtures,
        route_table_path=fixtures / "route_table.json",
        exchange="mexc",
        testnet=False,  # MEXC has no testnet: the facade stands in for the venue
        exchange_base_url=srv.url,
        binance_key=API_KEY,
        binance_secret=API_SECRET,
        stream_block_ms=50,
        maker_max_wait_ms=0,
    )
    s3_settings = S3Settings(
        redis_addresses=redis_addresses,
        data_dir=tmp_path,
        fixtures_dir=fixtures,
        s4_url="http://s4",
        admin_token=ADMIN,
        exchange="mexc",
        exchange_base_url=srv.url,
        exchange_api_key=API_KEY,
        exchange_api_secret=API_SECRET,
    )
    s4c, s3 = await s4_and_s3(stacks, redis, s4_settings, s3_settings)

    before = ratio(venue)
    assert before > D("0.6")
    slot_time = datetime.now(UTC).replace(second=0, microsecond=0)
    hdrs = headers(slot_time, token=ADMIN, job="rebalance-qrl-mexc")
    body, fills = await scheduled_sell_filled(s3, s4c, hdrs, within_s=20.0)
    [coid] = body["orders"]
    assert {f["venue"] for f in fills} == {"mexc"}
    assert all(str(f["order_id"]).startswith("C02__") for f in fills)  # MEXC's string ids
    assert abs(ratio(venue) - D("0.5")) < D("0.01"), ratio(venue)
    # a second delivery of the slot: the stored result, nothing traded
    again = (await s3.post("/tasks/rebalance/symmetric", headers=hdrs)).json()
    assert again["replayed"] is True and again["orders"] == [coid]
    assert await s4c.store.count("orders", {"parent_client_order_id": None}) == 1

"""S4 hot reload (issue 13): the route table at S4_ROUTE_TABLE_PATH laid out like a Kubernetes
ConfigMap volume (files behind a `..data` symlink swapped atomically), and S4_SETTINGS_DIR —
real Redis, SQLite, the in-process venue simulator."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from s4_router.bootstrap import S4Container, bootstrap
from s4_router.config import RELOADABLE_SETTINGS, Settings
from s4_router.entrypoints.api import create_app
from svckit import jsonutil, keys
from svckit.redisio import RedisClient
from svckit.store import content_rev
from svckit.store.sqlite import SqliteStore
from tests.conftest import FIXTURES
from tests.helpers import S4_AUTH, FreshTransport

# Every test that uses Redis runs on a single node and on a 3-master Redis Cluster (conftest).
pytestmark = pytest.mark.redis_modes

TABLE_A = json.loads((FIXTURES / "route_table.json").read_text())
TABLE_B = [{**TABLE_A[0], "maker_wait_ms": 700}, *TABLE_A[1:]]
MAKER = {
    "intent_id": "i-1",
    "market": "FUT",
    "symbol": "BTCUSDT",
    "side": "BUY",
    "qty": 0.002,
    "exec_policy": {"type": "MAKER_TAKER"},
    "client_order_id": "rt-1",
}


class ConfigMapDir:
    """`root/route.json -> ..data/route.json`, `..data -> ..<version>`: what the kubelet does."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.version = 0
        root.mkdir(parents=True, exist_ok=True)

    def publish(self, files: dict[str, str]) -> None:
        self.version += 1
        target = self.root / f"..v{self.version}"
        target.mkdir()
        for name, text in files.items():
            (target / name).write_text(text)
        tmp = self.root / "..data_tmp"
        tmp.symlink_to(target.name)
        os.replace(tmp, self.root / "..data")  # the atomic swap
        for name in files:
            link = self.root / name
            if not link.is_symlink():
                link.symlink_to(f"..data/{name}")


async def eventually(pred: Callable[[], Awaitable[bool]], within_s: float = 3.0) -> None:
    async with asyncio.timeout(within_s):
        while not await pred():  # noqa: ASYNC110 - polls HTTP
            await asyncio.sleep(0.02)


async def alerts(redis: RedisClient, kind: str) -> list[dict[str, Any]]:
    rows = [jsonutil.loads(e[1]["data"]) for e in await redis.xrange(keys.ALERTS)]
    return [a for a in rows if a["kind"] == kind]


@pytest.fixture
async def s4(
    redis: RedisClient, redis_addresses: list[str], tmp_path: Path
) -> AsyncIterator[tuple[httpx.AsyncClient, S4Container, ConfigMapDir, ConfigMapDir]]:
    table_dir = ConfigMapDir(tmp_path / "route")
    table_dir.publish({"route.json": json.dumps(TABLE_A)})
    settings_dir = ConfigMapDir(tmp_path / "settings")
    settings_dir.publish({"S4_MAKER_MAX_WAIT_MS": "3000", "S4_CONSUMER_GROUP": "s4-router"})
    settings = Settings(
        redis_addresses=redis_addresses,
        data_dir=tmp_path,
        fixtures_dir=FIXTURES,
        route_table_path=table_dir.root / "route.json",
        settings_dir=settings_dir.root,
        config_watch_ms=50,
        market_publish_ms=50,
        stream_block_ms=50,
    )
    store = SqliteStore(tmp_path / "store.sqlite3")
    container = await bootstrap(settings, redis=redis, store=store)
    app = create_app(settings, container=container)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=FreshTransport(app=app), base_url="http://s4", headers=S4_AUTH
        ) as client,
    ):
        yield client, container, table_dir, settings_dir
    await store.close()


async def _health(client: httpx.AsyncClient) -> dict[str, Any]:
    return dict((await client.get("/health")).json())


async def _maker_wait(c: S4Container, coid: str) -> int:
    doc = await c.store.get("orders", coid)
    assert doc is not None
    return int(doc["exec_state"]["config"]["maker"]["maker_wait_ms"])


async def test_route_table_symlink_swap_is_picked_up_and_new_intakes_use_it(
    s4: tuple[httpx.AsyncClient, S4Container, ConfigMapDir, ConfigMapDir], redis: RedisClient
) -> None:
    client, c, table_dir, _ = s4
    rev_a, rev_b = content_rev(TABLE_A), content_rev(TABLE_B)
    assert (await _health(client))["route_table_rev"] == rev_a
    first = await client.post("/orders", json=MAKER)
    assert first.status_code in (200, 202), first.text
    table_dir.publish({"route.json": json.dumps(TABLE_B)})

    async def swapped() -> bool:
        return bool((await _health(client))["route_table_rev"] == rev_b)

    await eventually(swapped)
    second = await client.post("/orders", json={**MAKER, "client_order_id": "rt-2"})
    assert second.status_code in (200, 202), second.text
    # Band resolved at intake: the first execution keeps table A's wait, the next uses B's.
    assert await _maker_wait(c, "rt-1") == TABLE_A[0]["maker_wait_ms"]
    assert await _maker_wait(c, "rt-2") == 700
    events = [jsonutil.loads(e[1]["data"]) for e in await redis.xrange(keys.ROUTER_EVENTS)]
    reloads = [e for e in events if e["event"] == "ROUTE_TABLE_RELOADED"]
    assert [(e["data"]["previous_rev"], e["data"]["rev"]) for e in reloads] == [(rev_a, rev_b)]
    assert (await _health(client))["config"]["route_table"]["state"] == "ok"


@pytest.mark.parametrize(
    "bad",
    [
        "{not json",
        json.dumps(
            [
                {"notional_usdt_max": 500, "maker_wait_ms": 1},
                {"notional_usdt_max": 100, "maker_wait_ms": 1},
            ]
        ),
        json.dumps([{"notional_usdt_max": None, "maker_wait_ms": -1}]),
        json.dumps([]),
    ],
)
async def test_invalid_route_table_is_refused_with_one_alert_and_old_table_kept(
    s4: tuple[httpx.AsyncClient, S4Container, ConfigMapDir, ConfigMapDir],
    redis: RedisClient,
    bad: str,
) -> None:
    client, c, table_dir, _ = s4
    rev_a = content_rev(TABLE_A)
    table_dir.publish({"route.json": bad})

    async def refused() -> bool:
        return bool((await _health(client))["config"]["route_table"]["state"] == "refused")

    await eventually(refused)
    await asyncio.sleep(0.3)  # several more checks: still one alert for this content
    health = await _health(client)
    assert health["route_table_rev"] == rev_a and c.router.route_table.rev == rev_a
    [alert] = await alerts(redis, "ROUTE_TABLE_INVALID")
    assert alert["severity"] == "critical" and rev_a in alert["message"]
    table_dir.publish({"route.json": json.dumps(TABLE_B)})

    async def recovered() -> bool:
        h = await _health(client)
        return bool(h["route_table_rev"] == content_rev(TABLE_B))

    await eventually(recovered)
    assert (await _health(client))["config"]["route_table"]["error"] is None


async def test_settings_dir_applies_reloadable_and_reports_restart_only_change(
    s4: tuple[httpx.AsyncClient, S4Container, ConfigMapDir, ConfigMapDir], redis: RedisClient
) -> None:
    client, c, _, settings_dir = s4
    await asyncio.sleep(0.15)  # the watcher has taken its baseline
    settings_dir.publish({"S4_MAKER_MAX_WAIT_MS": "500", "S4_CONSUMER_GROUP": "other-group"})

    async def applied() -> bool:
        return c.router.limits.maker_max_wait_ms == 500

    await eventually(applied)
    health = (await _health(client))["config"]
    assert health["reloaded"] == ["S4_MAKER_MAX_WAIT_MS"]
    assert health["restart_required"] == ["S4_CONSUMER_GROUP"]
    [alert] = await alerts(redis, "CONFIG_RESTART_REQUIRED")
    assert "S4_CONSUMER_GROUP" in alert["message"]
    assert c.consumer.group == "s4-router"  # restart-only: reported, not half-applied
    resp = await client.post("/orders", json=MAKER)
    assert resp.status_code in (200, 202)
    assert await _maker_wait(c, "rt-1") == 500  # band wait 1500 capped by the new limit


def test_reloadable_settings_name_real_settings_fields() -> None:
    assert set(Settings.model_fields) >= RELOADABLE_SETTINGS

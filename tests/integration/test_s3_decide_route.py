"""`POST /decide` through the normal FastAPI route (the one HTTP path since svckit.fastpath was
removed): the behaviours the fast path's tests held, now on the route with its middleware and
dependencies — 422 messages, 503 on infrastructure errors, chunked bodies, 405. Real Redis and
SQLite store."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from s3_strategy.bootstrap import S3Container, bootstrap
from s3_strategy.config import Settings
from s3_strategy.entrypoints.api import create_app
from svckit.errors import StoreError, StoreUnavailable
from svckit.redisio import RedisClient
from svckit.store.base import Doc
from svckit.store.sqlite import SqliteStore
from tests.conftest import FIXTURES
from tests.helpers import S3_AUTH, S3_TEST_POLL_S, put_features

# Every test that uses Redis runs on a single node and on a 3-master Redis Cluster (conftest).
pytestmark = pytest.mark.redis_modes

RULE_FEATURES = {"rho_usdttwd_14": 0.1, "rv_1h": 0.01}
JSON = {"content-type": "application/json"}
DRY = b'{"symbol": "BTCUSDT", "dry_run": true}'


class FailingSignals(SqliteStore):
    failing = False

    async def insert_many(self, collection: str, docs: Sequence[Doc]) -> list[str | StoreError]:
        if self.failing and collection == "signals":
            raise StoreUnavailable("signals: disk full")
        return await super().insert_many(collection, docs)


S3Rig = tuple[httpx.AsyncClient, S3Container, FailingSignals]


@pytest.fixture
async def s3(
    redis: RedisClient, redis_addresses: list[str], tmp_path: Path
) -> AsyncIterator[S3Rig]:
    settings = Settings(
        redis_addresses=redis_addresses,
        data_dir=tmp_path,
        fixtures_dir=FIXTURES,
        s4_url=None,
        config_poll_sec=S3_TEST_POLL_S,
    )
    store = FailingSignals(tmp_path / "store.sqlite3")
    container = await bootstrap(settings, redis=redis, store=store)
    app = create_app(settings, container=container)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://s3", headers=S3_AUTH
        ) as client,
    ):
        yield client, container, store
    await store.close()


async def chunked(*parts: bytes) -> AsyncIterator[bytes]:
    """A body sent without Content-Length (Transfer-Encoding: chunked)."""
    for part in parts:
        yield part


async def test_decide_route_with_valid_body_opens_and_persists_before_answering(
    s3: S3Rig, redis: RedisClient
) -> None:
    client, c, _ = s3
    await put_features(redis, **RULE_FEATURES)
    r = await client.post("/decide", content=DRY, headers=JSON)
    assert r.status_code == 200, r.text
    got = r.json()
    assert (got["decision"], got["reason"]) == ("open", "OK")
    assert await c.store.get("signals", got["signal_id"]) is not None


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"symbol": 5},
        {"symbol": "BTCUSDT", "dry_run": "perhaps"},
        {"symbol": "BTCUSDT", "sideHint": "UP"},
        {"symbol": "BTCUSDT", "extra": 1},
    ],
)
async def test_decide_route_with_invalid_body_returns_422_naming_the_field(
    s3: S3Rig, body: dict[str, Any]
) -> None:
    client, c, _ = s3
    r = await client.post("/decide", content=orjson.dumps(body), headers=JSON)
    assert r.status_code == 422
    assert r.json()["detail"].startswith("body")
    assert await c.store.count("signals", {}) == 0


async def test_decide_route_with_unknown_symbol_returns_422(s3: S3Rig) -> None:
    client, _, _ = s3
    r = await client.post("/decide", content=b'{"symbol": "XXX"}', headers=JSON)
    assert (r.status_code, r.json()) == (422, {"detail": "symbol: unknown symbol 'XXX'"})


async def test_decide_route_with_signal_store_down_returns_503_with_the_reason(
    s3: S3Rig, redis: RedisClient
) -> None:
    client, _, store = s3
    await put_features(redis, **RULE_FEATURES)
    store.failing = True
    r = await client.post("/decide", content=DRY, headers=JSON)
    assert r.status_code == 503
    assert r.json() == {"detail": "service unavailable: signals: disk full"}


async def test_decide_route_with_get_returns_405(s3: S3Rig) -> None:
    client, _, _ = s3
    assert (await client.get("/decide")).status_code == 405


async def test_decide_route_with_chunked_body_is_reassembled(s3: S3Rig, redis: RedisClient) -> None:
    client, c, _ = s3
    await put_features(redis, **RULE_FEATURES)
    r = await client.post("/decide", content=chunked(DRY[:7], DRY[7:20], DRY[20:]), headers=JSON)
    assert r.status_code == 200, r.text
    got = r.json()
    assert (got["decision"], got["reason"]) == ("open", "OK")
    assert await c.store.get("signals", got["signal_id"]) is not None

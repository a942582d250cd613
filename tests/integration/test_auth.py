"""Access control (issue 11, points 15, 16, 18): bearer tokens on S3 and S4, on every route, for
every kind of request, with no side effect when refused; the admin scope; cancel by venue order
id only for orders S4 placed. Real Redis, SQLite, the venue simulator."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from pydantic import SecretStr
from starlette.routing import Route

from s3_strategy.bootstrap import S3Container
from s3_strategy.bootstrap import bootstrap as s3_bootstrap
from s3_strategy.config import Settings as S3Settings
from s3_strategy.entrypoints.api import create_app as s3_app
from s3_strategy.entrypoints.deps import AdminDep
from s4_router.adapters.exchange.base import PlaceOrderRequest
from s4_router.bootstrap import S4Container
from s4_router.bootstrap import bootstrap as s4_bootstrap
from s4_router.config import Settings as S4Settings
from s4_router.entrypoints.api import create_app as s4_app
from svckit import jsonutil, keys
from svckit.auth import ADMIN, API, BearerTokenBackend
from svckit.redisio import RedisClient
from svckit.store.sqlite import SqliteStore
from tests.conftest import FIXTURES
from tests.helpers import (
    S3_ADMIN_TOKEN,
    S3_TEST_POLL_S,
    S3_TOKEN,
    S4_TEST_PROTECTION_POLL_MS,
    S4_TOKEN,
    FreshTransport,
    bearer,
    put_features,
)
from tradekit.enums import Market, OrderStatus, OrderType, Side, TimeInForce

RULE_FEATURES = {"rho_usdttwd_14": 0.1, "rv_1h": 0.01}
FUT: dict[str, Any] = {
    "intent_id": "uuid-1",
    "market": "FUT",
    "symbol": "BTCUSDT",
    "side": "BUY",
    "qty": 0.002,
    "exec_policy": {"type": "MARKET"},
    "client_order_id": "t-auth-1",
}
OPEN = {(m, p) for m in ("GET", "HEAD") for p in ("/health", "/livez", "/metrics")}

# Ways of not being authenticated: no header, another scheme, an empty or wrong token, the
# other service's token, a prefix / an extension of the right one, the right one lower-cased.
BAD_AUTH: list[dict[str, str]] = [
    {},
    {"Authorization": ""},
    {"Authorization": "Bearer"},
    {"Authorization": "Bearer "},
    {"Authorization": f"Basic {S3_TOKEN}"},
    {"Authorization": f"Token {S3_TOKEN}"},
    bearer("wrong-token-0123456789abcdef"),
    bearer(S3_TOKEN[:-1]),
    bearer(S3_TOKEN + "x"),
    bearer(S3_TOKEN.upper()),
    {"X-Api-Token": S3_TOKEN},
]


class S3Rig:
    def __init__(self, app: FastAPI, client: httpx.AsyncClient, c: S3Container) -> None:
        self.app, self.client, self.c = app, client, c


class S4Rig:
    def __init__(self, app: FastAPI, client: httpx.AsyncClient, c: S4Container) -> None:
        self.app, self.client, self.c = app, client, c


@pytest.fixture
async def s3(
    redis: RedisClient, redis_addresses: list[str], tmp_path: Path
) -> AsyncIterator[S3Rig]:
    settings = S3Settings(
        redis_addresses=redis_addresses,
        data_dir=tmp_path,
        fixtures_dir=FIXTURES,
        s4_url=None,
        config_poll_sec=S3_TEST_POLL_S,
    )
    store = SqliteStore(tmp_path / "s3.sqlite3")
    container = await s3_bootstrap(settings, redis=redis, store=store)
    app = s3_app(settings, container=container)
    admin = FastAPI()  # an admin endpoint as a later issue will add them

    @admin.get("/admin/ping", dependencies=[AdminDep])
    async def admin_ping() -> dict[str, bool]:
        return {"admin": True}

    app.include_router(admin.router)
    # No default header: each test says which token it sends.
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://s3") as client,
    ):
        yield S3Rig(app, client, container)
    await store.close()


@pytest.fixture
async def s4(
    redis: RedisClient, redis_addresses: list[str], tmp_path: Path
) -> AsyncIterator[S4Rig]:
    settings = S4Settings(
        redis_addresses=redis_addresses,
        data_dir=tmp_path,
        fixtures_dir=FIXTURES,
        route_table_path=FIXTURES / "route_table.json",
        market_publish_ms=50,
        stream_block_ms=50,
        protection_poll_ms=S4_TEST_PROTECTION_POLL_MS,
    )
    store = SqliteStore(tmp_path / "s4.sqlite3")
    container = await s4_bootstrap(settings, redis=redis, store=store)
    app = s4_app(settings, container=container)
    transport = FreshTransport(app=app)  # stamps created_ts, as S3 does
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://s4") as client,
    ):
        yield S4Rig(app, client, container)
    await store.close()


async def chunked(*parts: bytes) -> AsyncIterator[bytes]:
    """A body sent without Content-Length (Transfer-Encoding: chunked)."""
    for part in parts:
        yield part


def every_endpoint(app: FastAPI) -> Iterator[tuple[str, str]]:
    """(method, concrete path) for every route of the app, its docs and OpenAPI included."""
    for route in app.routes:
        if not isinstance(route, APIRoute | Route):
            continue
        path = re.sub(r"\{[^}]+\}", "x-1", route.path)
        for method in sorted(route.methods or {"GET"}):
            yield method, path


def assert_refused(r: httpx.Response, *, fail_body: bool) -> None:
    assert r.status_code == 401, (r.request.method, r.request.url, r.text)
    assert r.headers["www-authenticate"].startswith("Bearer")
    if r.request.method == "HEAD":
        return
    body = r.json()
    message = body["message"] if fail_body else body["detail"]
    assert message.startswith("unauthorized")
    if fail_body:
        assert (body["result"], body["order_ids"]) == ("FAIL", [])


# ---- S3 -----------------------------------------------------------------------------------
async def test_s3_every_route_but_health_livez_and_metrics_refuses_without_token(s3: S3Rig) -> None:
    endpoints = set(every_endpoint(s3.app))
    assert {
        ("POST", "/decide"),
        ("POST", "/decide/batch"),
        ("GET", "/docs"),
        ("GET", "/openapi.json"),
        ("POST", "/decide/replay/x-1"),
    } <= endpoints
    for method, path in sorted(endpoints):
        r = await s3.client.request(method, path)
        if (method, path) in OPEN:
            assert r.status_code in (200, 503), (method, path)
        else:
            assert_refused(r, fail_body=False)
    # Paths no route serves are refused too (nothing learns which exist), and only the exact
    # open paths are open.
    for method, path in [
        ("GET", "/nope"),
        ("GET", "/health/"),
        ("GET", "//health"),
        ("POST", "/health"),
        ("DELETE", "/metrics"),
        ("POST", "/livez"),
        ("GET", "/livez/"),
    ]:
        assert_refused(await s3.client.request(method, path), fail_body=False)


@pytest.mark.parametrize("headers", BAD_AUTH, ids=range(len(BAD_AUTH)))
async def test_s3_decide_unauthenticated_json_post_is_refused_with_no_side_effect(
    s3: S3Rig, redis: RedisClient, headers: dict[str, str]
) -> None:
    await put_features(redis, **RULE_FEATURES)
    live = b'{"symbol": "BTCUSDT"}'
    requests: list[tuple[Any, str]] = [
        # the valid JSON body the removed fast path used to answer before any middleware
        (live, "application/json"),
        (b'{"symbol": "BTCUSDT", "dry_run": true}', "application/json"),
        (chunked(live[:5], live[5:]), "application/json"),  # no Content-Length
        (b'{"symbol": ' + b" " * 70_000 + b'"BTCUSDT"}', "application/json"),  # oversize
        (live, "text/plain"),
        (b"{not json", "application/json"),
    ]
    for content, ctype in requests:
        r = await s3.client.post(
            "/decide", content=content, headers={"content-type": ctype, **headers}
        )
        assert_refused(r, fail_body=False)
    batch = {"items": [{"symbol": "BTCUSDT"}]}
    assert_refused(
        await s3.client.post("/decide/batch", json=batch, headers=headers), fail_body=False
    )
    # Nothing decided, recorded or published.
    assert await s3.c.store.count("signals", {}) == 0
    assert await redis.xlen(keys.ORDERS_INTENT) == 0
    decided = [
        s.value
        for m in s3.c.metrics.registry.collect()
        if m.name == "s3_decide_latency_seconds"
        for s in m.samples
        if s.name.endswith("_count")
    ]
    assert sum(decided) == 0


async def test_s3_decide_with_api_or_admin_token_is_served(s3: S3Rig, redis: RedisClient) -> None:
    await put_features(redis, **RULE_FEATURES)
    for token in (S3_TOKEN, S3_ADMIN_TOKEN, f"  {S3_TOKEN} "):
        r = await s3.client.post(
            "/decide", json={"symbol": "BTCUSDT", "dry_run": True}, headers=bearer(token)
        )
        assert r.status_code == 200, r.text
        assert r.json()["decision"] == "open"
    r = await s3.client.post(
        "/decide",
        json={"symbol": "BTCUSDT", "dry_run": True},
        headers={"Authorization": f"bearer {S3_TOKEN}"},  # the scheme is case-insensitive
    )
    assert r.status_code == 200
    assert (await s3.client.get("/openapi.json", headers=bearer(S3_TOKEN))).status_code == 200


async def test_s3_wrong_token_challenge_says_invalid_token(s3: S3Rig) -> None:
    r = await s3.client.post("/decide", json={"symbol": "BTCUSDT"}, headers=bearer("x" * 40))
    assert r.headers["www-authenticate"] == 'Bearer realm="s3-strategy", error="invalid_token"'
    r = await s3.client.post("/decide", json={"symbol": "BTCUSDT"})
    assert r.headers["www-authenticate"] == 'Bearer realm="s3-strategy"'
    assert "x" * 40 not in r.text


async def test_s3_admin_endpoint_needs_the_admin_token(s3: S3Rig) -> None:
    assert (await s3.client.get("/admin/ping")).status_code == 401
    forbidden = await s3.client.get("/admin/ping", headers=bearer(S3_TOKEN))
    assert forbidden.status_code == 403
    assert "admin" in forbidden.json()["detail"]
    ok = await s3.client.get("/admin/ping", headers=bearer(S3_ADMIN_TOKEN))
    assert (ok.status_code, ok.json()) == (200, {"admin": True})


async def test_s3_admin_endpoint_without_admin_token_configured_refuses_everyone(
    redis: RedisClient, redis_addresses: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("S3_ADMIN_TOKEN")
    settings = S3Settings(
        redis_addresses=redis_addresses, data_dir=tmp_path, fixtures_dir=FIXTURES, s4_url=None
    )
    assert settings.admin_token is None
    store = SqliteStore(tmp_path / "s3.sqlite3")
    c = await s3_bootstrap(settings, redis=redis, store=store)
    app = s3_app(settings, container=c)

    @app.get("/admin/ping", dependencies=[AdminDep])
    async def admin_ping() -> dict[str, bool]:
        return {"admin": True}

    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://s3") as cl,
    ):
        for headers in (bearer(S3_TOKEN), bearer(S3_ADMIN_TOKEN)):
            r = await cl.get("/admin/ping", headers=headers)
            assert r.status_code in (401, 403)
            assert r.status_code == (403 if headers == bearer(S3_TOKEN) else 401)
    await store.close()


# ---- S4 -----------------------------------------------------------------------------------
async def test_s4_every_route_but_health_livez_and_metrics_refuses_without_token(s4: S4Rig) -> None:
    endpoints = set(every_endpoint(s4.app))
    assert {("POST", "/orders"), ("POST", "/cancel"), ("GET", "/orders/x-1")} <= endpoints
    for method, path in sorted(endpoints):
        r = await s4.client.request(method, path)
        if (method, path) in OPEN:
            assert r.status_code in (200, 503), (method, path)
        else:
            assert_refused(r, fail_body=True)
    for path in ("/sim/book", "/orders/", "/nope"):
        assert_refused(await s4.client.get(path), fail_body=True)


@pytest.mark.parametrize(
    "headers", [*BAD_AUTH, bearer(S3_TOKEN), bearer(S3_ADMIN_TOKEN)], ids=range(len(BAD_AUTH) + 2)
)
async def test_s4_orders_and_cancel_unauthenticated_are_refused_with_no_side_effect(
    s4: S4Rig, redis: RedisClient, headers: dict[str, str]
) -> None:
    assert_refused(await s4.client.post("/orders", json=FUT, headers=headers), fail_body=True)
    assert_refused(
        await s4.client.post("/cancel", json={"order_id": "1000001"}, headers=headers),
        fail_body=True,
    )
    assert_refused(await s4.client.get("/orders/t-auth-1", headers=headers), fail_body=True)
    assert await s4.c.store.count("orders", {}) == 0
    assert await redis.get(keys.idem_order("t-auth-1")) is None
    assert await s4.c.exchange.fetch_my_trades(Market.FUT, "BTCUSDT") == []


async def test_s4_orders_with_token_executes(s4: S4Rig) -> None:
    r = await s4.client.post("/orders", json=FUT, headers=bearer(S4_TOKEN))
    assert r.status_code == 200, r.text
    assert r.json()["result"] == "OK"


# ---- S4 cancel by venue order id (point 18) --------------------------------------------------
async def test_s4_cancel_with_venue_order_id_s4_never_placed_is_404_and_not_sent(
    s4: S4Rig,
) -> None:
    venue = s4.c.exchange
    # An order placed at the venue by someone else (not through S4): its id is guessable.
    foreign = await venue.place_order(
        PlaceOrderRequest(
            Market.FUT,
            "BTCUSDT",
            Side.BUY,
            OrderType.LIMIT,
            Decimal("0.002"),
            "someone-else-1",
            price=Decimal(60000),
            time_in_force=TimeInForce.GTC,
        )
    )
    r = await s4.client.post(
        "/cancel", json={"order_id": foreign.venue_order_id}, headers=bearer(S4_TOKEN)
    )
    assert r.status_code == 404, r.text
    assert "not placed by this router" in r.json()["message"]
    still = await venue.fetch_order(Market.FUT, "BTCUSDT", venue_order_id=foreign.venue_order_id)
    assert still.status == OrderStatus.ACCEPTED  # still working at the venue


async def test_s4_cancel_with_venue_order_id_shared_by_two_orders_is_409(s4: S4Rig) -> None:
    # Venues number orders per symbol (Binance): two of S4's orders may carry the same id.
    for coid, symbol in (("t-dup-btc", "BTCUSDT"), ("t-dup-eth", "ETHUSDT")):
        await s4.c.store.insert(
            "orders",
            {
                "_key": coid,
                "client_order_id": coid,
                "symbol": symbol,
                "market": "FUT",
                "status": "NEW",
                "venue_order_id": "4242",
                "parent_client_order_id": None,
                # The rest of a stored order (S4 reads its orders as typed records).
                "intent_id": "i-dup",
                "venue": "sim",
                "side": "BUY",
                "type": "LIMIT",
                "qty": "0.002",
                "created_ts": 1,
                "updated_ts": 1,
            },
        )
    r = await s4.client.post("/cancel", json={"order_id": "4242"}, headers=bearer(S4_TOKEN))
    assert r.status_code == 409, r.text
    assert "client_order_id" in r.json()["message"]
    for coid in ("t-dup-btc", "t-dup-eth"):
        doc = await s4.c.store.get("orders", coid)
        assert doc is not None and not doc.get("cancel_requested")


async def test_s4_cancel_with_venue_order_id_of_its_own_order_reaches_that_order(
    s4: S4Rig,
) -> None:
    body = {**FUT, "client_order_id": "t-own-1"}
    placed = await s4.client.post("/orders", json=body, headers=bearer(S4_TOKEN))
    assert placed.status_code == 200, placed.text
    view = (await s4.client.get("/orders/t-own-1", headers=bearer(S4_TOKEN))).json()
    venue_id = next(ch["venue_order_id"] for ch in view["children"] if ch.get("venue_order_id"))
    r = await s4.client.post("/cancel", json={"order_id": venue_id}, headers=bearer(S4_TOKEN))
    # Resolved to S4's own (already filled) parent order: the usual answer for it.
    assert r.status_code == 409, r.text
    assert r.json()["client_order_id"] == "t-own-1"
    assert "already FILLED" in r.json()["message"]


# ---- the backend alone ------------------------------------------------------------------------
def test_backend_matches_each_role_and_nothing_near_it() -> None:
    backend = BearerTokenBackend({API: SecretStr(S3_TOKEN), ADMIN: SecretStr(S3_ADMIN_TOKEN)})
    assert backend.match(S3_TOKEN) == API
    assert backend.match(S3_ADMIN_TOKEN) == ADMIN
    for near in (S3_TOKEN[:-1], S3_TOKEN + "0", "", S3_TOKEN.upper(), S4_TOKEN):
        assert backend.match(near) is None
    # A role without a token grants nothing (not even to an empty bearer).
    assert BearerTokenBackend({API: SecretStr(S3_TOKEN), ADMIN: None}).match("") is None
    with pytest.raises(ValueError, match="unknown roles"):
        BearerTokenBackend({"root": SecretStr(S3_TOKEN)})


# ---- the dev switch and S3's client to S4 ------------------------------------------------------
async def test_s4_auth_disabled_on_the_simulator_lets_requests_in_and_warns(
    redis: RedisClient,
    redis_addresses: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.delenv("S4_API_TOKEN")
    settings = S4Settings(
        redis_addresses=redis_addresses,
        data_dir=tmp_path,
        fixtures_dir=FIXTURES,
        route_table_path=FIXTURES / "route_table.json",
        auth_disabled=True,
    )
    store = SqliteStore(tmp_path / "s4.sqlite3")
    c = await s4_bootstrap(settings, redis=redis, store=store)
    with caplog.at_level(logging.WARNING, logger="svckit.auth"):
        app = s4_app(settings, container=c)
    assert "authentication DISABLED" in caplog.text
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://s4") as cl,
    ):
        assert (await cl.get("/orders/none-1")).status_code == 404  # reached the route
    await store.close()


async def test_s3_bootstrap_client_to_s4_sends_s3_s4_api_token(
    redis: RedisClient, redis_addresses: list[str], tmp_path: Path
) -> None:
    settings = S3Settings(
        redis_addresses=redis_addresses,
        data_dir=tmp_path,
        fixtures_dir=FIXTURES,
        s4_url="http://127.0.0.1:9",
    )
    store = SqliteStore(tmp_path / "s3.sqlite3")
    c = await s3_bootstrap(settings, redis=redis, store=store)
    try:
        assert c.http is not None
        assert c.http.headers["authorization"] == f"Bearer {S4_TOKEN}"
    finally:
        await c.aclose()
        await store.close()


async def test_s3_with_a_token_s4_refuses_alerts_publish_degraded_naming_the_variable(
    s4: S4Rig, redis: RedisClient, redis_addresses: list[str], tmp_path: Path
) -> None:
    # S4 rotated its token, S3 still sends the old one: the REST path is down for a reason
    # an operator must see (the stream path still delivers the intent).
    settings = S3Settings(
        redis_addresses=redis_addresses,
        data_dir=tmp_path,
        fixtures_dir=FIXTURES,
        s4_url="http://s4",
        alert_min_interval_s=0,
    )
    stale = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=s4.app),
        base_url="http://s4",
        headers=bearer("stale-token-0123456789abcdef"),
    )
    store = SqliteStore(tmp_path / "s3.sqlite3")
    c = await s3_bootstrap(settings, redis=redis, store=store, http=stale)
    app = s3_app(settings, container=c)
    await put_features(redis, **RULE_FEATURES)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://s3") as cl,
    ):
        r = await cl.post("/decide", json={"symbol": "BTCUSDT"}, headers=bearer(S3_TOKEN))
        body = r.json()
        assert body["decision"] == "open", body
        assert body["publish"]["rest"] == "failed", body["publish"]
        alerts = [jsonutil.loads(e[1]["data"]) for e in await redis.xrange(keys.ALERTS)]
        degraded = [a for a in alerts if a.get("kind") == "PUBLISH_DEGRADED"]
        assert degraded, alerts
        assert "401" in str(degraded[0]) and "S3_S4_API_TOKEN" in str(degraded[0])
    await stale.aclose()
    await store.close()

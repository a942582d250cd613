"""svckit.fastpath.FastPathApp: the hot ASGI path in front of FastAPI, on a small generic app and
on the real S3 app (real Redis, SQLite store). Every case that the hot path answers is held
against the FastAPI route's answer for the same request: a body sent without Content-Length
(chunked) always goes to FastAPI."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from fastapi import Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from redis import exceptions as redis_exc
from starlette.types import Message

from s3_strategy.bootstrap import S3Container, bootstrap
from s3_strategy.config import Settings
from s3_strategy.entrypoints.api import create_app
from svckit.errors import StoreError, StoreUnavailable
from svckit.fastpath import FastPathApp
from svckit.httperrors import install_error_handlers
from svckit.redisio import RedisClient
from svckit.store.base import Doc
from svckit.store.sqlite import SqliteStore
from tests.conftest import FIXTURES
from tests.helpers import put_features

RULE_FEATURES = {"rho_usdttwd_14": 0.1, "rv_1h": 0.01}


# ---- raw ASGI ---------------------------------------------------------------------------------
async def asgi_call(
    app: FastPathApp,
    method: str,
    path: str,
    chunks: Sequence[bytes],
    *,
    content_type: bytes | None = b"application/json",
    content_length: int | None = -1,
    tail: Sequence[Message] = (),
) -> tuple[int | None, bytes, list[Message]]:
    """Call the ASGI app with the body split into `chunks` (one `http.request` each,
    more_body on all but the last), then `tail`. content_length -1 ⇒ the true length."""
    headers: list[tuple[bytes, bytes]] = [(b"host", b"test")]
    if content_type is not None:
        headers.append((b"content-type", content_type))
    if content_length == -1:
        content_length = sum(len(c) for c in chunks)
    if content_length is not None:
        headers.append((b"content-length", str(content_length).encode()))
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 1234),
        "server": ("test", 80),
        "state": {},
    }
    inbox: list[Message] = [
        {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
        for i, c in enumerate(chunks)
    ] + list(tail)
    sent: list[Message] = []

    async def receive() -> Message:
        if inbox:
            return inbox.pop(0)
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    status = next((m["status"] for m in sent if m["type"] == "http.response.start"), None)
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, body, sent


async def _chunked(body: bytes) -> AsyncIterator[bytes]:
    yield body


async def via_fastapi(client: httpx.AsyncClient, path: str, body: bytes) -> httpx.Response:
    """The same JSON request, streamed (no Content-Length): always FastAPI's route."""
    r = await client.post(
        path, content=_chunked(body), headers={"content-type": "application/json"}
    )
    assert "content-length" not in r.request.headers
    return r


# ---- a small generic app ----------------------------------------------------------------------
class Order(BaseModel):
    model_config = ConfigDict(extra="forbid")
    symbol: str
    qty: int = Field(gt=0)


async def place(order: Order) -> tuple[int, bytes]:
    """The shared implementation of both paths."""
    if order.symbol == "XXX":
        return 422, orjson.dumps({"detail": f"symbol: unknown symbol {order.symbol!r}"})
    if order.symbol == "INFRA":
        raise StoreUnavailable("orders: disk full")
    if order.symbol == "REDIS":
        raise redis_exc.ConnectionError("connection refused")
    if order.symbol == "BOOM":
        raise RuntimeError("bug")
    return 200, orjson.dumps({"symbol": order.symbol, "qty": order.qty, "ok": True})


def make_app(*, fail_body: bool = False, hot: bool = True, **kwargs: Any) -> FastPathApp:
    app = FastPathApp(**kwargs)
    install_error_handlers(app, fail_body=fail_body)

    @app.post("/orders")
    async def post_order(body: Order) -> Response:
        status, payload = await place(body)
        return Response(payload, status_code=status, media_type="application/json")

    async def hot_order(raw: bytes) -> tuple[int, bytes] | None:
        try:
            order = Order.model_validate_json(raw)
        except ValidationError:
            return None
        return await place(order)

    if hot:
        app.hot_route("post", "/orders", hot_order)
    return app


@pytest.fixture
async def generic() -> AsyncIterator[tuple[FastPathApp, httpx.AsyncClient]]:
    app = make_app()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        yield app, client


async def test_generic_with_valid_body_serves_hot_like_the_route(
    generic: tuple[FastPathApp, httpx.AsyncClient],
) -> None:
    app, client = generic
    body = orjson.dumps({"symbol": "BTCUSDT", "qty": 2})
    hot = await client.post("/orders", content=body, headers={"content-type": "application/json"})
    assert (app.hot_served, app.hot_declined) == (1, 0)
    assert hot.status_code == 200
    assert hot.headers["content-type"] == "application/json"
    assert hot.headers["content-length"] == str(len(hot.content))
    assert hot.json() == {"symbol": "BTCUSDT", "qty": 2, "ok": True}
    slow = await via_fastapi(client, "/orders", body)
    assert (app.hot_served, app.hot_declined) == (1, 0)  # FastAPI answered that one
    assert (slow.status_code, slow.json()) == (hot.status_code, hot.json())


async def test_generic_with_json_charset_content_type_serves_hot(
    generic: tuple[FastPathApp, httpx.AsyncClient],
) -> None:
    app, client = generic
    r = await client.post(
        "/orders",
        content=b'{"symbol": "ETHUSDT", "qty": 1}',
        headers={"content-type": "Application/JSON; charset=utf-8"},
    )
    assert r.status_code == 200 and r.json()["symbol"] == "ETHUSDT"
    assert app.hot_served == 1


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"symbol": "BTCUSDT", "qty": 0}', "body.qty: Input should be greater than 0"),
        (b'{"qty": 1}', "body.symbol: Field required"),
        (b'{"symbol": "BTCUSDT", "qty": 1, "extra": 1}', "body.extra: Extra inputs"),
        (b"{oops", "JSON decode error"),
    ],
)
async def test_generic_with_invalid_body_is_declined_and_fastapi_answers_422(
    generic: tuple[FastPathApp, httpx.AsyncClient], body: bytes, message: str
) -> None:
    app, client = generic
    hot = await client.post("/orders", content=body, headers={"content-type": "application/json"})
    assert (app.hot_served, app.hot_declined) == (0, 1)
    assert hot.status_code == 422
    assert message in hot.json()["detail"]
    slow = await via_fastapi(client, "/orders", body)
    assert (slow.status_code, slow.json()) == (422, hot.json())


async def test_generic_with_unknown_symbol_returns_422_on_both_paths(
    generic: tuple[FastPathApp, httpx.AsyncClient],
) -> None:
    app, client = generic
    body = b'{"symbol": "XXX", "qty": 1}'
    hot = await client.post("/orders", content=body, headers={"content-type": "application/json"})
    assert app.hot_served == 1
    slow = await via_fastapi(client, "/orders", body)
    expected = {"detail": "symbol: unknown symbol 'XXX'"}
    assert (hot.status_code, hot.json()) == (422, expected)
    assert (slow.status_code, slow.json()) == (422, expected)


async def test_generic_with_non_json_content_type_goes_to_fastapi(
    generic: tuple[FastPathApp, httpx.AsyncClient],
) -> None:
    app, client = generic
    r = await client.post(
        "/orders",
        content=b'{"symbol": "BTCUSDT", "qty": 1}',
        headers={"content-type": "text/plain"},
    )
    assert (app.hot_served, app.hot_declined) == (0, 0)  # never read by the hot path
    assert r.status_code == 422  # FastAPI: a text body is not the model


async def test_generic_with_body_over_hot_max_body_goes_to_fastapi() -> None:
    app = make_app(hot_max_body=16)
    body = orjson.dumps({"symbol": "BTCUSDT", "qty": 3})
    assert len(body) > 16
    status, payload, _ = await asgi_call(app, "POST", "/orders", [body])
    assert (app.hot_served, app.hot_declined) == (0, 0)
    assert (status, orjson.loads(payload)) == (200, {"symbol": "BTCUSDT", "qty": 3, "ok": True})
    small = b'{"symbol":"A","qty":1}'
    assert len(small) > 16
    app.hot_max_body = len(small)  # exactly at the limit: hot
    status, _, _ = await asgi_call(app, "POST", "/orders", [small])
    assert status == 200 and app.hot_served == 1


async def test_generic_with_body_longer_than_declared_is_replayed_whole_to_fastapi() -> None:
    # Content-Length claims a small body but more arrives than hot_max_body: the hot path stops
    # reading and FastAPI gets what was read followed by the rest.
    app = make_app(hot_max_body=16)
    body = orjson.dumps({"symbol": "BTCUSDT", "qty": 4})
    status, payload, _ = await asgi_call(
        app,
        "POST",
        "/orders",
        [body[:10], body[10:20], body[20:]],
        content_length=10,
    )
    assert (app.hot_served, app.hot_declined) == (0, 1)
    assert (status, orjson.loads(payload)) == (200, {"symbol": "BTCUSDT", "qty": 4, "ok": True})


async def test_generic_without_content_length_goes_to_fastapi() -> None:
    app = make_app()
    body = orjson.dumps({"symbol": "BTCUSDT", "qty": 1})
    status, payload, _ = await asgi_call(app, "POST", "/orders", [body], content_length=None)
    assert status == 200 and orjson.loads(payload)["ok"] is True
    assert (app.hot_served, app.hot_declined) == (0, 0)


@pytest.mark.parametrize("fail_body", [False, True])
@pytest.mark.parametrize(
    ("symbol", "message"),
    [
        ("INFRA", "service unavailable: orders: disk full"),
        ("REDIS", "service unavailable: redis: connection refused"),
    ],
)
async def test_generic_with_infra_error_returns_503_like_the_installed_handlers(
    fail_body: bool, symbol: str, message: str
) -> None:
    app = make_app(fail_body=fail_body)
    body = orjson.dumps({"symbol": symbol, "qty": 1})
    expected: dict[str, Any] = (
        {"result": "FAIL", "order_ids": [], "message": message}
        if fail_body
        else {"detail": message}
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        hot = await c.post("/orders", content=body, headers={"content-type": "application/json"})
        slow = await via_fastapi(c, "/orders", body)
    assert app.hot_served == 1
    assert (hot.status_code, hot.json()) == (503, expected)
    assert (slow.status_code, slow.json()) == (503, expected)


@pytest.mark.parametrize("fail_body", [False, True])
async def test_generic_with_unexpected_error_returns_500_and_logs(
    fail_body: bool, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(fail_body=fail_body)
    with caplog.at_level(logging.ERROR, logger="svckit.fastpath"):
        status, payload, _ = await asgi_call(app, "POST", "/orders", [b'{"symbol":"BOOM","qty":1}'])
    assert status == 500
    expected: dict[str, Any] = (
        {"result": "FAIL", "order_ids": [], "message": "internal server error"}
        if fail_body
        else {"detail": "internal server error"}
    )
    assert orjson.loads(payload) == expected
    logged = [r for r in caplog.records if r.name == "svckit.fastpath"]
    assert len(logged) == 1 and "POST /orders" in logged[0].getMessage()
    assert logged[0].exc_info is not None and isinstance(logged[0].exc_info[1], RuntimeError)


async def test_generic_with_get_on_hot_path_goes_to_fastapi_405(
    generic: tuple[FastPathApp, httpx.AsyncClient],
) -> None:
    app, client = generic
    r = await client.get("/orders")
    assert r.status_code == 405
    assert (app.hot_served, app.hot_declined) == (0, 0)


async def test_generic_with_other_path_goes_to_fastapi(
    generic: tuple[FastPathApp, httpx.AsyncClient],
) -> None:
    app, client = generic
    r = await client.post("/orders/", json={"symbol": "BTCUSDT", "qty": 1}, follow_redirects=False)
    assert r.status_code in (307, 404)  # Starlette's own handling, not the hot handler
    assert (app.hot_served, app.hot_declined) == (0, 0)


async def test_generic_with_body_split_across_messages_is_reassembled() -> None:
    app = make_app()
    body = orjson.dumps({"symbol": "BTCUSDT", "qty": 7})
    chunks = [body[:5], b"", body[5:17], body[17:]]
    status, payload, sent = await asgi_call(app, "POST", "/orders", chunks)
    assert (status, orjson.loads(payload)) == (200, {"symbol": "BTCUSDT", "qty": 7, "ok": True})
    assert app.hot_served == 1
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]


async def test_generic_with_split_invalid_body_is_replayed_to_fastapi() -> None:
    app = make_app()
    body = b'{"symbol": "BTCUSDT", "qty": -1}'
    status, payload, _ = await asgi_call(app, "POST", "/orders", [body[:9], body[9:]])
    assert app.hot_declined == 1
    assert status == 422
    assert orjson.loads(payload) == {"detail": "body.qty: Input should be greater than 0"}


async def test_generic_with_client_disconnect_mid_body_sends_nothing() -> None:
    app = make_app()
    status, _, sent = await asgi_call(
        app,
        "POST",
        "/orders",
        [],
        content_length=30,
        tail=[
            {"type": "http.request", "body": b'{"symbol": ', "more_body": True},
            {"type": "http.disconnect"},
        ],
    )
    assert status is None and sent == []  # nobody to answer
    assert (app.hot_served, app.hot_declined) == (0, 0)


# ---- the S3 app -------------------------------------------------------------------------------
class FailingSignals(SqliteStore):
    failing = False

    async def insert_many(self, collection: str, docs: Sequence[Doc]) -> list[str | StoreError]:
        if self.failing and collection == "signals":
            raise StoreUnavailable("signals: disk full")
        return await super().insert_many(collection, docs)


S3Rig = tuple[FastPathApp, httpx.AsyncClient, S3Container, FailingSignals]


@pytest.fixture
async def s3(
    redis: RedisClient, redis_addresses: list[str], tmp_path: Path
) -> AsyncIterator[S3Rig]:
    settings = Settings(
        redis_addresses=redis_addresses, data_dir=tmp_path, fixtures_dir=FIXTURES, s4_url=None
    )
    store = FailingSignals(tmp_path / "store.sqlite3")
    container = await bootstrap(settings, redis=redis, store=store)
    app = create_app(settings, container=container)
    assert isinstance(app, FastPathApp)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://s3") as client,
    ):
        yield app, client, container, store
    await store.close()


# fields of a decision that differ between two decisions on the same input
VOLATILE = {"signal_id", "intent_id", "client_order_id", "created_ts"}


def stable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: stable(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [stable(v) for v in value]
    return value


async def test_s3_decide_with_valid_body_serves_hot_like_the_route(
    s3: S3Rig, redis: RedisClient
) -> None:
    app, client, c, _ = s3
    await put_features(redis, **RULE_FEATURES)
    body = orjson.dumps({"symbol": "BTCUSDT", "dry_run": True})
    hot = await client.post("/decide", content=body, headers={"content-type": "application/json"})
    assert (app.hot_served, app.hot_declined) == (1, 0)
    assert hot.status_code == 200, hot.text
    got = hot.json()
    assert (got["decision"], got["reason"]) == ("open", "OK")
    assert await c.store.get("signals", got["signal_id"]) is not None  # persisted before answer
    slow = await via_fastapi(client, "/decide", body)
    assert app.hot_served == 1
    assert slow.status_code == 200
    assert slow.json()["signal_id"] != got["signal_id"]
    assert stable(slow.json()) == stable(got)
    assert set(slow.json()) == set(got)


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
async def test_s3_decide_with_invalid_body_declines_and_returns_route_422(
    s3: S3Rig, body: dict[str, Any]
) -> None:
    app, client, _, _ = s3
    raw = orjson.dumps(body)
    hot = await client.post("/decide", content=raw, headers={"content-type": "application/json"})
    assert (app.hot_served, app.hot_declined) == (0, 1)
    slow = await via_fastapi(client, "/decide", raw)
    assert hot.status_code == 422
    assert hot.json()["detail"].startswith("body")
    assert (slow.status_code, slow.json()) == (422, hot.json())


async def test_s3_decide_with_unknown_symbol_returns_422_on_both_paths(s3: S3Rig) -> None:
    app, client, _, _ = s3
    raw = b'{"symbol": "XXX"}'
    hot = await client.post("/decide", content=raw, headers={"content-type": "application/json"})
    assert app.hot_served == 1
    slow = await via_fastapi(client, "/decide", raw)
    expected = {"detail": "symbol: unknown symbol 'XXX'"}
    assert (hot.status_code, hot.json()) == (422, expected)
    assert (slow.status_code, slow.json()) == (422, expected)


async def test_s3_decide_with_oversize_body_is_answered_by_fastapi(
    s3: S3Rig, redis: RedisClient
) -> None:
    app, client, _, _ = s3
    await put_features(redis, **RULE_FEATURES)
    app.hot_max_body = 10
    r = await client.post("/decide", json={"symbol": "BTCUSDT", "dry_run": True})
    assert r.status_code == 200 and r.json()["decision"] == "open"
    assert (app.hot_served, app.hot_declined) == (0, 0)


async def test_s3_decide_with_signal_store_down_returns_503_on_both_paths(
    s3: S3Rig, redis: RedisClient
) -> None:
    app, client, _, store = s3
    await put_features(redis, **RULE_FEATURES)
    store.failing = True
    raw = b'{"symbol": "BTCUSDT", "dry_run": true}'
    hot = await client.post("/decide", content=raw, headers={"content-type": "application/json"})
    assert app.hot_served == 1
    slow = await via_fastapi(client, "/decide", raw)
    expected = {"detail": "service unavailable: signals: disk full"}
    assert (hot.status_code, hot.json()) == (503, expected)
    assert (slow.status_code, slow.json()) == (503, expected)


async def test_s3_decide_with_get_goes_to_fastapi_405(s3: S3Rig) -> None:
    app, client, _, _ = s3
    r = await client.get("/decide")
    assert r.status_code == 405
    assert (app.hot_served, app.hot_declined) == (0, 0)


async def test_s3_decide_with_body_split_across_messages_is_reassembled(
    s3: S3Rig, redis: RedisClient
) -> None:
    app, _, c, _ = s3
    await put_features(redis, **RULE_FEATURES)
    raw = b'{"symbol": "BTCUSDT", "dry_run": true}'
    status, payload, _ = await asgi_call(app, "POST", "/decide", [raw[:7], raw[7:20], raw[20:]])
    assert status == 200
    got = orjson.loads(payload)
    assert (got["decision"], got["reason"]) == ("open", "OK")
    assert app.hot_served == 1
    assert await c.store.get("signals", got["signal_id"]) is not None

"""Defects the schemathesis run (tests/fuzz) found, each pinned by one focused request: a clear
4xx naming the field instead of a 500, and answers that conform to what the published OpenAPI
declares (status code, content type, body schema), checked with schemathesis' own checks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
import schemathesis
from fastapi import FastAPI

from s3_strategy.bootstrap import bootstrap as s3_bootstrap
from s3_strategy.config import Settings as S3Settings
from s3_strategy.entrypoints.api import create_app as s3_app
from s4_router.bootstrap import bootstrap as s4_bootstrap
from s4_router.config import Settings as S4Settings
from s4_router.entrypoints.api import create_app as s4_app
from svckit.redisio import RedisClient, make_redis
from svckit.store.sqlite import SqliteStore
from tests.conftest import FIXTURES
from tests.fuzz.harness import conformance_checks
from tests.helpers import S3_ADMIN_TOKEN, S4_TOKEN, bearer

Served = tuple[httpx.AsyncClient, FastAPI]


async def _serve(app: FastAPI, token: str) -> AsyncIterator[httpx.AsyncClient]:
    # raise_app_exceptions=False: an unhandled error is seen as the 500 a caller would get.
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://t", headers=bearer(token)) as h,
    ):
        yield h


# One S3 and one S4 for the whole module (each test sends a request or two that change no
# state: refusals, 404s, metrics): starting and stopping a service per test cost ~2/3 of the
# module's time.
pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def module_redis(redis_single_addresses: list[str]) -> AsyncIterator[RedisClient]:
    client = make_redis(redis_single_addresses)
    await client.flushdb()
    try:
        yield client
    finally:
        await client.aclose()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def s3(
    module_redis: RedisClient,
    redis_single_addresses: list[str],
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Served]:
    tmp_path = tmp_path_factory.mktemp("fuzz-s3")
    settings = S3Settings(
        redis_addresses=redis_single_addresses,
        data_dir=tmp_path,
        fixtures_dir=FIXTURES,
        s4_url=None,
    )
    store = SqliteStore(tmp_path / "store.sqlite3")
    app = s3_app(settings, container=await s3_bootstrap(settings, redis=module_redis, store=store))
    async for client in _serve(app, S3_ADMIN_TOKEN):
        yield client, app
    await store.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def s4(
    module_redis: RedisClient,
    redis_single_addresses: list[str],
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Served]:
    tmp_path = tmp_path_factory.mktemp("fuzz-s4")
    settings = S4Settings(
        redis_addresses=redis_single_addresses,
        data_dir=tmp_path,
        fixtures_dir=FIXTURES,
        route_table_path=FIXTURES / "route_table.json",
    )
    store = SqliteStore(tmp_path / "store.sqlite3")
    app = s4_app(settings, container=await s4_bootstrap(settings, redis=module_redis, store=store))
    async for client in _serve(app, S4_TOKEN):
        yield client, app
    await store.close()


def assert_conforms(app: FastAPI, response: httpx.Response, **case: Any) -> None:
    """The response against the app's own OpenAPI for the request's operation."""
    request = response.request
    schema = schemathesis.openapi.from_dict(app.openapi())
    path = case.pop("path")
    operation = schema[path][request.method]
    operation.Case(**case).validate_response(response, checks=conformance_checks())


async def test_replay_with_malformed_signal_id_answers_422_naming_it(s3: Served) -> None:
    client, app = s3
    r = await client.post("/decide/replay/%C2%98%C2%BC")
    assert r.status_code == 422, r.text
    assert "signal_id" in r.json()["detail"]
    assert_conforms(
        app, r, path="/decide/replay/{signal_id}", path_parameters={"signal_id": "\x98\xbc"}
    )


@pytest.mark.parametrize("rules", [[{}], [{"x": 1}], [{"rule_id": 7}], [{"rule_id": "a b"}]])
async def test_config_bundle_with_rule_without_usable_id_answers_422_naming_it(
    s3: Served, rules: list[object]
) -> None:
    client, app = s3
    body = {"rules": rules, "note": None}
    r = await client.post("/config/bundles", json=body)
    assert r.status_code == 422, r.text
    assert "rules[0].rule_id" in r.json()["detail"]
    assert_conforms(app, r, path="/config/bundles", body=body)


async def test_decide_422_body_is_the_declared_one(s3: Served) -> None:
    client, app = s3
    r = await client.post("/decide", json={"symbol": "00"})
    assert r.status_code == 422 and "symbol" in r.json()["detail"]
    assert_conforms(app, r, path="/decide", body={"symbol": "00"})


async def test_task_with_malformed_schedule_time_answers_a_declared_400(s3: Served) -> None:
    client, app = s3
    headers = {"X-CloudScheduler-ScheduleTime": "6E"}
    r = await client.post("/tasks/15-min-job", json={}, headers=headers)
    assert r.status_code == 400 and "X-CloudScheduler-ScheduleTime" in r.text
    assert_conforms(app, r, path="/tasks/15-min-job", body={}, headers=headers)


def _assert_metrics_declared(app: FastAPI, r: httpx.Response) -> None:
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    assert_conforms(app, r, path="/metrics")


async def test_s3_metrics_content_type_is_the_declared_one(s3: Served) -> None:
    client, app = s3
    _assert_metrics_declared(app, await client.get("/metrics"))


async def test_s4_metrics_content_type_is_the_declared_one(s4: Served) -> None:
    client, app = s4
    _assert_metrics_declared(app, await client.get("/metrics"))


async def test_cancel_of_unknown_venue_order_answers_a_declared_404(s4: Served) -> None:
    client, app = s4
    r = await client.post("/cancel", json={"order_id": "0"})
    assert r.status_code == 404 and r.json()["result"] == "FAIL"
    assert_conforms(app, r, path="/cancel", body={"order_id": "0"})


async def test_get_unknown_order_answers_a_declared_404(s4: Served) -> None:
    client, app = s4
    r = await client.get("/orders/0")
    assert r.status_code == 404 and r.json()["result"] == "FAIL"
    assert_conforms(
        app, r, path="/orders/{client_order_id}", path_parameters={"client_order_id": "0"}
    )


async def test_s4_422_body_is_the_declared_one(s4: Served) -> None:
    client, app = s4
    r = await client.post("/cancel", json={})
    assert r.status_code == 422 and r.json()["result"] == "FAIL"
    assert_conforms(app, r, path="/cancel", body={})


@pytest.mark.parametrize("symbols", [[""], ["BTCUSDT", "X"], ["B" * 21]])
async def test_decide_batch_with_malformed_symbol_answers_422_naming_symbols(
    s3: Served, symbols: list[str]
) -> None:
    client, app = s3
    body = {"symbols": symbols, "dry_run": True}
    r = await client.post("/decide/batch", json=body)
    assert r.status_code == 422, r.text
    assert "symbols" in r.json()["detail"]
    assert_conforms(app, r, path="/decide/batch", body=body)


@pytest.mark.parametrize("task", ["/tasks/rebalance/symmetric", "/tasks/rebalance/intelligent"])
@pytest.mark.parametrize(
    "context",
    [
        {"price": 1.0370836564168883e308},
        {"price": 1509903771821259.0},
        {"cost_avg": 1e13},
        {"balances": {"QRL": 1e13}},
        {"closes": [1e13]},
    ],
)
async def test_task_with_out_of_range_what_if_answers_422_naming_it(
    s3: Served, task: str, context: dict[str, Any]
) -> None:
    client, app = s3
    body = {"dry_run": True, "context": context}
    r = await client.post(task, json=body)
    assert r.status_code == 422, r.text
    assert f"context.{next(iter(context))}" in r.json()["detail"]
    assert_conforms(app, r, path=task, body=body)


BAD_UTF8 = b"\x08hX'7\xff<m\x0e\xfe"


@pytest.mark.parametrize("path", ["/decide", "/decide/batch", "/config/bundles"])
async def test_s3_body_that_is_not_utf8_answers_a_declared_400(s3: Served, path: str) -> None:
    client, app = s3
    r = await client.post(path, content=BAD_UTF8, headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and "body" in r.json()["detail"]
    assert_conforms(app, r, path=path)


@pytest.mark.parametrize("path", ["/orders", "/cancel"])
async def test_s4_body_that_is_not_utf8_answers_a_declared_400(s4: Served, path: str) -> None:
    client, app = s4
    r = await client.post(path, content=BAD_UTF8, headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and "body" in r.json()["detail"]
    assert_conforms(app, r, path=path)

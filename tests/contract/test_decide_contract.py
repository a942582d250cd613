"""Contract of S3 `POST /decide` (spec C1/C7): the request and response schemas, every response
shape held to `DecideResponse`, every intent accepted unchanged by tradekit's `OrderIntent`
(the body S4 takes), and a dry run that leaves no intent anywhere but its signal."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from s3_strategy.bootstrap import S3Container, bootstrap
from s3_strategy.config import Settings
from s3_strategy.domain.ml import MlInput
from s3_strategy.domain.reasons import Reason
from s3_strategy.entrypoints.api import create_app
from s3_strategy.entrypoints.schemas import DecideResponse
from svckit import keys
from svckit.redisio import RedisClient
from svckit.store.sqlite import SqliteStore
from tests.conftest import FIXTURES
from tests.helpers import S3_AUTH, S3_TEST_POLL_S, put_features
from tests.unit.s3.helpers import BTC, NOW, engine, params
from tradekit.enums import Market, Side

RULE_FEATURES = {"rho_usdttwd_14": 0.1, "rv_1h": 0.01}


@pytest.fixture
async def s3(
    redis: RedisClient, redis_addresses: list[str], tmp_path: Path
) -> AsyncIterator[tuple[httpx.AsyncClient, S3Container]]:
    cfg = Settings(
        redis_addresses=redis_addresses,
        data_dir=tmp_path,
        fixtures_dir=FIXTURES,
        s4_url=None,
        config_poll_sec=S3_TEST_POLL_S,
    )
    store = SqliteStore(tmp_path / "store.sqlite3")
    c = await bootstrap(cfg, redis=redis, store=store)
    app = create_app(cfg, container=c)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://s3", headers=S3_AUTH
        ) as client,
    ):
        yield client, c
    await store.close()


def check_response(body: dict[str, Any]) -> DecideResponse:
    model = DecideResponse.model_validate(body)
    if body.get("intent") is not None:
        assert model.intent is not None
        # What S3 sends is exactly what S4's model reads back: no field lost or coerced.
        assert model.intent.model_dump(mode="json", exclude_none=True) == body["intent"]
    assert (body["decision"] == "open") == (body["reason"] == "OK")
    assert (body.get("intent") is not None) == (body["decision"] == "open")
    return model


async def test_openapi_with_decide_routes_documents_request_and_response_schemas(
    s3: tuple[httpx.AsyncClient, S3Container],
) -> None:
    client, _ = s3
    spec = (await client.get("/openapi.json")).json()
    paths = spec["paths"]
    assert {"/decide", "/decide/batch", "/decide/replay/{signal_id}", "/health", "/metrics"} <= set(
        paths
    )
    req = spec["components"]["schemas"]["DecideRequest"]
    assert set(req["properties"]) == {"symbol", "sideHint", "dry_run", "context"}
    assert req["required"] == ["symbol"] and req["additionalProperties"] is False
    ok = paths["/decide"]["post"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok["$ref"].endswith("/DecideResponse")
    resp = spec["components"]["schemas"]["DecideResponse"]
    assert {"decision", "intent", "reason", "config_rev", "rules_fired", "gates"} <= set(
        resp["properties"]
    )
    reasons = set(spec["components"]["schemas"]["Reason"]["enum"])
    assert reasons == {r.value for r in Reason}


@pytest.mark.parametrize(
    ("body", "over"),
    [
        ({"symbol": "BTCUSDT", "dry_run": True}, {}),
        ({"symbol": "btcusdt", "dry_run": True, "sideHint": "SELL"}, {}),
        ({"symbol": "BTCUSDT", "dry_run": True, "context": {"market": "SPOT"}}, {}),
        ({"symbol": "BTCUSDT", "dry_run": True}, {"spread_bps": 9.0}),
        ({"symbol": "BTCUSDT", "dry_run": True}, {"spread_bps": 2.8}),
        ({"symbol": "BTCUSDT", "dry_run": True}, {"ts": 1}),
        ({"symbol": "ETHUSDT", "dry_run": True}, {}),
        ({"symbol": "BTCUSDT"}, {}),
        ({"symbol": "QRLUSDT", "dry_run": True}, {}),
    ],
)
async def test_decide_with_each_outcome_answers_in_the_response_schema(
    s3: tuple[httpx.AsyncClient, S3Container],
    redis: RedisClient,
    body: dict[str, Any],
    over: dict[str, Any],
) -> None:
    client, _ = s3
    await put_features(redis, **{**RULE_FEATURES, **over})
    r = await client.post("/decide", json=body)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json"
    check_response(r.json())


async def test_decide_dry_run_with_open_decision_lands_intent_only_in_its_signal(
    s3: tuple[httpx.AsyncClient, S3Container], redis: RedisClient
) -> None:
    client, c = s3
    await put_features(redis, **RULE_FEATURES)
    body = (await client.post("/decide", json={"symbol": "BTCUSDT", "dry_run": True})).json()
    assert body["decision"] == "open" and "publish" not in body
    coid = body["intent"]["client_order_id"]
    assert await redis.xlen(keys.ORDERS_INTENT) == 0
    assert await redis.exists(keys.idem_order(coid)) == 0
    assert await c.store.count("orders") == 0
    signal = await c.store.get("signals", body["signal_id"])
    assert signal is not None and signal["dry_run"] is True and signal["intent"] == body["intent"]


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"symbol": "BTCUSDT", "context": {"features": {"mid": "NaN"}}}, "features"),
        ({"symbol": "BTCUSDT", "context": {"features": {"Mid; drop": 1.0}}}, "features"),
        ({"symbol": "BTCUSDT", "context": {"market": "OPTIONS"}}, "market"),
        ({"symbol": "BTCUSDT", "context": {"venue": "x"}}, "venue"),
        ({"symbol": "B"}, "symbol"),
        ({"symbol": "BTCUSDT", "sideHint": "buy"}, "sideHint"),
    ],
)
async def test_decide_with_bad_request_returns_422_naming_the_field(
    s3: tuple[httpx.AsyncClient, S3Container], body: dict[str, Any], needle: str
) -> None:
    client, _ = s3
    r = await client.post("/decide", json=body)
    assert r.status_code == 422 and needle in r.text


async def test_decide_with_nan_token_in_json_returns_422(
    s3: tuple[httpx.AsyncClient, S3Container],
) -> None:
    client, _ = s3
    raw = b'{"symbol": "BTCUSDT", "context": {"features": {"mid": NaN}}}'
    r = await client.post("/decide", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 422


# ---- property: any market state yields a schema-valid response and an S4-valid intent ---------
ENGINES = {
    "fixture": engine(),
    "no-brackets": engine(bundle_params=params(brackets={"enabled": False})),
    "twap": engine(bundle_params=params(exec_policy={"FUT": {"type": "TWAP"}})),
}
finite = st.floats(allow_nan=False, allow_infinity=False)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    which=st.sampled_from(sorted(ENGINES)),
    symbol=st.sampled_from(["BTCUSDT", "ETHUSDT", "QRLUSDT", "XRPUSDT"]),
    market=st.sampled_from([Market.FUT, Market.SPOT]),
    side=st.sampled_from([None, Side.BUY, Side.SELL]),
    mid=st.one_of(st.floats(min_value=1e-4, max_value=2e5), st.just(0.0), st.just(math.nan)),
    spread=st.floats(min_value=0, max_value=6),
    atr=st.floats(min_value=0, max_value=5000),
    p=st.one_of(st.none(), st.floats(min_value=0, max_value=1)),
    age=st.integers(-7000, 7000),
    rv=st.floats(min_value=0, max_value=1),
    entries=st.integers(0, 2),
)
def test_engine_with_random_market_state_answers_in_schema_with_valid_intent(
    which: str,
    symbol: str,
    market: Market,
    side: Side | None,
    mid: float,
    spread: float,
    atr: float,
    p: float | None,
    age: int,
    rv: float,
    entries: int,
) -> None:
    eng = ENGINES[which]
    feats = {
        **BTC,
        "mid": mid,
        "price": mid,
        "spread_bps": spread,
        "atr_14": atr,
        "rv_pctile_30d": rv,
        "ma_cross": -1.0 if rv > 0.5 else 1.0,
    }
    pre = eng.pre(
        symbol=symbol,
        market=market,
        features=feats,
        feature_ts=NOW - age,
        now_ms=NOW,
        side_hint=side,
        open_entries=entries,
        margin_in_flight=0.0,
    )
    ml = MlInput(p, "m", p is None, None if p is not None else "timeout")
    out = eng.finish(pre, ml, signal_id="s" * 32).as_dict()
    out.update(config_rev=eng.config_rev, ctx_rev=eng.ctx_rev, signal_id="s" * 32, dry_run=True)
    model = check_response(out)
    if model.intent is not None:
        assert model.intent.market is market and model.intent.symbol == symbol
        if which == "fixture":
            assert model.intent.needs_protection

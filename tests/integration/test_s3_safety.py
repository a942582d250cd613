# ruff: noqa: F401, F811 - `make_s3` is test_s3_decide's fixture, imported to be used here
"""Issue 11, S3: what a risk desk refuses, checked over HTTP (in-process ASGI) on a real Redis
and a SQLite store. Each test here failed on the code before the issue was worked."""

from __future__ import annotations

from typing import Any

import pytest

from svckit import keys
from svckit.redisio import RedisClient
from tests.helpers import BTC_FEATURES, now_ms, put_features
from tests.integration.test_s3_decide import (
    BTC,
    DRY,
    RULE_FEATURES,
    Factory,
    alerts,
    make_s3,
)


# ---- point 1: what-if features are for dry runs only -------------------------------------------
@pytest.mark.parametrize("path", ["/decide", "/decide/batch"])
async def test_decide_live_with_context_features_returns_422_naming_the_field_and_emits_nothing(
    make_s3: Factory, redis: RedisClient, path: str
) -> None:
    s3 = await make_s3()
    await put_features(redis, **RULE_FEATURES)
    body = {**BTC, "context": {"features": {"mid": 70_000.0}}}
    r = await s3.client.post(path, json=body if path == "/decide" else {"items": [body]})
    if path == "/decide":
        assert r.status_code == 422, r.text
        assert "context.features" in r.json()["detail"]
    else:
        assert r.status_code == 200, r.text
        [item] = r.json()["results"]
        assert item["status"] == 422 and "context.features" in item["error"]
    assert await redis.xlen(keys.ORDERS_INTENT) == 0
    assert await s3.store.count("signals") == 0


async def test_decide_dry_run_with_context_features_records_which_were_overridden(
    make_s3: Factory, redis: RedisClient
) -> None:
    s3 = await make_s3()
    ts = await put_features(redis, **RULE_FEATURES)
    body = await s3.decide({**DRY, "context": {"features": {"spread_bps": 0.5, "rv_1h": 0.02,
                                                            "ts": ts + 1}}})  # fmt: skip
    signal = await s3.store.get("signals", body["signal_id"])
    assert signal is not None
    assert signal["features_overridden"] == ["rv_1h", "spread_bps", "ts"]
    plain = await s3.decide(DRY)
    signal = await s3.store.get("signals", plain["signal_id"])
    assert signal is not None and signal["features_overridden"] == []


# ---- point 3: S3_SYMBOLS -----------------------------------------------------------------------
async def test_decide_live_for_symbol_outside_s3_symbols_returns_422_and_emits_nothing(
    make_s3: Factory, redis: RedisClient
) -> None:
    s3 = await make_s3(symbols=["BTCUSDT"])
    await put_features(redis, "ETHUSDT", **RULE_FEATURES, mid=3000.0, ma7_5m=3001.0,
                       ma25_5m=2999.0, atr_14=5.0)  # fmt: skip
    r = await s3.client.post("/decide", json={"symbol": "ETHUSDT"})
    assert r.status_code == 422, r.text
    assert "S3_SYMBOLS" in r.json()["detail"]
    r = await s3.client.post("/decide/batch", json={"symbols": ["ETHUSDT"]})
    assert r.status_code == 200 and r.json()["results"][0]["status"] == 422
    assert await redis.xlen(keys.ORDERS_INTENT) == 0
    # a dry run computes and records only: allowed for any instrument (research, what-if)
    dry = await s3.decide({"symbol": "ETHUSDT", "dry_run": True})
    assert dry["decision"] in ("open", "skip")


# ---- point 5: feature values -------------------------------------------------------------------
@pytest.mark.parametrize(
    "features",
    [{"mid": True}, {"mid": "65000"}, {"spread_bps": 1e30}, {"ts": 1e30}, {"ts": -1}],
)
async def test_decide_dry_run_with_non_numeric_or_absurd_what_if_value_returns_422(
    make_s3: Factory, features: dict[str, Any]
) -> None:
    s3 = await make_s3()
    r = await s3.client.post("/decide", json={**DRY, "context": {"features": features}})
    assert r.status_code == 422, r.text
    assert "features" in r.text


@pytest.mark.parametrize(
    ("over", "name"),
    [({"spread_bps": -1.0}, "spread_bps"), ({"funding_rate": -0.0001, "funding_next_abs": -0.5},
                                            "funding_next_abs"),
     ({"rv_pctile_30d": 1.7}, "rv_pctile_30d")],
)  # fmt: skip
async def test_decide_live_with_feature_outside_registry_bounds_skips_and_alerts(
    make_s3: Factory, redis: RedisClient, over: dict[str, float], name: str
) -> None:
    s3 = await make_s3()
    await put_features(redis, **{**RULE_FEATURES, **over})
    body = await s3.decide(BTC)
    assert (body["decision"], body["reason"]) == ("skip", "FEATURE_OUT_OF_RANGE"), body
    assert name in body["message"]
    [alert] = await alerts(redis)
    assert alert["kind"] == "FEATURE_OUT_OF_RANGE" and name in alert["message"]
    assert await redis.xlen(keys.ORDERS_INTENT) == 0


async def test_decide_dry_run_with_what_if_outside_bounds_skips_feature_out_of_range(
    make_s3: Factory,
) -> None:
    s3 = await make_s3()
    feats = {**BTC_FEATURES, **RULE_FEATURES, "spread_bps": -3.0, "ts": now_ms()}
    body = await s3.decide({**DRY, "context": {"features": feats}})
    assert body["reason"] == "FEATURE_OUT_OF_RANGE"

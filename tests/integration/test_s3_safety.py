# ruff: noqa: F401, F811 - `make_s3` is test_s3_decide's fixture, imported to be used here
"""Issue 11, S3: what a risk desk refuses, checked over HTTP (in-process ASGI) on a real Redis
and a SQLite store. Each test here failed on the code before the issue was worked."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from s3_strategy.adapters.configstore import ConfigStore
from s3_strategy.adapters.entries import EntriesLedger, Tally, tally
from s3_strategy.adapters.signals import SignalWriter
from s3_strategy.bootstrap import bootstrap
from s3_strategy.config import Settings
from s3_strategy.service_layer.decide import DecideInput, DecideRefused
from svckit import keys
from svckit.clock import ManualClock
from svckit.embedded_redis import free_port
from svckit.errors import InvalidDocument, StartupError
from svckit.redisio import RedisClient
from svckit.store.sqlite import SqliteStore
from tests.conftest import FIXTURES
from tests.helpers import BTC_FEATURES, S3_TOKEN, now_ms, publish_bundle, put_features
from tests.integration.test_s3_decide import (
    BTC,
    DRY,
    RULE_FEATURES,
    Factory,
    alerts,
    fixture_params,
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
    body = await s3.decide(
        {**DRY, "context": {"features": {"spread_bps": 0.5, "rv_1h": 0.02, "ts": ts + 1}}}
    )
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
    await put_features(
        redis, "ETHUSDT", **RULE_FEATURES, mid=3000.0, ma7_5m=3001.0, ma25_5m=2999.0, atr_14=5.0
    )
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
    [
        ({"spread_bps": -1.0}, "spread_bps"),
        ({"funding_rate": -0.0001, "funding_next_abs": -0.5}, "funding_next_abs"),
        ({"rv_pctile_30d": 1.7}, "rv_pctile_30d"),
    ],
)
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


# ---- point 6: batch items are independent; one bad document never fails another's write ------
async def test_decide_batch_with_absurd_ts_item_is_refused_whole_before_any_side_effect(
    make_s3: Factory, redis: RedisClient
) -> None:
    s3 = await make_s3()
    await put_features(redis, **RULE_FEATURES)
    bad = {**DRY, "context": {"features": {**BTC_FEATURES, **RULE_FEATURES, "ts": 1e30}}}
    r = await s3.client.post("/decide/batch", json={"items": [BTC, bad]})
    assert r.status_code == 422, r.text
    assert await redis.xlen(keys.ORDERS_INTENT) == 0
    assert await s3.store.count("signals") == 0


async def test_decide_concurrent_with_unstorable_what_if_leaves_the_live_decision_intact(
    make_s3: Factory, redis: RedisClient
) -> None:
    """The service layer holds whichever HTTP path calls it: a what-if `ts` no store can hold
    (an integer beyond 64 bits once converted) is refused alone, the live decision beside it
    is written and emitted."""
    s3 = await make_s3()
    await put_features(redis, **RULE_FEATURES)
    svc = s3.c.service
    bad = {**BTC_FEATURES, **RULE_FEATURES, "ts": 1e30}
    results: list[Any] = await asyncio.gather(
        svc.decide(DecideInput(symbol="BTCUSDT")),
        svc.decide(DecideInput(symbol="BTCUSDT", dry_run=True, features=bad)),
        return_exceptions=True,
    )
    live, what_if = results
    assert isinstance(live, dict) and live["decision"] == "open", live
    assert isinstance(what_if, DecideRefused) and str(what_if).startswith("context.features.ts: ")
    assert await redis.xlen(keys.ORDERS_INTENT) == 1
    assert await s3.store.get("signals", live["signal_id"]) is not None


async def test_signal_writer_with_one_unstorable_document_fails_only_that_write(
    sqlite_store: SqliteStore,
) -> None:
    writer = SignalWriter(sqlite_store)
    good = {"_key": "good", "decision": "open", "features": {"ts": now_ms()}}
    bad = {"_key": "bad", "decision": "skip", "features": {"ts": 10**30}}
    res = await asyncio.gather(writer.write(good), writer.write(bad), return_exceptions=True)
    assert res[0] is None, res
    assert isinstance(res[1], InvalidDocument), res
    assert await sqlite_store.get("signals", "good") is not None
    assert await sqlite_store.get("signals", "bad") is None
    # the store's group insert itself: the bad document reports its error, the other is stored
    first, second = await sqlite_store.insert_many("signals", [bad, {"_key": "g2"}])
    assert isinstance(first, InvalidDocument) and "bad" in str(first)
    assert second == "g2" and await sqlite_store.get("signals", "g2") is not None


class _PublishReportLost(SqliteStore):
    """A store whose `signals` updates fail with an unexpected error (a bug, a driver fault)."""

    async def update(self, collection: str, key: str, patch: dict[str, Any]) -> dict[str, Any]:
        if collection == "signals":
            raise RuntimeError("driver fault while recording the publish report")
        return await super().update(collection, key, patch)


async def test_decide_batch_with_emitted_item_never_answers_5xx(
    make_s3: Factory, redis: RedisClient, tmp_path: Path
) -> None:
    s3 = await make_s3(store=_PublishReportLost(tmp_path / "lost.sqlite3"))
    await put_features(redis, **RULE_FEATURES)
    r = await s3.client.post("/decide/batch", json={"items": [BTC, DRY]})
    assert r.status_code == 200, r.text
    live, dry = r.json()["results"]
    assert live["decision"] == "open" and live["publish"]["stream"] == "ok", live
    assert dry["dry_run"] is True
    assert await redis.xlen(keys.ORDERS_INTENT) == 1
    r = await s3.client.post("/decide", json=DRY)  # one decision alike
    assert r.status_code == 200


# ---- point 8: every alert names its cause ------------------------------------------------------
async def test_decide_live_with_s4_timing_out_alerts_publish_degraded_naming_the_timeout(
    make_s3: Factory, redis: RedisClient
) -> None:
    done = asyncio.Event()
    writers: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        await reader.read(65536)
        await done.wait()  # accepts the request, never answers

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        http = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=0.2)
        s3 = await make_s3(http=http, publish_retries=1)
        await put_features(redis, **RULE_FEATURES)
        body = await s3.decide(BTC)
        assert body["publish"]["rest"] == "failed"
        [alert] = await alerts(redis)
        assert alert["kind"] == "PUBLISH_DEGRADED"
        cause = alert["message"].split("rest: ", 1)[1]
        assert "ReadTimeout" in cause and "0.2" in cause, alert["message"]
        assert body["publish"]["errors"] == [f"rest: {cause}"]
    finally:
        done.set()
        for w in writers:
            w.close()
            await w.wait_closed()
        server.close()
        await server.wait_closed()


# ---- point 7: a bundle that fails lint never crashes the start -----------------------------------
async def _bad_bundle(store: SqliteStore) -> str:
    """Promote a bundle whose new rule has an absurd threshold (1e300, storable, not lintable)."""
    bad = {
        "rule_id": "R-BAD",
        "priority": 5,
        "status": "ENABLED",
        "applies": {"symbols": ["BTCUSDT"], "services": ["s3-strategy"]},
        "when": {"allOf": [{"f": "rv_1h", "op": ">", "v": 1e300}]},
        "action": {"type": "skip_entry"},
    }
    await store.upsert("strategy_rules", "R-BAD", bad)
    return await publish_bundle(store, "bad", fixture_params())


async def test_bootstrap_with_active_bundle_failing_lint_keeps_the_last_good_and_alerts(
    redis: RedisClient, redis_addresses: list[str], tmp_path: Path
) -> None:
    store = SqliteStore(tmp_path / "s.sqlite3")
    settings = Settings(
        redis_addresses=redis_addresses, data_dir=tmp_path, fixtures_dir=FIXTURES, s4_url=None
    )
    try:
        good = await bootstrap(settings, redis=redis, store=store)  # records its context
        good_rev = good.service.engine.config_rev
        await good.aclose()
        bad_rev = await _bad_bundle(store)
        c = await bootstrap(settings, redis=redis, store=store, seed=False)
        try:
            assert c.service.engine.config_rev == good_rev != bad_rev
            [alert] = [a for a in await alerts(redis) if a["kind"] == "CONFIG_REJECTED"]
            assert alert["severity"] == "critical"
            assert "R-BAD: when.allOf[0]: v must be finite and within" in alert["message"]
            assert f"keeping the last good bundle default@{good_rev}" in alert["message"]
        finally:
            await c.aclose()
    finally:
        await store.close()


async def test_bootstrap_with_only_a_bundle_failing_lint_refuses_naming_the_path(
    redis: RedisClient, redis_addresses: list[str], tmp_path: Path
) -> None:
    store = SqliteStore(tmp_path / "s.sqlite3")
    try:
        from svckit.store.seed import seed_store

        await seed_store(store, FIXTURES)
        await _bad_bundle(store)
        settings = Settings(
            redis_addresses=redis_addresses, data_dir=tmp_path, fixtures_dir=FIXTURES, s4_url=None
        )
        with pytest.raises(StartupError, match=r"R-BAD: when\.allOf\[0\]: v must be finite"):
            await bootstrap(settings, redis=redis, store=store, seed=False)
    finally:
        await store.close()


# ---- point 2: open positions count until S4's protection closes them -----------------------------
async def test_ledger_with_protected_entry_filled_keeps_a_position_until_protection_resolves(
    redis: RedisClient, sqlite_store: SqliteStore
) -> None:
    clock = ManualClock(now_ms())
    ledger = EntriesLedger(
        redis=redis,
        store=sqlite_store,
        clock=clock,
        symbols=["BTCUSDT"],
        grace_ms=60_000,
        reconcile_ms=1000,
    )
    await ledger.add("s3-a", "BTCUSDT", "FUT", "19.5", protected=True)
    await ledger.add("s3-b", "BTCUSDT", "FUT", "19.5")  # no protection asked
    prot = {
        "_key": "protection:s3-a",
        "kind": "PROTECTION",
        "parent_client_order_id": "s3-a",
        "symbol": "BTCUSDT",
        "market": "FUT",
        "active": True,
        "entry_filled": "0.006",
        "ts": now_ms(),
        "intent": {"qty": "0.006", "ref_price": "65000", "leverage": 20},
    }
    await sqlite_store.insert("strategy_events", prot)
    for coid in ("s3-a", "s3-b"):
        await ledger.on_executed(
            {"client_order_id": coid, "status": "FILLED", "filled_qty": "0.006"}
        )
    snap = await ledger.snapshot()
    assert list(snap) == ["s3-a"] and snap["s3-a"].endswith("|P")
    assert tally(snap, "BTCUSDT", "FUT") == Tally(0, 1, 0.0, 19.5)
    await ledger.reconcile()
    assert list(await ledger.snapshot()) == ["s3-a"]  # protection still working
    await sqlite_store.update("strategy_events", "protection:s3-a", {"active": False})
    await ledger.reconcile()
    assert await ledger.snapshot() == {}  # closed by its stop / take profit


async def test_ledger_reconcile_adopts_positions_s4_protects_that_it_lacks(
    redis: RedisClient, sqlite_store: SqliteStore
) -> None:
    ledger = EntriesLedger(
        redis=redis,
        store=sqlite_store,
        clock=ManualClock(now_ms()),
        symbols=["BTCUSDT"],
        grace_ms=60_000,
        reconcile_ms=1000,
    )
    prot = {
        "_key": "protection:ext-1",
        "kind": "PROTECTION",
        "parent_client_order_id": "ext-1",
        "symbol": "BTCUSDT",
        "market": "FUT",
        "active": True,
        "entry_filled": "0.006",
        "ts": now_ms(),
        "intent": {"qty": "0.006", "ref_price": "65000", "leverage": 20},
    }
    await sqlite_store.insert("strategy_events", prot)
    _, adopted = await ledger.reconcile()
    snap = await ledger.snapshot()
    assert adopted == 1 and snap["ext-1"].startswith("BTCUSDT|FUT|19.5|")
    assert snap["ext-1"].endswith("|P")


def test_process_start_with_only_a_bundle_failing_lint_exits_naming_it_without_traceback(
    tmp_path: Path, redis_addresses: list[str]
) -> None:
    fixtures = tmp_path / "fixtures"
    shutil.copytree(FIXTURES, fixtures)
    rules = json.loads((fixtures / "strategy_rules.json").read_text())
    # Refused by the seed (tradekit.rules, the same check S3 lints with) before S3 builds it.
    rules[0]["when"] = {"f": "rv_1h", "op": ">", "v": 1e300}
    (fixtures / "strategy_rules.json").write_text(json.dumps(rules))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("S3_", "S4_"))} | {
        "S3_DATA_DIR": str(tmp_path),
        "S3_FIXTURES_DIR": str(fixtures),
        "S3_API_TOKEN": S3_TOKEN,
        "S3_S4_URL": "",
        "S3_REDIS_ADDRESSES": ",".join(redis_addresses),
        "S3_PORT": str(free_port()),
    }
    res = subprocess.run(
        [sys.executable, "-m", "s3_strategy"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert res.returncode != 0
    assert f"{rules[0]['rule_id']}: when: v must be finite and within" in res.stderr, res.stderr
    assert "Traceback" not in res.stderr, res.stderr[-3000:]

"""S3 decisions over HTTP (in-process ASGI) on a real Redis and a SQLite store: what a dry run
writes, replay, the entries-in-flight ledger, the lock, the ML deadline and fallback, alerts,
batch, health and metrics, and config loading by rev."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from s3_strategy.adapters.configstore import CTX_PREFIX
from s3_strategy.adapters.entries import ENTRIES_KEY, EntriesLedger, encode
from s3_strategy.bootstrap import S3Container, bootstrap
from s3_strategy.config import Settings
from s3_strategy.domain.ml import Scorer
from s3_strategy.entrypoints.api import create_app
from svckit import jsonutil, keys
from svckit.clock import ManualClock
from svckit.errors import StartupError, StoreError, StoreUnavailable
from svckit.redisio import RedisClient
from svckit.store.base import Doc
from svckit.store.sqlite import SqliteStore
from tests.conftest import FIXTURES
from tests.helpers import S3_AUTH, S3_TEST_POLL_S, publish_bundle, put_features

# Every test that uses Redis runs on a single node and on a 3-master Redis Cluster (conftest).
pytestmark = pytest.mark.redis_modes

RULE_FEATURES = {"rho_usdttwd_14": 0.1, "rv_1h": 0.01}
BTC = {"symbol": "BTCUSDT"}
DRY = {"symbol": "BTCUSDT", "dry_run": True}


def fixture_params(**over: Any) -> dict[str, Any]:
    p: dict[str, Any] = json.loads((FIXTURES / "config_bundle.json").read_text())["params"]
    p.update(over)
    return p


@dataclass
class S3:
    client: httpx.AsyncClient
    c: S3Container
    store: SqliteStore

    async def decide(self, body: Mapping[str, Any], status: int = 200) -> dict[str, Any]:
        r = await self.client.post("/decide", json=dict(body))
        assert r.status_code == status, r.text
        out: dict[str, Any] = r.json()
        return out


Factory = Callable[..., Awaitable[S3]]


@pytest.fixture
async def make_s3(
    redis: RedisClient, redis_addresses: list[str], tmp_path: Path
) -> AsyncIterator[Factory]:
    async with AsyncExitStack() as stack:

        async def start(
            *,
            scorer: Scorer | None = None,
            params: dict[str, Any] | None = None,
            rule_ids: list[str] | None = None,
            store: SqliteStore | None = None,
            http: httpx.AsyncClient | None = None,
            seed: bool = True,
            **settings: Any,
        ) -> S3:
            base: dict[str, Any] = {
                "redis_addresses": redis_addresses,
                "data_dir": tmp_path,
                "fixtures_dir": FIXTURES,
                "s4_url": None,
                "entries_reconcile_ms": 50,
                "config_poll_sec": S3_TEST_POLL_S,
            }
            if http is not None:
                base["s4_url"] = "http://s4"
            cfg = Settings(**{**base, **settings})
            if store is None:
                store = SqliteStore(tmp_path / "store.sqlite3")
            # Closed after the app (LIFO): the ledger task never sees a closed store.
            stack.push_async_callback(store.close)
            if params is not None or rule_ids is not None:
                await store.bootstrap()
                from svckit.store.seed import seed_store

                await seed_store(store, FIXTURES)
                await publish_bundle(store, "test", params or fixture_params(), rule_ids=rule_ids)
            c = await bootstrap(cfg, redis=redis, store=store, scorer=scorer, http=http, seed=seed)
            app = create_app(cfg, container=c)
            await stack.enter_async_context(app.router.lifespan_context(app))
            client = await stack.enter_async_context(
                httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=app), base_url="http://s3", headers=S3_AUTH
                )
            )
            return S3(client, c, store)

        yield start


async def wait_for(pred: Callable[[], Awaitable[bool]], within_s: float = 5.0) -> None:
    async with asyncio.timeout(within_s):
        while not await pred():  # noqa: ASYNC110 - polls Redis
            await asyncio.sleep(0.01)


async def redis_state(redis: RedisClient) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in sorted(await redis.keys("*")):
        kind = await redis.type(key)
        out[key] = await redis.xlen(key) if kind == "stream" else kind
    return out


async def alerts(redis: RedisClient) -> list[dict[str, Any]]:
    return [jsonutil.loads(e[1]["data"]) for e in await redis.xrange(keys.ALERTS)]


# ---- dry run ----------------------------------------------------------------------------------
@pytest.mark.parametrize("over", [{}, {"spread_bps": 9.0}, {"rv_1h": None}])
async def test_decide_dry_run_with_any_outcome_writes_only_the_signal(
    make_s3: Factory, redis: RedisClient, over: dict[str, Any]
) -> None:
    s3 = await make_s3()
    feats = {**RULE_FEATURES, **over}
    await put_features(redis, **{k: v for k, v in feats.items() if v is not None})
    before = await redis_state(redis)
    signals_before = await s3.store.count("signals")
    body = await s3.decide(DRY)
    assert body["dry_run"] is True
    assert await redis_state(redis) == before  # no lock, claim, ledger, stream or alert
    assert await s3.store.count("signals") == signals_before + 1
    signal = await s3.store.get("signals", body["signal_id"])
    assert signal is not None and signal["dry_run"] is True
    assert await s3.store.count("orders") == 0


async def test_decide_with_context_features_overrides_redis_and_records_sources(
    make_s3: Factory, redis: RedisClient
) -> None:
    s3 = await make_s3()
    ts = await put_features(redis, **RULE_FEATURES)
    body = await s3.decide({**DRY, "context": {"features": {"spread_bps": 2.9}}})
    assert body["reason"] == "RULE_SKIP"  # the what-if spread trips the skip rule
    signal = await s3.store.get("signals", body["signal_id"])
    assert signal is not None
    assert signal["features"]["spread_bps"] == 2.9 and signal["features"]["ts"] == ts
    assert signal["feature_sources"] == ["feat:last", "context"]


async def test_decide_with_context_only_features_and_ts_decides_without_redis_data(
    make_s3: Factory,
) -> None:
    s3 = await make_s3()
    from tests.helpers import BTC_FEATURES, now_ms

    feats = {**BTC_FEATURES, **RULE_FEATURES, "ts": now_ms()}
    body = await s3.decide({**DRY, "context": {"features": feats}})
    assert body["decision"] == "open", body


async def test_decide_signal_with_every_decision_holds_spec_fields(
    make_s3: Factory, redis: RedisClient
) -> None:
    s3 = await make_s3()
    await put_features(redis, **RULE_FEATURES)
    body = await s3.decide(DRY)
    signal = await s3.store.get("signals", body["signal_id"])
    assert signal is not None
    for name in (
        "signal_id",
        "t0",
        "symbol",
        "features",
        "gates",
        "rules_fired",
        "ml",
        "decision",
        "intent",
        "config_rev",
        "ctx_rev",
        "state",
        "market",
    ):
        assert name in signal, name
    assert signal["intent"] == body["intent"] and signal["config_rev"] == body["config_rev"]


# ---- replay -----------------------------------------------------------------------------------
async def replay(s3: S3, signal_id: str, status: int = 200) -> dict[str, Any]:
    r = await s3.client.post(f"/decide/replay/{signal_id}")
    assert r.status_code == status, r.text
    out: dict[str, Any] = r.json()
    return out


@pytest.mark.parametrize(
    ("over", "dry_run", "reason"),
    [
        ({}, True, "OK"),
        ({}, False, "OK"),
        ({"spread_bps": 9.0}, False, "SPREAD_TOO_WIDE"),
        ({"spread_bps": 2.8}, True, "RULE_SKIP"),
        ({"rho_usdttwd_14": None}, False, "FEATURE_MISSING"),
        ({"ts": 1}, True, "FEATURE_STALE"),
    ],
)
async def test_replay_with_recorded_decision_reproduces_it_identically(
    make_s3: Factory, redis: RedisClient, over: dict[str, Any], dry_run: bool, reason: str
) -> None:
    s3 = await make_s3()
    feats = {**RULE_FEATURES, **over}
    await put_features(redis, **{k: v for k, v in feats.items() if v is not None})
    body = await s3.decide({**BTC, "dry_run": dry_run})
    assert body["reason"] == reason
    await put_features(redis, spread_bps=50.0)  # the market moved on: replay must not care
    out = await replay(s3, body["signal_id"])
    assert out["identical"] is True and out["differences"] == []
    for key in ("decision", "reason", "gates", "rules_fired", "intent", "config_rev"):
        assert out["result"].get(key) == body.get(key), key
    assert await redis.xlen(keys.ORDERS_INTENT) == (0 if dry_run or reason != "OK" else 1)


async def test_replay_with_duplicate_and_lock_busy_decisions_reproduces_the_override(
    make_s3: Factory, redis: RedisClient
) -> None:
    s3 = await make_s3(concurrent_entries_per_market=5, lock_wait_ms=0)
    await put_features(redis, **RULE_FEATURES)
    await s3.decide(BTC)
    dup = await s3.decide(BTC)
    assert dup["reason"] == "DUPLICATE_DECISION"
    await redis.set(keys.lock_pos("BTCUSDT"), "someone-else", px=3000)
    busy = await s3.decide(BTC)
    assert busy["reason"] == "LOCK_BUSY"
    for body in (dup, busy):
        out = await replay(s3, body["signal_id"])
        assert out["identical"] is True, out["differences"]


async def test_replay_with_unknown_signal_returns_404(make_s3: Factory) -> None:
    s3 = await make_s3()
    assert "not found" in (await replay(s3, "nope", status=404))["detail"]


async def test_replay_after_its_config_is_gone_returns_409_naming_it(
    make_s3: Factory, redis: RedisClient, tmp_path: Path
) -> None:
    store = SqliteStore(tmp_path / "shared.sqlite3")
    try:
        first = await make_s3(store=store)
        await put_features(redis, **RULE_FEATURES)
        body = await first.decide(DRY)
        old_ctx = body["ctx_rev"]
        # An operator promotes another bundle, S3 restarts, and the old context is purged.
        await publish_bundle(store, "next", fixture_params(tp_net_profit_pct=0.2))
        second = await make_s3(store=store)
        assert second.c.service.engine.ctx_rev != old_ctx
        assert await store.delete("config_bundles", CTX_PREFIX + old_ctx)
        out = await replay(second, body["signal_id"], status=409)
        assert out["missing"] == [f"decision context config_bundles/s3ctx-{old_ctx} (deleted?)"]
        # A decision made under the new config still replays.
        again = await second.decide(DRY)
        assert (await replay(second, again["signal_id"]))["identical"] is True
    finally:
        await store.close()


async def test_replay_after_restart_rebuilds_the_engine_from_the_stored_context(
    make_s3: Factory, redis: RedisClient, tmp_path: Path
) -> None:
    store = SqliteStore(tmp_path / "shared.sqlite3")
    try:
        first = await make_s3(store=store)
        await put_features(redis, **RULE_FEATURES)
        body = await first.decide(DRY)
        await publish_bundle(store, "next", fixture_params(tp_net_profit_pct=0.3))
        second = await make_s3(store=store)  # decides with another rev now
        out = await replay(second, body["signal_id"])
        assert out["identical"] is True and out["config_rev"] == body["config_rev"]
        assert second.c.service.engine.config_rev != body["config_rev"]
    finally:
        await store.close()


# ---- entries in flight ------------------------------------------------------------------------
async def test_decide_live_with_entry_in_flight_skips_until_s4_reports_it_done(
    make_s3: Factory, redis: RedisClient
) -> None:
    s3 = await make_s3()
    await put_features(redis, **RULE_FEATURES)
    first = await s3.decide(BTC)
    assert first["decision"] == "open" and first["publish"]["stream"] == "ok"
    coid = first["intent"]["client_order_id"]
    assert coid in await redis.hgetall(ENTRIES_KEY)
    await put_features(redis, **RULE_FEATURES)  # new snapshot ⇒ a new decision, not a retry
    second = await s3.decide(BTC)
    assert second["reason"] == "CONCURRENT_ENTRIES"
    assert second["gates"][-1] == {
        "gate": "concurrent_entries",
        "passed": False,
        "observed": 1.0,
        "threshold": 1.0,
    }
    dry = await s3.decide(DRY)  # what-ifs see the same state
    assert dry["reason"] == "CONCURRENT_ENTRIES"
    # S4 reports the order filled (stream); every S3 replica drops it from the ledger.
    await redis.xadd(
        keys.ORDERS_EXECUTED,
        {
            "data": jsonutil.dumps(
                {"event": "ORDER_EXECUTED", "client_order_id": coid, "status": "FILLED"}
            )
        },
    )

    async def cleared() -> bool:
        return coid not in await redis.hgetall(ENTRIES_KEY)

    await wait_for(cleared)
    await put_features(redis, **RULE_FEATURES)
    assert (await s3.decide(BTC))["decision"] == "open"


async def test_decide_live_with_other_symbols_in_flight_counts_them_in_risk_budget(
    make_s3: Factory, redis: RedisClient
) -> None:
    params = fixture_params(risk={"budget": {"max_margin_in_flight_usdt": 100}})
    s3 = await make_s3(params=params)
    await redis.hset(ENTRIES_KEY, "s3-eth-1-x", encode("ETHUSDT", "FUT", "80", 10**13))
    await put_features(redis, **RULE_FEATURES)
    body = await s3.decide(DRY)
    assert body["reason"] == "RISK_BUDGET"
    assert body["gates"][-1]["observed"] == 110.0  # 80 in flight + 30 (20 × clamp max 1.5)


async def test_ledger_reconcile_with_s4_state_drops_finished_and_stale_and_adopts_open(
    redis: RedisClient, sqlite_store: SqliteStore
) -> None:
    clock = ManualClock(start_ms=1_700_000_000_000)
    ledger = EntriesLedger(
        redis=redis,
        store=sqlite_store,
        clock=clock,
        symbols=["BTCUSDT"],
        grace_ms=60_000,
        reconcile_ms=1000,
    )
    now = clock.now_ms()

    def order(coid: str, status: str, **over: Any) -> Doc:
        return {
            "_key": coid,
            "client_order_id": coid,
            "parent_client_order_id": None,
            "symbol": "BTCUSDT",
            "market": "FUT",
            "status": status,
            "qty": "0.006",
            "intent": {"ref_price": "65000", "leverage": 20},
            "created_ts": now,
            **over,
        }

    await sqlite_store.insert("orders", order("filled", "FILLED"))
    await sqlite_store.insert("orders", order("manual", "ACCEPTED"))
    await sqlite_store.insert("orders", order("child", "ACCEPTED", parent_client_order_id="p"))
    await sqlite_store.insert("orders", order("close", "ACCEPTED", reduce_only=True))
    await redis.hset(
        ENTRIES_KEY,
        mapping={
            "filled": encode("BTCUSDT", "FUT", 19.5, now),
            "young": encode("BTCUSDT", "FUT", 19.5, now - 1000),  # S4 has not taken it yet
            "lost": encode("BTCUSDT", "FUT", 19.5, now - 61_000),  # S4 never recorded it
        },
    )
    assert await ledger.reconcile() == (2, 1)
    left = await ledger.snapshot()
    assert set(left) == {"young", "manual"}
    assert left["manual"].startswith("BTCUSDT|FUT|19.5|")  # 0.006 × 65000 / 20


async def test_decide_live_with_signal_write_failing_undoes_claim_and_returns_503(
    make_s3: Factory, redis: RedisClient, tmp_path: Path
) -> None:
    class FailingSignals(SqliteStore):
        async def insert(self, collection: str, doc: Doc) -> str:
            if collection == "signals":
                raise StoreUnavailable("signals: disk full")
            return await super().insert(collection, doc)

        async def insert_many(self, collection: str, docs: Sequence[Doc]) -> list[str | StoreError]:
            if collection == "signals":  # the group commit S3 writes signals with
                raise StoreUnavailable("signals: disk full")
            return await super().insert_many(collection, docs)

    store = FailingSignals(tmp_path / "failing.sqlite3")
    try:
        s3 = await make_s3(store=store)
        await put_features(redis, **RULE_FEATURES)
        r = await s3.client.post("/decide", json=BTC)
        assert r.status_code == 503 and "disk full" in r.json()["detail"]
        assert await redis.xlen(keys.ORDERS_INTENT) == 0  # never emitted unpersisted
        assert await redis.hlen(ENTRIES_KEY) == 0
        assert not await redis.keys("idem:order:*")
        assert not await redis.exists(keys.lock_pos("BTCUSDT"))
    finally:
        await store.close()


# ---- lock -------------------------------------------------------------------------------------
async def test_decide_live_with_lock_held_elsewhere_skips_lock_busy_and_persists(
    make_s3: Factory, redis: RedisClient
) -> None:
    s3 = await make_s3(lock_wait_ms=20)
    await put_features(redis, **RULE_FEATURES)
    await redis.set(keys.lock_pos("BTCUSDT"), "s3:other-replica", px=3000)
    body = await s3.decide(BTC)
    assert (body["decision"], body["reason"]) == ("skip", "LOCK_BUSY")
    assert await s3.store.get("signals", body["signal_id"]) is not None
    assert await redis.xlen(keys.ORDERS_INTENT) == 0
    assert await redis.get(keys.lock_pos("BTCUSDT")) == "s3:other-replica"  # not ours to free


async def test_decide_live_with_lock_free_releases_it_after_the_decision(
    make_s3: Factory, redis: RedisClient
) -> None:
    s3 = await make_s3()
    await put_features(redis, **RULE_FEATURES)
    await s3.decide(BTC)
    assert not await redis.exists(keys.lock_pos("BTCUSDT"))


# ---- ML ---------------------------------------------------------------------------------------
class SlowScorer(Scorer):
    model_version = "slow-1"

    async def score(self, symbol: str, features: Mapping[str, float]) -> float:
        await asyncio.sleep(0.05)
        return 0.99


class BrokenScorer(Scorer):
    model_version = "broken-2"

    async def score(self, symbol: str, features: Mapping[str, float]) -> float:
        raise RuntimeError("model server 500")


class NonsenseScorer(Scorer):
    model_version = "nonsense-3"

    async def score(self, symbol: str, features: Mapping[str, float]) -> float:
        return 7.0


@pytest.mark.parametrize(
    ("scorer", "error"),
    [
        (SlowScorer(), "timeout after 2.0 ms"),
        (BrokenScorer(), "RuntimeError: model server 500"),
        (NonsenseScorer(), "invalid score 7.0"),
    ],
)
async def test_decide_with_scorer_failing_applies_fallback_and_says_so(
    make_s3: Factory, redis: RedisClient, scorer: Scorer, error: str
) -> None:
    s3 = await make_s3(scorer=scorer)
    await put_features(redis, **RULE_FEATURES)
    body = await s3.decide(BTC)
    assert body["decision"] == "open"
    assert body["ml"] == {
        "p": None,
        "model_version": scorer.model_version,
        "fallback": True,
        "error": error,
        "size_mult": 1.0,
    }
    assert [a["kind"] for a in await alerts(redis)] == ["ML_FALLBACK"]
    assert (await replay(s3, body["signal_id"]))["identical"] is True


async def test_decide_with_scorer_failing_and_skip_fallback_skips_ml_unavailable(
    make_s3: Factory, redis: RedisClient
) -> None:
    params = fixture_params(ml={"deadline_ms": 2, "fallback": "skip"})
    s3 = await make_s3(scorer=SlowScorer(), params=params)
    await put_features(redis, **RULE_FEATURES)
    body = await s3.decide(DRY)
    assert body["reason"] == "ML_UNAVAILABLE" and body["ml"]["fallback"] is True


# ---- alerts -----------------------------------------------------------------------------------
async def test_decide_live_with_no_rules_for_symbol_skips_and_alerts_once(
    make_s3: Factory, redis: RedisClient
) -> None:
    s3 = await make_s3(params=fixture_params(), rule_ids=["R-002", "R-030"])  # no BTC rule
    await put_features(redis, **RULE_FEATURES)
    for _ in range(3):
        body = await s3.decide(BTC)
        assert body["reason"] == "NO_RULES"
    assert [(a["kind"], a["severity"]) for a in await alerts(redis)] == [("NO_RULES", "critical")]
    health = (await s3.client.get("/health")).json()
    assert health["rules_loaded"] == 2


async def test_decide_live_with_factor_missing_skips_and_alerts(
    make_s3: Factory, redis: RedisClient
) -> None:
    s3 = await make_s3()
    await put_features(redis)  # no rho_usdttwd_14, no rv_1h
    body = await s3.decide(BTC)
    assert body["reason"] == "FEATURE_MISSING"
    assert "R-011" in body["message"] and "R-023" in body["message"]
    [alert] = await alerts(redis)
    assert alert["kind"] == "FEATURE_MISSING" and alert["data"]["symbol"] == "BTCUSDT"


async def test_decide_live_with_rest_path_down_reports_and_alerts_every_time(
    make_s3: Factory, redis: RedisClient
) -> None:
    http = httpx.AsyncClient(base_url="http://127.0.0.1:9", timeout=0.2)
    s3 = await make_s3(http=http, publish_retries=1, concurrent_entries_per_market=5)
    for _ in range(2):
        await put_features(redis, **RULE_FEATURES)
        body = await s3.decide(BTC)
        assert body["publish"]["stream"] == "ok" and body["publish"]["rest"] == "failed"
        await asyncio.sleep(0.002)  # next snapshot ts
    kinds = [a["kind"] for a in await alerts(redis)]
    assert kinds == ["PUBLISH_DEGRADED", "PUBLISH_DEGRADED"]  # never rate-limited
    signal = await s3.store.get("signals", body["signal_id"])
    assert signal is not None and signal["publish"]["rest"] == "failed"
    metrics = (await s3.client.get("/metrics")).text
    assert 's3_publish_failures_total{path="rest"} 2.0' in metrics


async def test_decide_live_with_both_paths_down_alerts_critical_and_counts_it_undelivered(
    make_s3: Factory, redis: RedisClient
) -> None:
    # Only an intent neither path delivered pages (StrategyPublishUndelivered); one path down
    # while the other delivers is degraded (a warning), as above.
    http = httpx.AsyncClient(base_url="http://127.0.0.1:9", timeout=0.2)
    s3 = await make_s3(http=http, publish_retries=1)
    await redis.set(keys.ORDERS_INTENT, "not a stream")  # every XADD fails: WRONGTYPE
    await put_features(redis, **RULE_FEATURES)
    body = await s3.decide(BTC)
    assert body["publish"]["stream"] == "failed" and body["publish"]["rest"] == "failed"
    assert [(a["kind"], a["severity"]) for a in await alerts(redis)] == [
        ("PUBLISH_FAILED", "critical")
    ]
    metrics = (await s3.client.get("/metrics")).text
    assert "s3_publish_undelivered_total 1.0" in metrics
    assert 's3_publish_failures_total{path="stream"} 1.0' in metrics


# ---- batch, health, metrics -------------------------------------------------------------------
async def test_decide_batch_with_mixed_items_answers_each_in_order(
    make_s3: Factory, redis: RedisClient
) -> None:
    s3 = await make_s3()
    await put_features(redis, **RULE_FEATURES)
    r = await s3.client.post(
        "/decide/batch",
        json={
            "items": [
                DRY,
                {"symbol": "DOGEUSDT", "dry_run": True},
                {"symbol": "ETHUSDT", "dry_run": True},
                {**DRY, "context": {"market": "SPOT"}},
            ]
        },
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["count"] == 4
    btc, doge, eth, spot = body["results"]
    assert btc["decision"] == "open"
    assert doge == {"symbol": "DOGEUSDT", "status": 422, "error": "unknown symbol 'DOGEUSDT'"}
    assert eth["reason"] == "FEATURE_MISSING"  # no ETH snapshot in Redis
    assert spot["intent"]["exec_policy"]["type"] == "OCO"


async def test_decide_batch_with_symbols_shape_applies_shared_fields(
    make_s3: Factory, redis: RedisClient
) -> None:
    s3 = await make_s3()
    await put_features(redis, **RULE_FEATURES)
    r = await s3.client.post(
        "/decide/batch", json={"symbols": ["btcusdt", "ETHUSDT"], "dry_run": True}
    )
    results = r.json()["results"]
    assert [x.get("dry_run") for x in results] == [True, True]
    assert await redis.xlen(keys.ORDERS_INTENT) == 0


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({}, "exactly one of"),
        ({"items": [DRY], "symbols": ["BTCUSDT"]}, "exactly one of"),
        ({"items": []}, "items"),
        ({"symbols": ["BTCUSDT"] * 4}, "at most 3"),
    ],
)
async def test_decide_batch_with_bad_shape_returns_422(
    make_s3: Factory, body: dict[str, Any], needle: str
) -> None:
    s3 = await make_s3(batch_max=3)
    r = await s3.client.post("/decide/batch", json=body)
    assert r.status_code == 422 and needle in r.text


async def test_health_with_running_service_reports_config_rules_and_model(
    make_s3: Factory,
) -> None:
    s3 = await make_s3()
    h = (await s3.client.get("/health")).json()
    engine = s3.c.service.engine
    assert h["status"] == "ok" and h["redis"] and h["store"]["ok"]
    assert (h["config_rev"], h["ctx_rev"], h["bundle_id"]) == (
        engine.config_rev,
        engine.ctx_rev,
        "default",
    )
    assert h["rules_loaded"] == 6 and h["ml_model_version"] == "mock-const-0.65"
    assert h["entries_in_flight"] == 0


async def test_metrics_after_decisions_expose_rules_fired_gate_skips_and_latency(
    make_s3: Factory, redis: RedisClient
) -> None:
    s3 = await make_s3()
    await put_features(redis, **{**RULE_FEATURES, "rv_1h": 0.05})  # R-011 fires
    await s3.decide(DRY)
    await put_features(redis, spread_bps=9.0, **RULE_FEATURES)
    await s3.decide(DRY)
    m = (await s3.client.get("/metrics")).text
    assert 's3_rules_fired_total{rule_id="R-011"} 1.0' in m
    assert 's3_gate_skips_total{reason="SPREAD_TOO_WIDE"} 1.0' in m
    assert 's3_decisions_total{decision="open",reason="OK"} 1.0' in m
    assert 's3_decide_latency_seconds_count{dry_run="true"} 2.0' in m
    assert "s3_pipeline_latency_seconds_bucket" in m and "s3_rules_loaded 6.0" in m


# ---- config by rev ----------------------------------------------------------------------------
async def test_bootstrap_with_bundle_doc_edited_in_place_keeps_the_active_revision(
    make_s3: Factory, redis: RedisClient, tmp_path: Path
) -> None:
    store = SqliteStore(tmp_path / "shared.sqlite3")
    try:
        first = await make_s3(store=store)
        rev = first.c.service.engine.config_rev
        # Someone overwrites the bundle document without promoting its new rev.
        doc = await store.get("config_bundles", "default")
        assert doc is not None
        edited = {**doc, "rev": "edited", "params": fixture_params(ml_table=[])}
        await store.upsert("config_bundles", "default", edited)
        second = await make_s3(store=store, seed=False)
        # The active revision is stored immutable (config_bundles/bundle-{rev}): an in-place
        # edit of the legacy bundle document neither changes what S3 decides with nor alerts.
        assert second.c.service.engine.config_rev == rev
        assert second.c.service.engine.content == first.c.service.engine.content
        assert await alerts(redis) == []
    finally:
        await store.close()


async def test_bootstrap_with_active_rev_content_gone_refuses_to_start(
    redis: RedisClient, redis_addresses: list[str], tmp_path: Path
) -> None:
    store = SqliteStore(tmp_path / "s.sqlite3")
    try:
        from svckit.store.seed import seed_store

        await seed_store(store, FIXTURES)
        await store.upsert(
            "config_active", "s3-strategy", {"bundle_id": "default", "rev": "000000000000"}
        )
        settings = Settings(
            redis_addresses=redis_addresses, data_dir=tmp_path, fixtures_dir=FIXTURES, s4_url=None
        )
        with pytest.raises(StartupError, match="default@000000000000 is gone"):
            await bootstrap(settings, redis=redis, store=store)
    finally:
        await store.close()


async def test_bootstrap_with_rule_edited_in_place_keeps_the_promoted_revision(
    redis: RedisClient, redis_addresses: list[str], tmp_path: Path
) -> None:
    store = SqliteStore(tmp_path / "s.sqlite3")
    try:
        from svckit.store.seed import seed_store

        report = await seed_store(store, FIXTURES)
        rule = await store.get("strategy_rules", "R-023")
        assert rule is not None
        await store.upsert("strategy_rules", "R-023", {**rule, "priority": 1})
        settings = Settings(
            redis_addresses=redis_addresses, data_dir=tmp_path, fixtures_dir=FIXTURES, s4_url=None
        )
        c = await bootstrap(settings, redis=redis, store=store, seed=False)
        try:
            assert c.service.engine.config_rev == report.bundle_rev
            [r023] = [
                r for r in c.service.engine.content["bundle"]["rules"] if r["rule_id"] == "R-023"
            ]
            assert r023["priority"] == 50  # what was promoted, not the in-place edit
        finally:
            await c.aclose()
    finally:
        await store.close()


async def test_decide_with_no_feature_snapshot_falls_back_to_the_tick(
    make_s3: Factory, redis: RedisClient
) -> None:
    from tests.helpers import now_ms

    s3 = await make_s3()
    tick = {
        "symbol": "BTCUSDT",
        "ts": now_ms(),
        "bid": "65000",
        "ask": "65001",
        "bid_qty": "1",
        "ask_qty": "2",
    }
    await redis.set(keys.mkt_tick("BTCUSDT"), jsonutil.dumps(tick))
    body = await s3.decide(DRY)
    assert body["reason"] == "FEATURE_MISSING"  # the tick has no ATR, funding, MAs…
    signal = await s3.store.get("signals", body["signal_id"])
    assert signal is not None and signal["feature_sources"] == ["mkt:tick"]
    assert signal["features"]["mid"] == 65000.5 and signal["features"]["ts"] == tick["ts"]


async def test_bootstrap_with_other_active_rev_in_redis_does_not_alert_at_boot(
    make_s3: Factory, redis: RedisClient
) -> None:
    # The config watcher alerts CONFIG_REV_MISMATCH only when the disagreement outlasts two poll
    # periods (tests/integration/test_s3_config_reload.py); boot alone never does.
    await redis.set(keys.CFG_ACTIVE_REV, "someone-elses-rev")
    s3 = await make_s3(config_poll_sec=5)  # two fast polls could pass on a loaded machine
    assert await alerts(redis) == []
    assert s3.c.service.engine.config_rev != "someone-elses-rev"

"""Hot-reloaded configuration (issue 13): admin API, activation, watcher, RCU swap, rollback,
audit, alerts — two S3 replicas (in-process apps) on one real Redis and one SQLite store."""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from s3_strategy.bootstrap import S3Container, bootstrap
from s3_strategy.config import Settings
from s3_strategy.domain.ml import Scorer
from s3_strategy.entrypoints.api import create_app
from svckit import jsonutil, keys
from svckit.redisio import RedisClient
from svckit.store.sqlite import SqliteStore
from tests.conftest import FIXTURES
from tests.helpers import S3_ADMIN_TOKEN, S3_AUTH, S3_TOKEN, publish_bundle, put_features

# Every test that uses Redis runs on a single node and on a 3-master Redis Cluster (conftest).
pytestmark = pytest.mark.redis_modes

TOKEN = S3_ADMIN_TOKEN
AUTH = {"Authorization": f"Bearer {TOKEN}", "X-Actor": "alice"}
RULE_FEATURES = {"rho_usdttwd_14": 0.1, "rv_1h": 0.01}
DRY = {"symbol": "BTCUSDT", "dry_run": True}
POLL_S = 0.2


@dataclass
class Replica:
    client: httpx.AsyncClient
    c: S3Container

    async def rev(self) -> str:
        return str((await self.client.get("/health")).json()["config_rev"])


Factory = Callable[..., Awaitable[Replica]]


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    s = SqliteStore(tmp_path / "shared.sqlite3")
    yield s
    await s.close()


@pytest.fixture
async def replica(
    redis: RedisClient, redis_addresses: list[str], tmp_path: Path, store: SqliteStore
) -> AsyncIterator[Factory]:
    async with AsyncExitStack() as stack:

        async def start(*, scorer: Scorer | None = None, seed: bool = True, **over: Any) -> Replica:
            cfg = Settings(
                **{
                    "redis_addresses": redis_addresses,
                    "data_dir": tmp_path,
                    "fixtures_dir": FIXTURES,
                    "s4_url": None,
                    "config_poll_sec": POLL_S,
                    "admin_token": TOKEN,
                    **over,
                }
            )
            c = await bootstrap(cfg, redis=redis, store=store, scorer=scorer, seed=seed)
            app = create_app(cfg, container=c)
            await stack.enter_async_context(app.router.lifespan_context(app))
            client = await stack.enter_async_context(
                httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=app), base_url="http://s3", headers=S3_AUTH
                )
            )
            return Replica(client, c)

        yield start


async def eventually(pred: Callable[[], Awaitable[bool]], within_s: float = 3.0) -> None:
    async with asyncio.timeout(within_s):
        while not await pred():  # noqa: ASYNC110 - polls HTTP/Redis
            await asyncio.sleep(0.02)


async def alerts(redis: RedisClient, kind: str | None = None) -> list[dict[str, Any]]:
    rows = [jsonutil.loads(e[1]["data"]) for e in await redis.xrange(keys.ALERTS)]
    return [a for a in rows if kind is None or a["kind"] == kind]


async def active_bundle(r: Replica) -> dict[str, Any]:
    body = (await r.client.get("/config", headers=AUTH)).json()
    return dict(body["bundle"])


def edited(bundle: Mapping[str, Any], **params: Any) -> dict[str, Any]:
    """The bundle with R-001's threshold moved and `params` merged in (a new revision)."""
    out = copy.deepcopy({"params": bundle["params"], "rules": bundle["rules"]})
    for rule in out["rules"]:
        if rule["rule_id"] == "R-001":
            rule["when"]["allOf"][0]["v"] = 2.0
    out["params"].update(params)
    return out


async def upload(r: Replica, body: Mapping[str, Any]) -> httpx.Response:
    return await r.client.post("/config/bundles", json=body, headers=AUTH)


async def activate(r: Replica, rev: str) -> httpx.Response:
    return await r.client.post("/config/activate", json={"rev": rev}, headers=AUTH)


# ---- the contract -----------------------------------------------------------------------------
async def test_get_config_returns_active_rev_and_full_bundle(replica: Factory) -> None:
    r = await replica()
    body = (await r.client.get("/config", headers=AUTH)).json()
    assert body["active_rev"] == r.c.service.engine.config_rev
    assert set(body) == {"active_rev", "previous_rev", "activated_at", "activated_by", "bundle"}
    bundle = body["bundle"]
    assert bundle["rev"] == body["active_rev"] and bundle["bundle_id"] == "default"
    assert {x["rule_id"] for x in bundle["rules"]} >= {"R-001", "R-023"}
    assert bundle["rules"][0]["when"]  # full rule documents, not ids


async def test_admin_routes_without_token_401_api_token_403(replica: Factory) -> None:
    r = await replica()
    assert (await r.client.get("/config", headers={"Authorization": ""})).status_code == 401
    assert (
        await r.client.get("/config", headers={"Authorization": "Bearer nope"})
    ).status_code == 401
    api = {"Authorization": f"Bearer {S3_TOKEN}"}  # trades, but is no admin
    assert (await r.client.get("/config", headers=api)).status_code == 403
    assert (await r.client.post("/config/rollback", headers=api)).status_code == 403
    assert (await r.client.get("/health")).status_code == 200  # health stays open


async def test_upload_returns_201_rev_lint_and_semantic_diff_same_content_200(
    replica: Factory,
) -> None:
    r = await replica()
    current = await active_bundle(r)
    body = {**edited(current, tp_net_profit_pct=0.12), "note": "tighter R-001"}
    first = await upload(r, body)
    assert first.status_code == 201, first.text
    out = first.json()
    assert out["lint"]["ok"] is True and isinstance(out["lint"]["warnings"], list)
    diff = out["diff"]
    assert diff["from_rev"] == current["rev"] and diff["to_rev"] == out["rev"]
    assert diff["rules"]["added"] == [] and diff["rules"]["removed"] == []
    assert diff["rules"]["changed"] == [
        {"rule_id": "R-001", "fields": [{"path": "when.allOf[0].v", "old": 2.5, "new": 2.0}]}
    ]
    assert diff["params"] == [{"path": "tp_net_profit_pct", "old": 0.1, "new": 0.12}]
    again = await upload(r, {**body, "rules": list(reversed(body["rules"]))})
    assert again.status_code == 200 and again.json()["rev"] == out["rev"]
    stored = (await r.client.get(f"/config/bundles/{out['rev']}", headers=AUTH)).json()
    assert stored["rev"] == out["rev"] and stored["note"] == "tighter R-001"
    assert stored["created_by"] == "api:alice"


async def test_upload_hashes_its_bundle_once(
    replica: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Canonical JSON + sha256 of a 200-rule bundle costs about what its whole lint does: an
    # upload computes the bundle's rev once (the store write and the diff reuse it), its decision
    # context's once, and verifies the active bundle it is diffed against.
    from s3_strategy.adapters import configstore
    from svckit.store import content_rev as real

    r = await replica()
    current = await active_bundle(r)
    hashed: list[str] = []

    def counting(value: Any, length: int = 12) -> str:
        hashed.append("context" if "bundle" in value else "bundle")
        return real(value, length)

    monkeypatch.setattr(configstore, "content_rev", counting)
    res = await upload(r, edited(current, tp_net_profit_pct=0.12))
    assert res.status_code == 201, res.text
    assert sorted(hashed) == ["bundle", "bundle", "context"]
    assert res.json()["diff"]["summary"]["rules_changed"] == 1


async def test_upload_failing_lint_422_lists_paths_and_stores_nothing(
    replica: Factory, store: SqliteStore
) -> None:
    r = await replica()
    current = await active_bundle(r)
    bad = edited(current)
    bad["rules"][0]["when"] = {"allOf": [{"f": "no_such_factor", "op": "<", "v": 1}]}
    bad["params"]["ml"] = {"deadline_ms": -5}
    before = await store.count("config_bundles")
    resp = await upload(r, bad)
    assert resp.status_code == 422, resp.text
    errors = resp.json()["errors"]
    paths = [e["path"] for e in errors]
    assert "params.ml.deadline_ms" in paths and "rules[0].when.allOf[0]" in paths, errors
    assert any("no_such_factor" in e["message"] for e in errors)
    bad["rules"][0]["when"] = {"allOf": [{"f": "spread_bps", "op": ">", "v": 1}]}
    resp = await upload(r, bad)
    assert resp.status_code == 422
    assert [e["path"] for e in resp.json()["errors"]] == ["params.ml.deadline_ms"]
    assert await store.count("config_bundles") == before


async def test_activate_unknown_rev_404_and_rollback_without_previous_409(
    replica: Factory,
) -> None:
    r = await replica()
    assert (await activate(r, "0123456789ab")).status_code == 404
    assert (await r.client.post("/config/rollback", headers=AUTH)).status_code == 409


# ---- activation reaches every replica ---------------------------------------------------------
async def test_activation_swaps_both_replicas_and_decisions_carry_new_rev(
    replica: Factory, redis: RedisClient
) -> None:
    a, b = await replica(), await replica(seed=False)
    old = a.c.service.engine.config_rev
    rev = (await upload(a, edited(await active_bundle(a)))).json()["rev"]
    resp = await activate(a, rev)
    assert resp.status_code == 200 and resp.json() == {"active_rev": rev, "previous_rev": old}
    await eventually(lambda: _rev_is(a, rev))
    await eventually(lambda: _rev_is(b, rev))
    assert await redis.get(keys.CFG_ACTIVE_REV) == rev
    events: Any = await redis.xrange(keys.CFG_EVENTS)
    [(_, fields)] = events
    event = json.loads(fields["data"])
    assert (event["rev"], event["previous_rev"], event["actor"]) == (rev, old, "api:alice")
    await put_features(redis, **RULE_FEATURES)
    decided = (await b.client.post("/decide", json=DRY)).json()
    assert decided["config_rev"] == rev
    signal = await b.c.store.get("signals", decided["signal_id"])
    assert signal is not None and signal["config_rev"] == rev
    health = (await b.client.get("/health")).json()
    assert health["config"]["state"] == "current" and health["config"]["target_rev"] == rev


async def _rev_is(r: Replica, rev: str) -> bool:
    return await r.rev() == rev


async def test_bundle_promoted_in_store_plus_event_reaches_health_without_restart(
    replica: Factory, redis: RedisClient, store: SqliteStore
) -> None:
    """The issue's reproduction: publish_bundle + an event on cfg:events left /health old."""
    r = await replica(config_poll_sec=60)  # only the event can wake it within the test
    params = (await active_bundle(r))["params"] | {"tp_net_profit_pct": 0.2}
    rev = await publish_bundle(store, "default", params)
    await redis.set(keys.CFG_ACTIVE_REV, rev)
    await redis.xadd(keys.CFG_EVENTS, {"data": jsonutil.dumps({"rev": rev})})
    await eventually(lambda: _rev_is(r, rev), within_s=2.5)


async def test_rollback_restores_previous_and_history_audits_both(replica: Factory) -> None:
    r = await replica()
    old = r.c.service.engine.config_rev
    rev = (await upload(r, edited(await active_bundle(r)))).json()["rev"]
    await activate(r, rev)
    resp = await r.client.post("/config/rollback", headers=AUTH)
    assert resp.status_code == 200 and resp.json() == {"active_rev": old, "previous_rev": rev}
    await eventually(lambda: _rev_is(r, old))
    items = (await r.client.get("/config/history", headers=AUTH)).json()["items"]
    assert [(i["action"], i["rev"], i["previous_rev"]) for i in items] == [
        ("rollback", old, rev),
        ("activate", rev, old),
    ]
    assert all(i["actor"] == "api:alice" and i["ts"] > 0 for i in items)
    assert items[1]["diff_summary"]["rules_changed"] == 1
    shown = (await r.client.get("/config", headers=AUTH)).json()
    assert (shown["active_rev"], shown["previous_rev"], shown["activated_by"]) == (
        old,
        rev,
        "api:alice",
    )
    diff = (await r.client.get(f"/config/diff?from={old}&to={rev}", headers=AUTH)).json()
    assert diff["rules"]["changed"][0]["rule_id"] == "R-001"


# ---- RCU: a decision in flight keeps its revision ---------------------------------------------
class GatedScorer(Scorer):
    model_version = "gated"

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.release = asyncio.Event()
        self.gate = False

    async def score(self, symbol: str, features: Mapping[str, float]) -> float:
        if self.gate:
            self.entered.set()
            await self.release.wait()
        return 0.65


async def test_decision_in_flight_finishes_on_its_revision_next_uses_new(
    replica: Factory, redis: RedisClient
) -> None:
    scorer = GatedScorer()
    r = await replica(scorer=scorer)
    slow = edited(await active_bundle(r))
    slow["params"]["ml"] = {"deadline_ms": 1000, "fallback": "size_mult"}
    first = (await upload(r, slow)).json()["rev"]
    await activate(r, first)
    await eventually(lambda: _rev_is(r, first))
    newer = copy.deepcopy(slow)
    newer["params"]["tp_net_profit_pct"] = 0.15
    second = (await upload(r, newer)).json()["rev"]
    await put_features(redis, **RULE_FEATURES)
    scorer.gate = True
    in_flight = asyncio.create_task(r.client.post("/decide", json=DRY))
    await asyncio.wait_for(scorer.entered.wait(), 2)
    await activate(r, second)
    await eventually(lambda: _rev_is(r, second))
    scorer.release.set()
    body = (await in_flight).json()
    assert body["decision"] == "open" and body["config_rev"] == first
    assert body["intent"]["config_rev"] == first
    signal = await r.c.store.get("signals", body["signal_id"])
    assert signal is not None and signal["config_rev"] == first
    scorer.gate = False
    assert (await r.client.post("/decide", json=DRY)).json()["config_rev"] == second


# ---- failures: last good kept, lagging, alerts ------------------------------------------------
async def test_unloadable_active_rev_keeps_last_good_shows_lagging_and_alerts_once(
    replica: Factory, redis: RedisClient, store: SqliteStore
) -> None:
    r = await replica()
    good = r.c.service.engine.config_rev
    rev = (await upload(r, edited(await active_bundle(r)))).json()["rev"]
    # The bundle stops linting after upload: a factor it uses leaves the whitelist.
    await store.delete("factor_registry", "spread_bps")
    await store.upsert("config_active", "s3-strategy", {"bundle_id": "default", "rev": rev})
    await redis.xadd(keys.CFG_EVENTS, {"data": jsonutil.dumps({"rev": rev})})

    async def lagging() -> bool:
        return bool((await r.client.get("/health")).json()["config"]["state"] == "lagging")

    await eventually(lagging)
    await asyncio.sleep(3 * POLL_S)  # more polls: still one alert for this revision
    health = (await r.client.get("/health")).json()
    assert health["config_rev"] == good and health["status"] == "ok"
    assert health["config"]["target_rev"] == rev and "spread_bps" in health["config"]["error"]
    [alert] = await alerts(redis, "CONFIG_RELOAD_FAILED")
    assert alert["severity"] == "critical" and rev in alert["message"]
    await put_features(redis, **RULE_FEATURES)
    assert (await r.client.post("/decide", json=DRY)).json()["config_rev"] == good
    assert "s3_config_lagging 1.0" in (await r.client.get("/metrics")).text


async def test_bogus_cfg_active_rev_at_run_time_alerts_mismatch_after_two_polls(
    replica: Factory, redis: RedisClient
) -> None:
    r = await replica()
    await redis.set(keys.CFG_ACTIVE_REV, "bogus0000000")
    await asyncio.sleep(POLL_S)
    assert await alerts(redis, "CONFIG_REV_MISMATCH") == []  # not within two poll periods
    await eventually(lambda: _has_alert(redis, "CONFIG_REV_MISMATCH"), within_s=3)
    [alert] = await alerts(redis, "CONFIG_REV_MISMATCH")
    assert "bogus0000000" in alert["message"] and alert["severity"] == "critical"
    assert await r.rev() != "bogus0000000"


async def _has_alert(redis: RedisClient, kind: str) -> bool:
    return bool(await alerts(redis, kind))


async def test_restart_after_legitimate_promotion_raises_no_mismatch_and_keeps_rev(
    replica: Factory, redis: RedisClient, store: SqliteStore
) -> None:
    a = await replica()
    rev = (await upload(a, edited(await active_bundle(a)))).json()["rev"]
    await activate(a, rev)
    edited_rule = await store.get("strategy_rules", "R-023")
    assert edited_rule is not None
    await store.upsert("strategy_rules", "R-023", {**edited_rule, "priority": 7})
    # A restart (Redis persistent, fixtures seeded again) must not bring the fixtures back.
    b = await replica(seed=True)
    assert b.c.service.engine.config_rev == rev
    await asyncio.sleep(4 * POLL_S)
    assert await alerts(redis, "CONFIG_REV_MISMATCH") == []
    assert await b.rev() == rev and await a.rev() == rev
    rule = await store.get("strategy_rules", "R-023")
    assert rule is not None and rule["priority"] == 7  # not overwritten by the seed


async def test_store_seeded_before_revisioned_bundles_gets_one_and_can_roll_back(
    replica: Factory, store: SqliteStore
) -> None:
    from svckit.store.seed import seed_store

    report = await seed_store(store, FIXTURES)
    # The layout before issue 13: no config_bundles/bundle-{rev}.
    assert await store.delete("config_bundles", f"bundle-{report.bundle_rev}")
    r = await replica(seed=False)
    shown = (await r.client.get("/config", headers=AUTH)).json()
    assert shown["active_rev"] == report.bundle_rev and shown["bundle"] is not None
    rev = (await upload(r, edited(shown["bundle"]))).json()["rev"]
    assert (await activate(r, rev)).status_code == 200
    back = await r.client.post("/config/rollback", headers=AUTH)
    assert back.status_code == 200 and back.json()["active_rev"] == report.bundle_rev


async def test_store_unreadable_alerts_reload_failed_once_and_keeps_serving(
    replica: Factory, redis: RedisClient, store: SqliteStore
) -> None:
    r = await replica()
    good = r.c.service.engine.config_rev
    await store.close()  # every store call now fails (StoreUnavailable)

    async def lagging() -> bool:
        return r.c.watcher.status.state == "lagging"

    await eventually(lagging)
    await asyncio.sleep(4 * POLL_S)  # more failed polls
    [alert] = await alerts(redis, "CONFIG_RELOAD_FAILED")
    assert "config_active" in alert["message"]
    assert r.c.service.engine.config_rev == good
    assert "store" in str(r.c.watcher.status.error)

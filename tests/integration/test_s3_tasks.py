"""S3's scheduler tasks over HTTP (in-process ASGI) on a real Redis and SQLite store: auth (OIDC
with keys minted here, the admin token, the header that grants nothing), replay of a scheduled
delivery, dry runs that write no order, the 15-minute job's isolated steps.

The exchange reads go through a hand-written SpotReader (the port's fake); the intent goes to
the real `orders:intent` stream (S4 is not running here: see tests/e2e/test_rebalance_e2e.py)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from s3_strategy.adapters.spot_reader import SpotBalance, SpotReader, SpotReadError, SpotTicker
from s3_strategy.bootstrap import S3Container, bootstrap
from s3_strategy.config import Settings
from s3_strategy.entrypoints.api import create_app
from s3_strategy.service_layer.task_runs import execution_id, rebalance_client_order_id
from svckit import jsonutil, keys
from svckit.redisio import RedisClient
from svckit.store.base import Query
from svckit.store.sqlite import SqliteStore
from tests.conftest import FIXTURES
from tests.helpers import S3_TEST_POLL_S
from tests.oidcmint import AUDIENCE, EMAIL, Signer, write_jwks

D = Decimal
ADMIN = "admin-secret-token-0123456789abcdef"
SYM = "/tasks/rebalance/symmetric"
JOB = "/tasks/15-min-job"


class FakeSpot(SpotReader):
    def __init__(self) -> None:
        self.bal = {"QRL": SpotBalance(D(100)), "USDT": SpotBalance(D(100))}
        self.last = D(2)
        self.reads = 0
        self.calls: list[str] = []  # the order of the reads
        self.fail_balances_from: int | None = None  # the n-th balances read (1-based) fails

    async def balances(self, assets: Sequence[str]) -> dict[str, SpotBalance]:
        self.reads += 1
        self.calls.append("balances")
        if self.fail_balances_from is not None and self.reads >= self.fail_balances_from:
            raise SpotReadError("venue answered 503")
        return {a: self.bal[a] for a in assets}

    async def ticker(self, symbol: str) -> SpotTicker:
        self.calls.append("ticker")
        return SpotTicker(self.last, self.last - D("0.0001"), self.last + D("0.0001"))

    async def closes(self, symbol: str, interval: str, limit: int) -> list[Decimal]:
        return [D("2.5") - D("0.01") * i for i in range(limit)]  # falling: death cross


@dataclass
class App:
    http: httpx.AsyncClient
    c: S3Container
    spot: FakeSpot
    signer: Signer


@pytest.fixture
async def app(redis: RedisClient, redis_addresses: list[str], tmp_path: Path) -> AsyncIterator[App]:
    signer = Signer("kid-1")
    settings = Settings(
        redis_addresses=redis_addresses,
        data_dir=tmp_path,
        fixtures_dir=FIXTURES,
        s4_url=None,
        admin_token=ADMIN,
        scheduler_audience=AUDIENCE,
        scheduler_emails=[EMAIL],
        scheduler_jwks_url=write_jwks(tmp_path / "jwks.json", signer),
        config_poll_sec=S3_TEST_POLL_S,
    )
    store = SqliteStore(tmp_path / "store.sqlite3")
    spot = FakeSpot()
    c = await bootstrap(settings, redis=redis, store=store, spot_reader=spot)
    asgi = create_app(settings, container=c)
    async with (
        asgi.router.lifespan_context(asgi),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=asgi), base_url="http://s3") as h,
    ):
        yield App(h, c, spot, signer)
    await store.close()


def bearer(token: str, **headers: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **headers}


def scheduled(token: str, when: str = "2026-12-04T19:15:00.000Z") -> dict[str, str]:
    return bearer(
        token,
        **{
            "X-CloudScheduler": "true",
            "X-CloudScheduler-JobName": "projects/p/locations/l/jobs/15-min-job",
            "X-CloudScheduler-ScheduleTime": when,
        },
    )


async def intents(redis: RedisClient) -> list[dict[str, object]]:
    return [jsonutil.loads(e[1]["data"]) for e in await redis.xrange(keys.ORDERS_INTENT)]


async def test_the_cloud_scheduler_header_alone_grants_nothing_and_has_no_side_effect(
    app: App, redis: RedisClient
) -> None:
    for path in (SYM, "/tasks/rebalance/intelligent", JOB):
        r = await app.http.post(path, headers={"X-CloudScheduler": "true"})
        assert r.status_code == 401, r.text
    r = await app.http.post(SYM, headers=scheduled("not-a-token"))
    assert r.status_code == 401
    # authentication comes before the body: a stranger learns nothing from a 422
    bad_body = await app.http.post(SYM, json={"context": {"price": -1}, "dry_run": "x"})
    assert bad_body.status_code == 401
    assert await redis.keys("task:exec:*") == []
    assert await intents(redis) == []
    assert app.spot.reads == 0  # refused before any read


@pytest.mark.parametrize(
    ("claims", "status"),
    [
        ({}, 200),
        ({"aud": "https://someone-else.example"}, 401),
        ({"iss": "https://evil.example"}, 401),
        ({"email": "intruder@example.com"}, 403),
        ({"exp": 1_700_000_000, "iat": 1_699_990_000}, 401),
    ],
)
async def test_oidc_tokens_valid_wrong_audience_issuer_email_or_expired(
    app: App, redis: RedisClient, claims: dict[str, object], status: int
) -> None:
    r = await app.http.post(SYM, headers=bearer(app.signer.token(**claims)), json={"dry_run": True})
    assert r.status_code == status, r.text
    if status == 200:
        assert r.json()["auth"] == f"oidc:{EMAIL}"
    else:
        assert await redis.keys("task:exec:*") == []


async def test_a_token_from_another_key_and_a_wrong_admin_token_are_refused(
    app: App, caplog: pytest.LogCaptureFixture
) -> None:
    forged = Signer("kid-1").token()  # known kid, unknown key
    with caplog.at_level(logging.WARNING, logger="s3_strategy.entrypoints.tasks"):
        assert (await app.http.post(SYM, headers=bearer(forged))).status_code == 401
    [refused] = [r for r in caplog.records if r.getMessage() == "task auth refused"]
    assert "Signature verification failed" in refused.__dict__["reason"]
    metrics = (await app.http.get("/metrics")).text
    denied = 's3_task_runs_total{action="none",outcome="denied",task="rebalance-symmetric"} 1.0'
    assert denied in metrics
    assert (await app.http.post(SYM, headers=bearer(ADMIN + "x"))).status_code == 401
    ok = await app.http.post(SYM, headers=bearer(ADMIN), json={"dry_run": True})
    assert ok.status_code == 200 and ok.json()["auth"] == "admin-token"


async def test_a_what_if_context_is_for_dry_runs_only(app: App, redis: RedisClient) -> None:
    ctx = {"balances": {"QRL": 100, "USDT": 100}, "price": 2}
    r = await app.http.post(SYM, headers=bearer(ADMIN), json={"context": ctx})
    assert r.status_code == 422 and "dry_run" in r.text
    assert await intents(redis) == []


async def test_dry_run_of_the_documented_case_explains_the_trade_and_writes_no_order(
    app: App, redis: RedisClient
) -> None:
    ctx = {"balances": {"QRL": "100", "USDT": "100"}, "price": "2"}
    r = await app.http.post(SYM, headers=bearer(ADMIN), json={"dry_run": True, "context": ctx})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "success" and body["task"] == "rebalance-symmetric"
    assert body["dry_run"] is True and body["orders"] == []
    plan = body["plan"]
    assert (plan["action"], D(plan["quantity"]), D(plan["notional_usdt"])) == ("SELL", 25, 50)
    assert plan["would_send"]["side"] == "SELL" and plan["would_send"]["market"] == "SPOT"
    assert body["execution_id"].startswith("manual-")
    assert await intents(redis) == []
    assert await redis.get("rebalance:plan:symmetric") is None
    assert await app.c.store.count("positions_snapshots") == 0


async def test_a_second_delivery_of_a_scheduled_run_replays_its_result_and_trades_nothing(
    app: App, redis: RedisClient
) -> None:
    first = await app.http.post(SYM, headers=scheduled(ADMIN))
    assert first.status_code == 200, first.text
    a = first.json()
    assert a["plan"]["action"] == "SELL" and D(a["plan"]["quantity"]) == 25
    assert a["replayed"] is False and len(a["orders"]) == 1
    sent = await intents(redis)
    assert [i["client_order_id"] for i in sent] == a["orders"]
    assert sent[0]["market"] == "SPOT" and sent[0]["exec_policy"]["type"] == "MAKER_TAKER"
    # Cloud Scheduler retries the same slot (a later attempt, same 15-minute window)
    again = await app.http.post(SYM, headers=scheduled(ADMIN, "2026-12-04T19:15:07.5Z"))
    assert again.status_code == 200
    b = again.json()
    assert b["replayed"] is True and b["execution_id"] == a["execution_id"]
    assert b["orders"] == a["orders"] and b["plan"] == a["plan"]
    assert len(await intents(redis)) == 1
    # a dry run of the same slot is a separate execution: it neither replays nor blocks the live
    dry = (await app.http.post(SYM, headers=scheduled(ADMIN), json={"dry_run": True})).json()
    assert dry["replayed"] is False and dry["execution_id"] == a["execution_id"] + "-dry"
    assert dry["orders"] == [] and len(await intents(redis)) == 1
    # the next window is a new execution, with a new client order id; a dry run of it first
    # does not stand in for the live run
    first_dry = await app.http.post(
        SYM, headers=scheduled(ADMIN, "2026-12-04T19:30:00Z"), json={"dry_run": True}
    )
    assert first_dry.json()["replayed"] is False
    nxt = (await app.http.post(SYM, headers=scheduled(ADMIN, "2026-12-04T19:30:00Z"))).json()
    assert nxt["replayed"] is False and len(nxt["orders"]) == 1
    assert nxt["execution_id"] != a["execution_id"] and nxt["orders"] != a["orders"]
    latest = jsonutil.loads(await redis.get("rebalance:plan:symmetric"))
    assert latest["execution_id"] == nxt["execution_id"]
    runs = await app.c.store.find("strategy_events", Query(where={"kind": "TASK_RUN"}))
    assert len(runs) == 4


async def test_manual_runs_are_new_executions_each_time(app: App) -> None:
    ids = set()
    for _ in range(2):
        r = await app.http.post(SYM, headers=bearer(ADMIN), json={"dry_run": True})
        ids.add(r.json()["execution_id"])
    assert len(ids) == 2


async def test_the_15_min_job_runs_cost_first_and_isolates_a_failing_step(
    app: App, redis: RedisClient
) -> None:
    ok = await app.http.post(JOB, headers=bearer(ADMIN), json={"dry_run": True})
    body = ok.json()
    assert ok.status_code == 200 and body["status"] == "success", body
    pos = body["cost_update"]["positions"]["QRL"]
    assert D(pos["avg_cost"]) == D("0.05") and pos["source"] == "estimate"
    assert body["rebalance"]["plan"]["action"] == "SELL"
    # a corrupt fill record breaks the cost step; the rebalance still runs: partial, 200
    await app.c.store.insert(
        "fills", {"symbol": "QRLUSDT", "market": "SPOT", "side": "BUY", "qty": "x", "price": "1"}
    )
    r = await app.http.post(JOB, headers=scheduled(ADMIN))
    body = r.json()
    assert r.status_code == 200 and body["status"] == "partial", body
    assert body["cost_update"]["status"] == "error" and "x" in body["cost_update"]["error"]
    assert body["rebalance"]["status"] == "success" and len(body["rebalance"]["orders"]) == 1
    assert {"duration_ms", "timestamp", "execution_id", "auth"} <= set(body)


async def test_live_job_snapshots_cost_and_pnl_from_our_fills(app: App) -> None:
    await app.c.store.insert(
        "fills",
        {
            "venue": "sim",
            "order_id": "1",
            "trade_id": "1",
            "client_order_id": "x",
            "symbol": "QRLUSDT",
            "market": "SPOT",
            "side": "BUY",
            "qty": "100",
            "price": "1.5",
            "fee": "0.15",
            "fee_asset": "USDT",
            "ts_fill": 1,
        },
    )
    app.spot.bal = {"QRL": SpotBalance(D(100)), "USDT": SpotBalance(D(400))}  # ratio 1/3: BUY
    body = (await app.http.post(JOB, headers=scheduled(ADMIN))).json()
    pos = body["cost_update"]["positions"]["QRL"]
    assert D(pos["avg_cost"]) == D("1.5015") and D(pos["unrealised_pnl"]) == D("49.85")
    snaps = await app.c.store.find("positions_snapshots")
    assert len(snaps) == 1 and snaps[0]["execution_id"] == body["execution_id"]
    assert body["rebalance"]["plan"]["action"] == "BUY"


async def test_intelligent_dry_run_reads_closes_and_guards_on_cost(app: App) -> None:
    r = await app.http.post(
        "/tasks/rebalance/intelligent",
        headers=bearer(ADMIN),
        json={"dry_run": True, "context": {"cost_avg": "1.9"}},
    )
    plan = r.json()["plan"]
    assert plan["ma_indicators"]["signal"] == "DEATH_CROSS"
    assert plan["action"] == "SELL" and D(plan["quantity"]) == 25  # ≤ 30 QRL tradeable
    guarded = await app.http.post(
        "/tasks/rebalance/intelligent",
        headers=bearer(ADMIN),
        json={"dry_run": True, "context": {"cost_avg": "1.95"}},  # 2 < 1.03 × 1.95
    )
    assert guarded.json()["plan"]["reason_code"] == "PRICE_NOT_FAVOURABLE"


async def test_a_run_without_exchange_reads_fails_as_an_error_and_is_not_replayed(
    app: App, redis: RedisClient
) -> None:
    app.c.tasks.reader = None
    r = await app.http.post(SYM, headers=scheduled(ADMIN))
    assert r.status_code == 503 and r.json()["status"] == "error"
    assert "S3_EXCHANGE" in r.json()["error"]
    assert await redis.keys("task:exec:*") == []  # a retry runs it again


async def test_a_live_run_holds_while_an_earlier_rebalance_order_is_still_working(
    app: App, redis: RedisClient
) -> None:
    await app.c.store.insert(
        "orders",
        {
            "client_order_id": "rb-0123456789abcdef01234567",
            "parent_client_order_id": None,
            "symbol": "QRLUSDT",
            "market": "SPOT",
            "status": "ACCEPTED",
            "side": "SELL",
        },
    )
    r = await app.http.post(SYM, headers=scheduled(ADMIN))
    plan = r.json()["plan"]
    assert plan["action"] == "HOLD" and plan["reason_code"] == "ORDER_IN_FLIGHT", plan
    assert plan["planned"]["action"] == "SELL"  # what it would have done, for the operator
    assert r.json()["orders"] == [] and await intents(redis) == []


async def test_two_live_runs_of_the_same_pair_never_trade_at_once(
    app: App, redis: RedisClient
) -> None:
    await redis.set("lock:rebalance:QRLUSDT", "other-execution", ex=60)
    r = await app.http.post(SYM, headers=bearer(ADMIN))
    plan = r.json()["plan"]
    assert plan["reason_code"] == "RUN_IN_PROGRESS" and "other-execution" in plan["reason"]
    assert await intents(redis) == []
    await redis.delete("lock:rebalance:QRLUSDT")
    ok = await app.http.post(SYM, headers=bearer(ADMIN))
    assert len(ok.json()["orders"]) == 1
    assert await redis.get("lock:rebalance:QRLUSDT") is None  # released after the run


PLAN_FIELDS = {"action", "quantity", "notional_usdt", "price", "reason", "reason_code"}


async def test_answers_carry_the_issues_fields(app: App) -> None:
    r = await app.http.post(SYM, headers=scheduled(ADMIN))
    body = r.json()
    top = {"status", "task", "auth", "execution_id", "timestamp", "duration_ms", "plan", "orders"}
    assert top <= set(body), set(body)
    assert set(body["plan"]) >= PLAN_FIELDS
    # the plan's inputs and indicators
    assert {"base_balance", "quote_balance", "ratio", "deviation_pct", "target_ratio"} <= set(
        body["plan"]
    )
    assert isinstance(body["duration_ms"], float) and body["timestamp"].endswith("Z")
    intel = (
        await app.http.post(
            "/tasks/rebalance/intelligent",
            headers=bearer(ADMIN),
            json={"dry_run": True, "context": {"cost_avg": "1.9"}},
        )
    ).json()
    assert PLAN_FIELDS | {"ma_indicators", "position_tiers", "cost_avg"} <= set(intel["plan"])
    job = (await app.http.post(JOB, headers=bearer(ADMIN), json={"dry_run": True})).json()
    assert top - {"plan", "orders"} | {"cost_update", "rebalance"} <= set(job)
    assert {"status", "duration_ms"} <= set(job["cost_update"])
    assert {"status", "duration_ms", "plan", "orders"} <= set(job["rebalance"])


async def test_the_job_reads_for_cost_first_and_a_failing_rebalance_leaves_the_cost_step_done(
    app: App,
) -> None:
    app.spot.fail_balances_from = 2  # the cost step's read succeeds, the rebalance's fails
    r = await app.http.post(JOB, headers=scheduled(ADMIN))
    body = r.json()
    # cost/PnL reads ticker then balances; the rebalance reads balances first: cost ran first
    assert app.spot.calls[:3] == ["ticker", "balances", "balances"], app.spot.calls
    assert r.status_code == 200 and body["status"] == "partial", body
    assert body["cost_update"]["status"] == "success"
    assert body["rebalance"]["status"] == "error"
    assert "venue answered 503" in body["rebalance"]["error"]
    snaps = await app.c.store.find("positions_snapshots")
    assert [d["execution_id"] for d in snaps] == [body["execution_id"]]
    # both steps failing is an error (503): nothing stored as done, the retry runs it again
    app.spot.fail_balances_from = 1
    both = await app.http.post(JOB, headers=scheduled(ADMIN, "2026-12-04T19:45:00Z"))
    assert both.status_code == 503 and both.json()["status"] == "error"


async def test_metrics_count_runs_by_task_action_and_outcome(app: App) -> None:
    await app.http.post(SYM, headers=scheduled(ADMIN))  # live SELL
    await app.http.post(SYM, headers=scheduled(ADMIN))  # its replay
    await app.http.post(SYM, headers=bearer(ADMIN), json={"dry_run": True})
    app.spot.bal = {"QRL": SpotBalance(D(50)), "USDT": SpotBalance(D(100))}  # 50:50 at 2
    await app.http.post(JOB, headers=bearer(ADMIN))
    text = (await app.http.get("/metrics")).text
    for labels in (
        'action="SELL",outcome="success",task="rebalance-symmetric"',
        'action="none",outcome="replayed",task="rebalance-symmetric"',
        'action="SELL",outcome="dry_run",task="rebalance-symmetric"',
        'action="HOLD",outcome="success",task="15-min-job"',
    ):
        assert f"s3_task_runs_total{{{labels}}} 1.0" in text, labels
    assert 's3_task_duration_seconds_count{task="15-min-job"} 1.0' in text


async def test_one_structured_log_line_per_run_with_step_durations(
    app: App, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="s3_strategy.service_layer.rebalance_tasks"):
        body = (await app.http.post(JOB, headers=scheduled(ADMIN))).json()
    runs = [r for r in caplog.records if r.getMessage() == "task run"]
    assert len(runs) == 1
    rec = runs[0].__dict__
    assert rec["execution_id"] == body["execution_id"] and rec["task"] == "15-min-job"
    assert rec["status"] == "success" and rec["action"] == "SELL"
    assert rec["duration_ms"] == body["duration_ms"]
    assert set(rec["steps"]) == {"cost_update", "rebalance"}
    for name, step in rec["steps"].items():
        assert step["status"] == "success" and step["duration_ms"] == body[name]["duration_ms"]


async def test_without_a_job_name_the_execution_is_the_path_and_the_window(app: App) -> None:
    when = {"X-CloudScheduler-ScheduleTime": "2026-12-04T19:16:00Z"}
    a = (await app.http.post(SYM, headers=bearer(ADMIN, **when))).json()
    later = {"X-CloudScheduler-ScheduleTime": "2026-12-04T19:29:59Z"}  # same window
    b = (await app.http.post(SYM, headers=bearer(ADMIN, **later))).json()
    assert b["replayed"] is True and b["execution_id"] == a["execution_id"]
    assert a["execution_id"].startswith("symmetric-20261204T1915Z-")
    other = (await app.http.post("/tasks/15-min-job", headers=bearer(ADMIN, **when))).json()
    assert other["replayed"] is False and other["execution_id"] != a["execution_id"]
    bad = await app.http.post(
        SYM, headers=bearer(ADMIN, **{"X-CloudScheduler-ScheduleTime": "yesterday"})
    )
    assert bad.status_code == 400


async def test_a_run_retried_after_a_crash_resends_the_same_client_order_id(
    app: App, redis: RedisClient
) -> None:
    first = (await app.http.post(SYM, headers=scheduled(ADMIN))).json()
    eid = first["execution_id"]
    assert first["orders"] == [rebalance_client_order_id(eid, "symmetric")]
    # The process died after sending, before its result was stored: the lease ran out.
    await redis.delete(f"task:exec:{eid}")
    again = (await app.http.post(SYM, headers=scheduled(ADMIN))).json()
    assert again["replayed"] is False and again["execution_id"] == eid
    sent = [i["client_order_id"] for i in await intents(redis)]
    # the same id twice: S4 keeps one order per client_order_id (idem:order:{id})
    assert sent == first["orders"] * 2


async def test_the_pair_lock_is_taken_and_released_by_its_own_execution_only(
    app: App, redis: RedisClient
) -> None:
    eid = execution_id(
        task="rebalance-symmetric",
        path=SYM,
        job_name="projects/p/locations/l/jobs/15-min-job",
        schedule_time="2026-12-04T19:15:00Z",
    )
    # Our own SET NX landed but its answer was lost (redis-py retries the command): the lock
    # already holds our execution id. It is ours: the run trades instead of holding on itself.
    await redis.set("lock:rebalance:QRLUSDT", eid, ex=60)
    r = (await app.http.post(SYM, headers=scheduled(ADMIN))).json()
    assert r["execution_id"] == eid
    assert r["plan"]["action"] == "SELL" and len(r["orders"]) == 1, r["plan"]
    assert await redis.get("lock:rebalance:QRLUSDT") is None

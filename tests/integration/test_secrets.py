"""Secrets never leave the process (issue 11, point 17): tokens, exchange keys and DB passwords
are `SecretStr`; start-up errors name the variable, never its value; the running services'
logs and responses — 2xx, 4xx, 5xx bodies and headers, /health, /metrics, /openapi.json — are
scanned for every configured secret. Real Redis, SQLite, the venue simulator; the processes'
own entry points for the start-up errors."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from s3_strategy.bootstrap import bootstrap as s3_bootstrap
from s3_strategy.config import Settings as S3Settings
from s3_strategy.entrypoints.api import create_app as s3_app
from s4_router.bootstrap import bootstrap as s4_bootstrap
from s4_router.config import Settings as S4Settings
from s4_router.entrypoints.api import create_app as s4_app
from svckit.errors import ConfigError, StoreError, StoreUnavailable
from svckit.redisio import RedisClient
from svckit.settings import load_settings
from svckit.store.base import Doc
from svckit.store.sqlite import SqliteStore
from tests.conftest import FIXTURES
from tests.helpers import S3_ADMIN_TOKEN, S3_TOKEN, S4_TOKEN, TOKEN_ENV, bearer, put_features

REPO = Path(__file__).resolve().parents[2]
BINANCE_KEY = "binance-key-QWERTYUIOPASDFGHJKL"
BINANCE_SECRET = "binance-secret-ZXCVBNMLKJHGFDSA"
ARANGO_PASS = "arango-pass-PLMOKNIJBUHV"
REDIS_PASS = "redis-pass-YGVTFCRDXESZ"
SECRETS = [S3_TOKEN, S3_ADMIN_TOKEN, S4_TOKEN, BINANCE_KEY, BINANCE_SECRET, ARANGO_PASS, REDIS_PASS]
RULE_FEATURES = {"rho_usdttwd_14": 0.1, "rv_1h": 0.01}


def leaks(text: str) -> list[str]:
    return [s for s in SECRETS if s in text]


def response_text(r: httpx.Response) -> str:
    return f"{r.status_code} {dict(r.headers)} {r.text}"


# ---- settings and start-up -------------------------------------------------------------------
def test_settings_hold_every_secret_as_secretstr_and_repr_hides_them() -> None:
    s3 = S3Settings(db_arango_pass=ARANGO_PASS, redis_password=REDIS_PASS)
    s4 = S4Settings(
        db_arango_pass=ARANGO_PASS,
        redis_password=REDIS_PASS,
        binance_key=BINANCE_KEY,
        binance_secret=BINANCE_SECRET,
    )
    for settings, names in (
        (s3, ["api_token", "admin_token", "s4_api_token", "db_arango_pass", "redis_password"]),
        (s4, ["api_token", "binance_key", "binance_secret", "db_arango_pass", "redis_password"]),
    ):
        for name in names:
            assert isinstance(getattr(settings, name), SecretStr), name
        assert leaks(repr(settings)) == [] and leaks(str(settings)) == []
        assert leaks(str(settings.model_dump())) == []


@pytest.mark.parametrize(
    ("cls", "env", "named"),
    [
        # a token too short: the message names the variable, not the value
        (S4Settings, {"S4_API_TOKEN": "tiny-secret-15c"}, "S4_API_TOKEN"),
        (S3Settings, {"S3_ADMIN_TOKEN": " padded-admin-token-value "}, "S3_ADMIN_TOKEN"),
        # real exchange without a token: refused, the keys it was given not shown
        (S4Settings, {"S4_EXCHANGE": "binance", "S4_API_TOKEN": ""}, "S4_API_TOKEN"),
        (S4Settings, {"S4_EXCHANGE": "binance", "S4_AUTH_DISABLED": "true"}, "S4_AUTH_DISABLED"),
        # another variable wrong while every secret is set
        (S4Settings, {"S4_PORT": "eighty"}, "S4_PORT='eighty'"),
        (S3Settings, {"S3_PORT": "eighty"}, "S3_PORT='eighty'"),
        (S3Settings, {"S3_API_TOKEN": ""}, "S3_API_TOKEN is required"),
        (S3Settings, {"S3_S4_API_TOKEN": ""}, "S3_S4_API_TOKEN is not"),
    ],
)
def test_load_settings_error_names_the_variable_never_a_secret(
    monkeypatch: pytest.MonkeyPatch, cls: type[Any], env: dict[str, str], named: str
) -> None:
    for prefix in ("S3_", "S4_"):
        monkeypatch.setenv(f"{prefix}DB_ARANGO_PASS", ARANGO_PASS)
        monkeypatch.setenv(f"{prefix}REDIS_PASSWORD", REDIS_PASS)
    monkeypatch.setenv("S4_BINANCE_KEY", BINANCE_KEY)
    monkeypatch.setenv("S4_BINANCE_SECRET", BINANCE_SECRET)
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    with pytest.raises(ConfigError) as err:
        load_settings(cls)
    message = str(err.value)
    assert named in message
    assert leaks(message) == [], message
    assert "tiny-secret-15c" not in message and "padded-admin-token-value" not in message


def test_s4_with_real_exchange_and_token_starts_and_sim_may_disable_auth() -> None:
    live = S4Settings(exchange="binance", binance_key=BINANCE_KEY, binance_secret=BINANCE_SECRET)
    assert live.api_token is not None
    dev = S4Settings(api_token=None, auth_disabled=True)  # the simulator: dev switch allowed
    assert dev.auth_disabled and dev.api_token is None
    dev3 = S3Settings(api_token=None, s4_api_token=None, auth_disabled=True)
    assert dev3.auth_disabled


def run_module(module: str, env_over: dict[str, str], tmp_path: Path) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("S3_", "S4_"))}
    env.update(env_over)
    env[f"{module[:2].upper()}_DATA_DIR"] = str(tmp_path)
    res = subprocess.run(
        [sys.executable, "-m", module],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert res.returncode == 2, res.stderr[-2000:]
    assert "Traceback" not in res.stderr
    return res.stdout + res.stderr


def test_s4_process_with_real_exchange_and_no_token_refuses_to_start(tmp_path: Path) -> None:
    out = run_module(
        "s4_router",
        {
            "S4_EXCHANGE": "binanceusdm",
            "S4_BINANCE_KEY": BINANCE_KEY,
            "S4_BINANCE_SECRET": BINANCE_SECRET,
            "S4_DB_ARANGO_PASS": ARANGO_PASS,
        },
        tmp_path,
    )
    assert "S4_API_TOKEN is required" in out
    assert leaks(out) == [], out


@pytest.mark.parametrize("module", ["s3_strategy", "s4_router"])
def test_process_start_failures_never_print_a_secret(module: str, tmp_path: Path) -> None:
    p = module[:2].upper()
    secrets = {
        **TOKEN_ENV,
        f"{p}_DB_ARANGO_PASS": ARANGO_PASS,
        f"{p}_REDIS_PASSWORD": REDIS_PASS,
        "S4_BINANCE_KEY": BINANCE_KEY,
        "S4_BINANCE_SECRET": BINANCE_SECRET,
    }
    # A bad variable and a token too short, every secret set: one line naming both variables.
    out = run_module(
        module,
        {**secrets, f"{p}_LOG_LEVEL": "chatty", f"{p}_API_TOKEN": "short-but-secret"[:15]},
        tmp_path,
    )
    assert f"{p}_LOG_LEVEL='chatty'" in out
    assert f"{p}_API_TOKEN (secret, value not shown)" in out
    assert "short-but-secre" not in out and leaks(out) == [], out


# ---- running services ------------------------------------------------------------------------
class FailingSignals(SqliteStore):
    failing = False

    async def insert_many(self, collection: str, docs: Sequence[Doc]) -> list[str | StoreError]:
        if self.failing and collection == "signals":
            raise StoreUnavailable("signals: disk full")
        return await super().insert_many(collection, docs)


async def test_running_services_never_reveal_a_secret_in_logs_or_responses(
    redis: RedisClient,
    redis_addresses: list[str],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    s4_settings = S4Settings(
        redis_addresses=redis_addresses,
        data_dir=tmp_path,
        fixtures_dir=FIXTURES,
        route_table_path=FIXTURES / "route_table.json",
        market_publish_ms=50,
        stream_block_ms=50,
        db_arango_pass=ARANGO_PASS,
        binance_key=BINANCE_KEY,
        binance_secret=BINANCE_SECRET,
    )
    s3_settings = S3Settings(
        redis_addresses=redis_addresses,
        data_dir=tmp_path,
        fixtures_dir=FIXTURES,
        s4_url="http://s4",
        db_arango_pass=ARANGO_PASS,
    )
    s4_store = SqliteStore(tmp_path / "s4.sqlite3")
    s3_store = FailingSignals(tmp_path / "s3.sqlite3")
    s4c = await s4_bootstrap(s4_settings, redis=redis, store=s4_store)
    app4 = s4_app(s4_settings, container=s4c)
    texts: list[str] = []
    async with (
        app4.router.lifespan_context(app4),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app4), base_url="http://s4") as c4,
    ):
        # S3 → S4 over REST with S3_S4_API_TOKEN, as bootstrap builds it.
        rest = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app4),
            base_url="http://s4",
            headers={"Authorization": f"Bearer {S4_TOKEN}"},
        )
        s3c = await s3_bootstrap(s3_settings, redis=redis, store=s3_store, http=rest)
        app3 = s3_app(s3_settings, container=s3c)
        async with (
            app3.router.lifespan_context(app3),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app3), base_url="http://s3") as c3,
        ):
            await put_features(redis, **RULE_FEATURES)
            near = [bearer(S3_TOKEN + "x"), bearer("x" + S4_TOKEN), bearer(S3_ADMIN_TOKEN[:-1])]
            calls: list[httpx.Response] = [
                await c3.get("/health"),
                await c3.get("/metrics"),
                await c4.get("/health"),
                await c4.get("/metrics"),
                await c3.get("/openapi.json", headers=bearer(S3_TOKEN)),
                await c4.get("/openapi.json", headers=bearer(S4_TOKEN)),
                await c3.post("/decide", json={"symbol": "BTCUSDT"}, headers=bearer(S3_TOKEN)),
                await c3.post("/decide", json={"symbol": 5}, headers=bearer(S3_TOKEN)),
                await c3.post("/decide/replay/nope", headers=bearer(S3_TOKEN)),
                await c4.post("/orders", json={"qty": 1e308}, headers=bearer(S4_TOKEN)),
                await c4.post("/cancel", json={"order_id": "77"}, headers=bearer(S4_TOKEN)),
                await c4.get("/orders/none-1", headers=bearer(S4_TOKEN)),
            ]
            for headers in near:
                calls.append(await c3.post("/decide", json={"symbol": "BTCUSDT"}, headers=headers))
                calls.append(await c4.post("/orders", json={}, headers=headers))
            s3_store.failing = True
            calls.append(
                await c3.post(
                    "/decide", json={"symbol": "BTCUSDT", "dry_run": True}, headers=bearer(S3_TOKEN)
                )
            )
            statuses = {r.status_code for r in calls}
            assert {200, 401, 404, 422, 503} <= statuses, statuses
            texts += [response_text(r) for r in calls]
        await rest.aclose()
    await s3_store.close()
    await s4_store.close()
    texts += [r.getMessage() for r in caplog.records]
    texts += [str(r.args) for r in caplog.records] + [caplog.text]
    for text in texts:
        assert leaks(text) == [], text[:2000]

"""svckit.redismux against a real redis-server: replies in order under concurrency (asyncio and
uvloop), error replies, cancellation, AUTH, connection loss and reconnect, the reply watchdog,
and S3 answering 503 when the hot-path read fails."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import uvloop
from redis import exceptions as redis_exc

from s3_strategy.bootstrap import bootstrap
from s3_strategy.config import Settings
from s3_strategy.entrypoints.api import create_app
from svckit.embedded_redis import EmbeddedRedis
from svckit.errors import RedisUnavailable
from svckit.redisio import RedisClient, make_redis
from svckit.redismux import RedisMux, pack
from svckit.store.sqlite import SqliteStore
from tests.conftest import FIXTURES
from tests.helpers import S3_AUTH, put_features


def mux_for(addresses: list[str], **kw: float) -> RedisMux:
    host, _, port = addresses[0].rpartition(":")
    return RedisMux(host, int(port), **kw)


@pytest.fixture
async def mux(redis_addresses: list[str], redis: RedisClient) -> AsyncIterator[RedisMux]:
    m = mux_for(redis_addresses)
    try:
        yield m
    finally:
        await m.aclose()


@pytest.fixture
def own_redis() -> Iterator[EmbeddedRedis]:
    """A server of this test alone (it gets killed or reconfigured)."""
    server = EmbeddedRedis().start()
    try:
        yield server
    finally:
        server.stop()


def test_pack_writes_resp_arrays_of_bulk_strings() -> None:
    assert pack([("GET", "k"), (b"HGET", "h", 7)]) == (
        b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*3\r\n$4\r\nHGET\r\n$1\r\nh\r\n$1\r\n7\r\n"
    )
    assert pack([("SET", "k", "é")]) == b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\n\xc3\xa9\r\n"


def test_for_addresses_is_single_node_only() -> None:
    assert isinstance(RedisMux.for_addresses(["127.0.0.1:6379"]), RedisMux)
    assert RedisMux.for_addresses(["a:1", "b:2", "c:3"]) is None  # cluster: keep redis-py


async def test_replies_decode_like_redis_py(mux: RedisMux, redis: RedisClient) -> None:
    await redis.set("s", "wert-é")
    await redis.hset("h", mapping={"a": "1", "b": "2"})
    got = await mux.execute(("GET", "s"), ("GET", "missing"), ("HGETALL", "h"), ("HGETALL", "no"))
    assert got == ["wert-é", None, {"a": "1", "b": "2"}, {}]
    # the same values redis-py (decode_responses=True) gives
    assert got[0] == await redis.get("s") and got[2] == await redis.hgetall("h")


async def _ordered_under_load(mux: RedisMux, redis: RedisClient, n: int = 400) -> None:
    await redis.mset({f"k{i}": f"v{i}" for i in range(n)})

    async def one(i: int) -> None:
        (v, h) = await mux.execute(("GET", f"k{i}"), ("HGETALL", "none"))
        assert (v, h) == (f"v{i}", {})

    await asyncio.gather(*(one(i) for i in range(n)))


async def test_concurrent_callers_each_get_their_own_replies(
    mux: RedisMux, redis: RedisClient
) -> None:
    await _ordered_under_load(mux, redis)


def test_concurrent_callers_on_uvloop(redis_addresses: list[str]) -> None:
    """S3 runs on uvloop, whose transports differ from asyncio's."""

    async def main() -> None:
        r = make_redis(redis_addresses)
        m = mux_for(redis_addresses)
        try:
            await _ordered_under_load(m, r)
        finally:
            await m.aclose()
            await r.aclose()

    uvloop.run(main())


async def test_error_reply_raises_and_the_connection_stays_usable(
    mux: RedisMux, redis: RedisClient
) -> None:
    await redis.set("str", "x")
    with pytest.raises(redis_exc.ResponseError, match="WRONGTYPE"):
        await mux.execute(("HGETALL", "str"))
    assert await mux.execute(("GET", "str")) == ["x"]


async def test_a_cancelled_caller_does_not_shift_the_replies_of_the_others(
    mux: RedisMux, redis: RedisClient
) -> None:
    await redis.mset({"a": "A", "b": "B"})
    await mux.execute(("PING",))  # connected
    first = asyncio.create_task(mux.execute(("GET", "a")))
    second = asyncio.create_task(mux.execute(("GET", "b")))
    await asyncio.sleep(0)  # both written
    first.cancel()
    assert await second == ["B"]
    assert await mux.execute(("GET", "a")) == ["A"]
    assert first.cancelled()


async def test_server_gone_fails_fast_with_redis_unavailable(own_redis: EmbeddedRedis) -> None:
    m = mux_for(own_redis.addresses, connect_timeout_s=1.0)
    try:
        assert await m.execute(("PING",)) == ["PONG"]
        own_redis.stop()
        t = time.monotonic()
        with pytest.raises(RedisUnavailable):
            await m.execute(("GET", "k"))
        with pytest.raises(RedisUnavailable, match="redis unavailable at"):
            await m.execute(("GET", "k"))  # reconnect refused
        assert time.monotonic() - t < 2.0
    finally:
        await m.aclose()


async def test_killed_connection_fails_waiters_then_reconnects(
    mux: RedisMux, redis: RedisClient
) -> None:
    await redis.set("k", "v")
    assert await mux.execute(("CLIENT", "SETNAME", "hot-mux"), ("GET", "k")) == ["OK", "v"]
    killed = await redis.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
    assert int(killed) >= 1
    await asyncio.sleep(0.05)  # the server closed it; connection_lost ran
    assert await mux.execute(("GET", "k")) == ["v"]  # a new connection, no error for callers


async def test_watchdog_fails_calls_whose_reply_never_comes() -> None:
    """A server that accepts and never answers (a hung Redis): the call fails after the
    timeout, not never."""
    conns: list[asyncio.StreamWriter] = []

    async def silent(_: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        conns.append(w)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    m = RedisMux("127.0.0.1", port, timeout_s=0.2)
    try:
        t = time.monotonic()
        waiters = [asyncio.create_task(m.execute(("GET", f"k{i}"))) for i in range(3)]
        for task in waiters:
            with pytest.raises(RedisUnavailable, match="timeout"):
                await task
        assert 0.2 <= time.monotonic() - t < 1.5
    finally:
        await m.aclose()
        for writer in conns:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_auth_with_password_and_a_wrong_one(own_redis: EmbeddedRedis) -> None:
    admin = make_redis(own_redis.addresses)
    await admin.config_set("requirepass", "s3cret")
    await admin.aclose()
    host, _, port = own_redis.addresses[0].rpartition(":")
    good = RedisMux(host, int(port), password="s3cret")
    bad = RedisMux(host, int(port), password="nope")
    none = RedisMux(host, int(port))
    try:
        assert await good.execute(("PING",)) == ["PONG"]
        with pytest.raises(RedisUnavailable, match="AUTH failed"):
            await bad.execute(("PING",))
        with pytest.raises(redis_exc.ResponseError, match="NOAUTH"):
            await none.execute(("PING",))
    finally:
        for m in (good, bad, none):
            await m.aclose()


async def test_closed_mux_refuses_calls(mux: RedisMux) -> None:
    assert await mux.execute(("PING",)) == ["PONG"]
    await mux.aclose()
    with pytest.raises(RedisUnavailable, match="closed"):
        await mux.execute(("PING",))


async def test_s3_decide_answers_503_when_its_redis_is_gone(
    own_redis: EmbeddedRedis, tmp_path: Path
) -> None:
    """The hot-path read goes through the mux: Redis down ⇒ 503 with the reason, not a 500."""
    addresses = own_redis.addresses
    settings = Settings(
        redis_addresses=addresses, data_dir=tmp_path, fixtures_dir=FIXTURES, s4_url=None
    )
    store = SqliteStore(tmp_path / "store.sqlite3")
    redis = make_redis(addresses)
    container = await bootstrap(settings, redis=redis, store=store)
    assert container.service.state.mux is not None
    app = create_app(settings, container=container)
    body = {"symbol": "BTCUSDT", "dry_run": True}
    try:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://s3", headers=S3_AUTH
            ) as c,
        ):
            await put_features(redis)
            ok = await c.post("/decide", json=body)
            assert ok.status_code == 200, ok.text
            own_redis.stop()
            r = await c.post("/decide", json=body)
            assert r.status_code == 503
            assert r.json()["detail"].startswith("service unavailable: redis")
    finally:
        await redis.aclose()
        await store.close()


async def test_a_value_that_is_not_utf8_fails_the_call_and_the_next_one_reconnects(
    mux: RedisMux, redis_addresses: list[str]
) -> None:
    raw = make_redis(redis_addresses)
    await raw.execute_command("SET", "bin", b"\xff\xfe")  # arguments are sent as given
    await raw.set("ok", "fine")
    await raw.aclose()
    with pytest.raises(RedisUnavailable, match="unreadable"):
        await mux.execute(("GET", "bin"))
    assert await mux.execute(("GET", "ok")) == ["fine"]

"""Shared fixtures: a real Redis (embedded, started once per session) and a SQLite store.

Set `TEST_REDIS_ADDRESSES` to run the suite against an existing Redis instead.

The services refuse to start without bearer tokens: the suite's tokens (tests/helpers.py) are
put in the environment here, before any Settings is built; HTTP clients send them with
`headers=S3_AUTH` / `S4_AUTH`.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from svckit.embedded_redis import EmbeddedRedis
from svckit.redisio import RedisClient, make_redis
from svckit.store.sqlite import SqliteStore
from tests.helpers import TOKEN_ENV

os.environ.update(TOKEN_ENV)

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "fixtures"


@pytest.fixture(scope="session")
def redis_addresses() -> Iterator[list[str]]:
    preset = os.environ.get("TEST_REDIS_ADDRESSES")
    if preset:
        yield [a.strip() for a in preset.split(",") if a.strip()]
        return
    with EmbeddedRedis() as server:
        yield server.addresses


@pytest.fixture(scope="session")
def redis_cluster_addresses() -> Iterator[list[str]]:
    with EmbeddedRedis(cluster=True) as server:
        yield server.addresses


@pytest.fixture
async def redis(redis_addresses: list[str]) -> AsyncIterator[RedisClient]:
    client = make_redis(redis_addresses)
    await client.flushdb()
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    store = SqliteStore(tmp_path / "store.sqlite3")
    await store.bootstrap()
    try:
        yield store
    finally:
        await store.close()

"""Composition roots close what they opened, also when start-up fails half-way (issue 12 point 8).

Observed from outside, not through the roots' bookkeeping: the Redis server's client list and
the file descriptors this process holds on the store's files.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from s3_strategy.bootstrap import bootstrap as s3_bootstrap
from s3_strategy.config import Settings as S3Settings
from s4_router.bootstrap import bootstrap as s4_bootstrap
from s4_router.config import Settings as S4Settings
from svckit.errors import ConfigError
from svckit.redisio import RedisClient
from svckit.store.sqlite import SqliteStore
from tests.conftest import FIXTURES


async def _redis_clients(redis: RedisClient, *, settle_to: int | None = None) -> int:
    """Connections the server lists; `settle_to`: wait (≤ 2 s) for the server to see closes."""
    for _ in range(40):
        n = len(await redis.client_list())
        if settle_to is None or n == settle_to:
            break
        await asyncio.sleep(0.05)
    return n


def _open_files_under(path: Path) -> list[str]:
    """This process's open file descriptors on files below `path` (the SQLite store's)."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue  # closed meanwhile (the listing's own descriptor)
        if target.startswith(str(path)):
            found.append(target)
    return found


async def test_s3_start_up_failing_after_redis_and_store_opened_closes_both(
    redis: RedisClient, redis_addresses: list[str], tmp_path: Path
) -> None:
    settings = S3Settings(
        redis_addresses=redis_addresses,
        data_dir=tmp_path,
        fixtures_dir=FIXTURES,
        s4_url=None,
        symbols=["BTCUSDT", "NOPEUSDT"],  # checked after Redis and the store are open
    )
    before = await _redis_clients(redis)
    with pytest.raises(ConfigError, match="NOPEUSDT") as failed:
        await s3_bootstrap(settings)
    # The traceback keeps the half-built root's locals alive: nothing is closed by the GC.
    assert failed.traceback
    assert (tmp_path / "store.sqlite3").exists(), "the store was open before the failure"
    assert _open_files_under(tmp_path) == []
    assert await _redis_clients(redis, settle_to=before) == before


async def test_s4_start_up_failing_after_redis_and_store_opened_closes_both(
    redis: RedisClient, redis_addresses: list[str], tmp_path: Path
) -> None:
    # A registry row the router cannot read: found after Redis and the store are open.
    store = SqliteStore(tmp_path / "store.sqlite3")
    await store.bootstrap()
    await store.upsert("instrument_registry", "BADUSDT", {"symbol": "BADUSDT"})
    await store.close()
    settings = S4Settings(
        redis_addresses=redis_addresses,
        data_dir=tmp_path,
        fixtures_dir=FIXTURES,
        route_table_path=FIXTURES / "route_table.json",
    )
    before = await _redis_clients(redis)
    with pytest.raises(ValidationError, match="BADUSDT") as failed:
        await s4_bootstrap(settings)
    assert failed.traceback
    assert (tmp_path / "store.sqlite3").exists(), "the store was open before the failure"
    assert _open_files_under(tmp_path) == []
    assert await _redis_clients(redis, settle_to=before) == before


async def test_s3_close_after_a_good_start_releases_redis_and_store(
    redis: RedisClient, redis_addresses: list[str], tmp_path: Path
) -> None:
    settings = S3Settings(
        redis_addresses=redis_addresses,
        data_dir=tmp_path,
        fixtures_dir=FIXTURES,
        s4_url=None,
    )
    before = await _redis_clients(redis)
    container = await s3_bootstrap(settings)
    await container.start()
    assert _open_files_under(tmp_path)
    await container.aclose()
    assert _open_files_under(tmp_path) == []
    assert await _redis_clients(redis, settle_to=before) == before

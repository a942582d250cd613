"""Shared fixtures: a real Redis (embedded, started once per session) and a SQLite store.

Redis in two modes, one fixture (`redis_mode`): "single" (one node) and "cluster" (an embedded
3-master Redis Cluster, the topology production runs). Every test gets the single node; a test
marked `redis_modes` (the integration tests of streams, idempotency, locks, leases, config
events, S3 `/decide` and S4 intake) runs once per mode, so a command the cluster refuses
(CROSSSLOT) fails the suite, even when the code swallowed the error (tests.helpers.
CrossSlotWatch). Each server is started once per session, lazily (the cluster only when a
cluster test runs), and flushed before every test that asks for it (`redis_addresses` /
`redis`).

`TEST_REDIS_MODE=cluster` puts every other test on the cluster too (a sweep for cross-slot
commands outside the listed tests; slower). Set `TEST_REDIS_ADDRESSES` (one address) and/or
`TEST_REDIS_CLUSTER_ADDRESSES` (the cluster's masters, comma-separated) to run against existing
servers instead: they are flushed.

The services refuse to start without bearer tokens: the suite's tokens (tests/helpers.py) are
put in the environment here, before any Settings is built; HTTP clients send them with
`headers=S3_AUTH` / `S4_AUTH`.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import pytest
import redis as redis_sync
import redis.cluster as redis_sync_cluster

from svckit.embedded_redis import EmbeddedRedis
from svckit.redisio import RedisClient, make_redis
from svckit.store.sqlite import SqliteStore
from tests.helpers import TOKEN_ENV, CrossSlotWatch

if TYPE_CHECKING:
    from tests.contract.facade_harness import SwappableApp
    from tests.facade_server import FacadeServer

os.environ.update(TOKEN_ENV)

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "fixtures"

RedisMode = Literal["single", "cluster"]
SyncRedis = redis_sync.Redis | redis_sync_cluster.RedisCluster
REDIS_MODES: tuple[RedisMode, ...] = ("single", "cluster")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A test marked `redis_modes` that uses Redis (through `redis_mode`, which `redis` and
    `redis_addresses` depend on) runs once per mode; the cluster run also carries the `cluster`
    marker (`-m "not cluster"` leaves it out)."""
    if "redis_mode" in metafunc.fixturenames and metafunc.definition.get_closest_marker(
        "redis_modes"
    ):
        metafunc.parametrize(
            "redis_mode",
            [pytest.param("single"), pytest.param("cluster", marks=pytest.mark.cluster)],
            indirect=True,
        )


@pytest.fixture
def redis_mode(request: pytest.FixtureRequest) -> RedisMode:
    """Which Redis this test talks to: the test's parameter when it is marked `redis_modes`,
    else `TEST_REDIS_MODE` (default "single"; "cluster" runs the whole suite on the cluster)."""
    default = os.environ.get("TEST_REDIS_MODE", "single")
    if default not in REDIS_MODES:
        raise pytest.UsageError(f"TEST_REDIS_MODE={default!r}: expected one of {REDIS_MODES}")
    mode: RedisMode = getattr(request, "param", default)
    return mode


def _preset(var: str) -> list[str] | None:
    preset = os.environ.get(var)
    return [a.strip() for a in preset.split(",") if a.strip()] if preset else None


@pytest.fixture(scope="session")
def redis_single_addresses() -> Iterator[list[str]]:
    preset = _preset("TEST_REDIS_ADDRESSES")
    if preset:
        yield preset
        return
    with EmbeddedRedis() as server:
        yield server.addresses


@pytest.fixture(scope="session")
def redis_cluster_addresses() -> Iterator[list[str]]:
    preset = _preset("TEST_REDIS_CLUSTER_ADDRESSES")
    if preset:
        yield preset
        return
    with EmbeddedRedis(cluster=True) as server:
        yield server.addresses


@pytest.fixture(scope="session")
def _redis_flushers() -> Iterator[dict[RedisMode, SyncRedis]]:
    """One synchronous client per mode, kept for the session: flushing before each test costs
    one round trip per master, not a cluster discovery."""
    clients: dict[RedisMode, SyncRedis] = {}
    yield clients
    for c in clients.values():
        c.close()


@pytest.fixture
def redis_addresses(
    redis_mode: RedisMode,
    request: pytest.FixtureRequest,
    _redis_flushers: dict[RedisMode, SyncRedis],
) -> Iterator[list[str]]:
    """The addresses of this test's Redis (one node, or the cluster's masters), flushed: no
    test sees another's keys. Services built from them pick the matching client
    (svckit.redisio.make_redis: several addresses ⇒ RedisCluster). On the cluster, a command
    refused for spanning several hash slots fails the test, even one the code swallowed
    (tests.helpers.CrossSlotWatch; reported at teardown, after the services stopped)."""
    addresses: list[str] = request.getfixturevalue(f"redis_{redis_mode}_addresses")
    flusher = _redis_flushers.get(redis_mode)
    if flusher is None:
        host, _, port = addresses[0].rpartition(":")
        flusher = _redis_flushers[redis_mode] = (
            redis_sync_cluster.RedisCluster(host=host, port=int(port))
            if redis_mode == "cluster"
            else redis_sync.Redis(host=host, port=int(port))
        )
    if not isinstance(flusher, redis_sync_cluster.RedisCluster):
        flusher.flushdb()
        yield addresses
        return
    flusher.flushdb(target_nodes=redis_sync_cluster.RedisCluster.PRIMARIES)
    with CrossSlotWatch(flusher) as watch:
        yield addresses
    assert not watch.refused, f"cross-slot commands on the Redis Cluster: {watch.refused}"


@pytest.fixture
async def redis(redis_addresses: list[str]) -> AsyncIterator[RedisClient]:
    client = make_redis(redis_addresses)
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


@pytest.fixture(scope="module")
def facade_server() -> Iterator[tuple[FacadeServer, SwappableApp]]:
    """One venue facade server (uvicorn) per test module; each test plugs its own venue + facade
    into the SwappableApp slot (tests/contract/facade_harness.py)."""
    from tests.contract.facade_harness import SwappableApp
    from tests.facade_server import FacadeServer

    slot = SwappableApp()
    with FacadeServer(slot, log_level="critical") as srv:
        yield srv, slot

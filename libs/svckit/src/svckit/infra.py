"""Shared start-up wiring of both services: Redis client and store, seeded and checked.

Each service's `bootstrap()` calls :func:`open_infra` first with its `AsyncExitStack`: what it
creates itself (rather than receives from a test) is registered there for closing as soon as it
is opened, so a start-up failing half-way (Redis unreachable, a bad fixture) closes it too.
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from dataclasses import dataclass

from svckit.errors import ConfigError, StartupError
from svckit.redisio import RedisClient, make_redis, ping
from svckit.settings import ServiceSettings
from svckit.store.base import DocumentStore
from svckit.store.factory import make_store
from svckit.store.seed import FixtureError, seed_store


@dataclass
class Infra:
    redis: RedisClient
    store: DocumentStore


async def open_infra(
    stack: AsyncExitStack,
    settings: ServiceSettings,
    *,
    prefix: str,
    redis: RedisClient | None = None,
    store: DocumentStore | None = None,
    seed: bool = True,
) -> Infra:
    """Connect (or adopt) Redis and the store; fail with a readable message when Redis is down.
    `seed`: create collections/indexes and upsert reference data from the fixtures."""
    if redis is None:
        if not settings.redis_addresses:
            raise ConfigError(
                f"{prefix}REDIS_ADDRESSES is empty (the service entry point starts one)"
            )
        redis = make_redis(settings.redis_addresses, password=settings.redis_password_value)
        stack.push_async_callback(redis.aclose)
    if not await ping(redis):
        raise StartupError(f"Redis unreachable at {','.join(settings.redis_addresses)}")
    if store is None:
        store = make_store(
            arango_uri=settings.db_arango_uri,
            arango_user=settings.db_arango_user,
            arango_pass=settings.db_arango_pass.get_secret_value(),
            arango_db=settings.db_arango_name,
            data_dir=settings.data_dir,
        )
        stack.push_async_callback(store.close)
    if seed:
        try:
            await seed_store(store, settings.fixtures_dir)
        except FixtureError as exc:  # a refused start with the fixture's own message
            raise StartupError(f"{prefix}FIXTURES_DIR: {exc}") from None
    else:
        await store.bootstrap()
    return Infra(redis, store)

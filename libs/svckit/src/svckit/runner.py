"""Process entry shared by `python -m s3_strategy` and `python -m s4_router`.

Start-up failures end the process with exit code 2 and one readable line on stderr: a bad
variable (named), or Redis unreachable (with the address). Without `S*_REDIS_ADDRESSES` an
embedded redis-server is started for this process alone (development convenience; `make run`
starts one Redis for the whole stack instead).
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import uvicorn

from svckit.embedded_redis import EmbeddedRedis
from svckit.errors import ConfigError
from svckit.logging import configure_logging
from svckit.redisio import make_redis, ping
from svckit.settings import ServiceSettings, load_settings

S = TypeVar("S", bound=ServiceSettings)
log = logging.getLogger(__name__)


async def _redis_reachable(settings: ServiceSettings) -> bool:
    client = make_redis(settings.redis_addresses, password=settings.redis_password_value)
    try:
        return await ping(client)
    finally:
        await client.aclose()


def run_service(name: str, settings_cls: type[S], create_app: Callable[[S], Any]) -> None:
    try:
        settings = load_settings(settings_cls)
    except ConfigError as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    configure_logging(name, settings.log_level, json=settings.log_json)
    embedded: EmbeddedRedis | None = None
    if not settings.redis_addresses:
        embedded = EmbeddedRedis().start()
        settings = settings.model_copy(update={"redis_addresses": embedded.addresses})
        log.warning(
            "no REDIS_ADDRESSES: started an embedded redis-server at %s (dev only)",
            embedded.addresses[0],
        )
    try:
        if not asyncio.run(_redis_reachable(settings)):
            print(
                f"{name}: Redis unreachable at {','.join(settings.redis_addresses)}; "
                "check the REDIS_ADDRESSES variable and that the server is up",
                file=sys.stderr,
            )
            raise SystemExit(2)
        log.info("%s listening on http://%s:%d", name, settings.host, settings.port)
        try:
            uvicorn.run(
                create_app(settings),
                host=settings.host,
                port=settings.port,
                log_config=None,
                access_log=False,
                timeout_graceful_shutdown=5,
            )
        except ConfigError as exc:
            print(f"{name}: {exc}", file=sys.stderr)
            raise SystemExit(2) from None
    finally:
        if embedded is not None:
            embedded.stop()

"""Schemathesis against S3's and S4's OpenAPI, shared by the bounded pytest run and `make fuzz`.

Each service is built as the tests build it (bootstrap on a real Redis and a SQLite store in a
scratch directory; S4 with the in-process venue simulator) and served by uvicorn on 127.0.0.1 on
a free port, in a thread with its own event loop: the service's Redis client and store belong to
that loop, and schemathesis' synchronous client talks to it over loopback exactly as a caller
would. Every operation of the published schema is driven with Hypothesis-generated cases and
every response is checked for 5xx and for conformance to what the schema declares.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hypothesis
import schemathesis
import uvicorn
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase, Verbosity
from hypothesis import strategies as st
from schemathesis.checks import CHECKS
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.generation.modes import GenerationMode

from svckit.redisio import make_redis
from svckit.store.sqlite import SqliteStore
from tests.conftest import FIXTURES
from tests.contract.facade_harness import API_KEY, API_SECRET, START_MS
from tests.facade_server import FacadeServer
from tests.helpers import S3_ADMIN_TOKEN, S4_TOKEN, bearer
from tests.tracking_clock import TrackingClock
from venue.defaults import default_venue
from venue.facade import create_facade

# What "0 responses 5xx and 0 responses that violate the declared schema" means, as checks.
CHECK_NAMES = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
)


@dataclass
class Service:
    name: str
    base_url: str
    headers: dict[str, str]
    openapi: dict[str, Any]


@dataclass
class OperationResult:
    label: str
    examples: int = 0
    failures: list[str] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failures and self.error is None


async def _build_s3(
    redis_addresses: list[str], data_dir: Path, **extra: Any
) -> tuple[FastAPI, Any]:
    from s3_strategy.bootstrap import bootstrap
    from s3_strategy.config import Settings
    from s3_strategy.entrypoints.api import create_app

    settings = Settings(
        redis_addresses=redis_addresses,
        data_dir=data_dir,
        fixtures_dir=FIXTURES,
        s4_url=None,
        **extra,
    )
    redis = make_redis(redis_addresses)
    store = SqliteStore(data_dir / "store.sqlite3")
    container = await bootstrap(settings, redis=redis, store=store)
    return create_app(settings, container=container), (store, redis)


async def _build_s4(
    redis_addresses: list[str], data_dir: Path, **extra: Any
) -> tuple[FastAPI, Any]:
    from s4_router.bootstrap import bootstrap
    from s4_router.config import Settings
    from s4_router.entrypoints.api import create_app

    settings = Settings(
        redis_addresses=redis_addresses,
        data_dir=data_dir,
        fixtures_dir=FIXTURES,
        route_table_path=FIXTURES / "route_table.json",
        market_publish_ms=50,
        stream_block_ms=50,
        **extra,
    )
    redis = make_redis(redis_addresses)
    store = SqliteStore(data_dir / "store.sqlite3")
    container = await bootstrap(settings, redis=redis, store=store)
    return create_app(settings, container=container), (store, redis)


Builder = Callable[..., Any]
_BUILDERS: dict[str, tuple[Builder, dict[str, str]]] = {
    # The admin token grants the API scope too: one token reaches every S3 route.
    "s3": (_build_s3, bearer(S3_ADMIN_TOKEN)),
    "s4": (_build_s4, bearer(S4_TOKEN)),
}


@contextmanager
def _exchange_for(name: str) -> Iterator[dict[str, Any]]:
    """S3's tasks read balances, tickers and klines from an exchange: here the simulator's
    Binance facade over loopback (as tests/integration/test_s3_tasks_facade.py), so the task
    routes run for real instead of answering "no exchange configured"."""
    if name != "s3":
        yield {}
        return
    venue = default_venue(clock=TrackingClock(START_MS), seed=9, step_ms=60_000, replay=False)
    venue.advance(151 * 60_000)  # enough 5-minute klines for MA25
    app = create_facade(venue, api_key=API_KEY, api_secret=API_SECRET)
    with FacadeServer(app, log_level="critical") as srv:
        yield {
            "exchange": "binance",
            "exchange_base_url": srv.url,
            "exchange_api_key": API_KEY,
            "exchange_api_secret": API_SECRET,
        }


@contextmanager
def serve(name: str, redis_addresses: list[str], data_dir: Path) -> Iterator[Service]:
    """Bootstrap and serve one service (`s3` or `s4`) until the block exits."""
    with _exchange_for(name) as extra, _serve(name, redis_addresses, data_dir, extra) as svc:
        yield svc


@contextmanager
def _serve(
    name: str, redis_addresses: list[str], data_dir: Path, extra: dict[str, Any]
) -> Iterator[Service]:
    build, headers = _BUILDERS[name]
    data_dir.mkdir(parents=True, exist_ok=True)
    started = threading.Event()
    box: dict[str, Any] = {}

    async def main() -> None:
        try:
            flush = make_redis(redis_addresses)
            await flush.flushdb()  # as the suite's `redis` fixture does
            await flush.aclose()
            app, (store, redis) = await build(redis_addresses, data_dir, **extra)
            box["openapi"] = app.openapi()
            config = uvicorn.Config(
                app,
                host="127.0.0.1",
                port=0,  # the OS picks a free one: read back once bound
                log_level=os.environ.get("FUZZ_LOG", "critical"),
                lifespan="on",
            )
            server = uvicorn.Server(config)
            box["server"] = server
        except BaseException as exc:
            box["error"] = exc
            started.set()
            raise
        started.set()
        try:
            await server.serve()
        finally:
            await store.close()
            await redis.aclose()

    thread = threading.Thread(target=asyncio.run, args=(main(),), name=f"fuzz-{name}", daemon=True)
    thread.start()
    if not started.wait(60):
        raise RuntimeError(f"{name} did not start within 60 s")
    if "error" in box:
        raise RuntimeError(f"{name} failed to start: {box['error']!r}")
    deadline = time.monotonic() + 30
    while not box["server"].started:  # uvicorn's own flag: bound and serving
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"{name} stopped while starting")
        time.sleep(0.01)
    port = box["server"].servers[0].sockets[0].getsockname()[1]
    try:
        yield Service(name, f"http://127.0.0.1:{port}", headers, box["openapi"])
    finally:
        box["server"].should_exit = True
        thread.join(30)


def conformance_checks() -> list[Any]:
    """schemathesis' checks behind CHECK_NAMES."""
    by_name = {c.__name__: c for c in CHECKS.get_all()}
    return [by_name[n] for n in CHECK_NAMES]


def fuzz_operations(
    service: Service,
    *,
    max_examples: int,
    seed: int | None = None,
    modes: tuple[GenerationMode, ...] = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE),
    on_result: Callable[[OperationResult], None] | None = None,
) -> list[OperationResult]:
    """Run every operation of the service's schema; one result per operation."""
    schema = schemathesis.openapi.from_dict(service.openapi)
    checks = conformance_checks()
    results: list[OperationResult] = []
    for item in schema.get_all_operations():
        operation = item.ok()
        result = OperationResult(label=f"{service.name} {operation.label}")
        start = time.perf_counter()
        test = _case_runner(service, checks, result)
        settings = hypothesis.settings(
            max_examples=max_examples,
            deadline=None,
            database=None,
            derandomize=seed is None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
            verbosity=Verbosity.quiet,
        )
        # Valid requests (positive) and requests that break the schema on purpose (negative):
        # both must get an answer the schema declares, never a 5xx.
        strategy = st.one_of(*(operation.as_strategy(generation_mode=m) for m in modes))
        run = hypothesis.given(case=strategy)(settings(test))
        if seed is not None:
            run = hypothesis.seed(seed)(run)
        try:
            run()
        except Exception as exc:  # schema generation trouble: reported, never hidden
            result.error = f"{type(exc).__name__}: {exc}"
        result.seconds = time.perf_counter() - start
        results.append(result)
        if on_result is not None:
            on_result(result)
    return results


def _case_runner(
    service: Service, checks: list[Any], result: OperationResult
) -> Callable[[Any], None]:
    seen: set[str] = set()

    def one(case: Any) -> None:
        result.examples += 1
        try:
            case.call_and_validate(
                base_url=service.base_url, headers=service.headers, checks=checks, timeout=30
            )
        except (AssertionError, Failure, FailureGroup) as exc:
            message = str(exc).strip()
            key = message.splitlines()[0] if message else repr(exc)
            if key not in seen:  # the same defect once, with the request that showed it
                seen.add(key)
                result.failures.append(f"{message}\n  request: {case.as_curl_command()}")

    return one

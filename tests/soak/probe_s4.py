"""Where S4's memory goes per order: S4's app in-process (embedded Redis, SQLite, the default
simulator, every background loop), N MARKET orders, RSS / glibc heap / live objects before and
after, and what `malloc_trim` gives back.

    python -m tests.soak.probe_s4 --warm 300 --orders 1500 [--path stream] [--tracemalloc]

The soak (`make soak`) says *that* S4 grows; this says *what*: with `--tracemalloc` the live
Python objects' growth by allocation site (tests.soak.tmdiff), always glibc's `mallinfo2`
(in use vs free in the arena) and the RSS a `malloc_trim(0)` releases. Figures per order.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import gc
import json
import tempfile
import time
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import redis.asyncio as aioredis
from fastapi import FastAPI

from s4_router.config import Settings
from s4_router.entrypoints.api import create_app
from svckit import keys, memtrim
from svckit.embedded_redis import EmbeddedRedis
from tests.soak.tmdiff import diff

REPO = Path(__file__).resolve().parents[2]
TOKEN = "probe-token-" + "x" * 32


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (n, ctypes.c_size_t)
        for n in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def mallinfo() -> str:
    try:
        fn = ctypes.CDLL("libc.so.6").mallinfo2
    except (OSError, AttributeError):
        return "mallinfo2: n/a"
    fn.restype = _MallInfo2
    m = fn()
    return (
        f"glibc arena {m.arena >> 20} MB: in use {m.uordblks >> 20} MB, free {m.fordblks >> 20} MB"
    )


async def send(cl: httpx.AsyncClient, r: Any, path: str, start: int, n: int) -> None:
    for i in range(start, start + n):
        body = {
            "intent_id": f"probe-{i}",
            "market": "FUT",
            "symbol": "ETHUSDT",
            "side": "BUY" if i % 2 == 0 else "SELL",
            "qty": "0.002",
            "exec_policy": {"type": "MARKET"},
            "client_order_id": f"probe-{i}",
            "created_ts": int(time.time() * 1000),
        }
        if path == "stream":
            await r.xadd(keys.ORDERS_INTENT, {"data": json.dumps(body)})
        else:
            await cl.post("/orders", json=body, headers={"Authorization": f"Bearer {TOKEN}"})
    if path == "stream":  # until S4 has published every outcome
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if await r.xlen(keys.ORDERS_EXECUTED) >= start + n:
                break
            await asyncio.sleep(0.25)


@contextlib.asynccontextmanager
async def s4_in_process(
    data_dir: Path, **settings: Any
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient, aioredis.Redis]]:
    """S4's app in this process, its lifespan running (every background loop), on an embedded
    Redis and a SQLite store under `data_dir`: the app, an HTTP client on it, a Redis client."""
    with EmbeddedRedis() as srv:
        app = create_app(
            Settings(
                redis_addresses=srv.addresses,
                data_dir=data_dir,
                fixtures_dir=REPO / "fixtures",
                route_table_path=REPO / "fixtures" / "route_table.json",
                api_token=TOKEN,
                **settings,
            )
        )
        host, _, port = srv.addresses[0].rpartition(":")
        r = aioredis.Redis(host=host, port=int(port))
        try:
            async with (
                app.router.lifespan_context(app),
                httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=app), base_url="http://s4", timeout=30
                ) as cl,
            ):
                yield app, cl, r
        finally:
            await r.aclose()


async def probe(args: argparse.Namespace) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="probe-s4-"))
    async with s4_in_process(tmp, malloc_trim_interval_s=args.trim_s, log_level="WARNING") as (
        _,
        cl,
        r,
    ):
        await send(cl, r, args.path, 0, args.warm)
        gc.collect()
        rss0 = _self_rss()
        print(f"after {args.warm} warm-up orders: RSS {rss0:.1f} MB; {mallinfo()}")
        if args.tracemalloc:
            tracemalloc.start(8)
            tracemalloc.take_snapshot().dump(str(tmp / "a.snap"))
        t = time.monotonic()
        await send(cl, r, args.path, args.warm, args.orders)
        gc.collect()
        rss1 = _self_rss()
        per = (rss1 - rss0) * 1024 / args.orders
        print(
            f"after {args.orders} more ({time.monotonic() - t:.0f} s, {args.path}): "
            f"RSS {rss1:.1f} MB ({per:+.1f} KB/order); {mallinfo()}"
        )
        if args.tracemalloc:
            tracemalloc.take_snapshot().dump(str(tmp / "b.snap"))
        if memtrim.malloc_trim():
            print(f"after malloc_trim(0): RSS {_self_rss():.1f} MB; {mallinfo()}")
    if args.tracemalloc:
        print(diff(str(tmp / "a.snap"), str(tmp / "b.snap"), top=12, group="lineno"))


def _self_rss() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--warm", type=int, default=300)
    ap.add_argument("--orders", type=int, default=1500)
    ap.add_argument("--path", choices=("rest", "stream"), default="rest")
    ap.add_argument("--tracemalloc", action="store_true")
    ap.add_argument("--trim-s", type=float, default=0.0, help="S4_MALLOC_TRIM_INTERVAL_S")
    asyncio.run(probe(ap.parse_args(argv)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""``python -m venue.facade``: the default venue (wall clock) behind the Binance facade.

    python -m venue.facade --port 8765 --api-key KEY --api-secret SECRET

Point ccxt at it by rewriting ``exchange.urls['api']`` to ``http://127.0.0.1:8765/...`` (S4's
``CcxtExchange(base_url=...)`` does that). The market is stepped by a background pump so that
resting and conditional orders match even when no request arrives.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

import uvicorn

from venue.clock import WallClock
from venue.defaults import default_venue
from venue.facade.app import create_facade


def _parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m venue.facade", description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--api-key", default=os.environ.get("VENUE_API_KEY", "venue-key"))
    p.add_argument("--api-secret", default=os.environ.get("VENUE_API_SECRET", "venue-secret"))
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--no-replay", action="store_true", help="synthetic BTCUSDT instead of replay")
    p.add_argument("--pump-ms", type=int, default=250, help="market stepping period")
    p.add_argument("--log-level", default="info")
    p.add_argument("--dialect", choices=["binance", "mexc"], default="binance",
                   help="mexc: MEXC spot v3 paths and JSON (docs/venue.md, MEXC)")  # fmt: skip
    return p.parse_args(argv)


async def _serve(args: argparse.Namespace) -> None:
    venue = default_venue(clock=WallClock(), seed=args.seed, replay=not args.no_replay)
    app = create_facade(
        venue, api_key=args.api_key, api_secret=args.api_secret, dialect=args.dialect
    )
    lock = app.state.venue_lock
    config = uvicorn.Config(
        app, host=args.host, port=args.port, log_level=args.log_level, lifespan="off", ws="none"
    )
    server = uvicorn.Server(config)

    async def pump() -> None:
        while not server.should_exit:
            with lock:
                venue.sync()
            await asyncio.sleep(args.pump_ms / 1000)

    pump_task = asyncio.create_task(pump())
    try:
        await server.serve()
    finally:
        pump_task.cancel()


def main(argv: list[str] | None = None) -> int:
    args = _parse(sys.argv[1:] if argv is None else argv)
    asyncio.run(_serve(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""How old the features S3 reads are: `feat:last:BTCUSDT` sampled every 50 ms.

    .venv/bin/python tests/bench/bench_feed_age.py            # 15 s
    .venv/bin/python tests/bench/bench_feed_age.py --seconds 30

S4 (simulated venue, default settings: market steps appended to `sim:market` every 500 ms) and
the market-data feeder run in-process on an embedded Redis; the age is the reader's wall clock
minus the snapshot's `ts` (the venue step it reflects; the simulator steps once a second, so
about 500 ms of the age is the step grid itself, and up to S4_MARKET_PUBLISH_MS the tap).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from contextlib import AsyncExitStack
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from md_feeder.app import start_feeder  # noqa: E402
from md_feeder.config import Settings as MDSettings  # noqa: E402
from s4_router.bootstrap import bootstrap  # noqa: E402
from s4_router.config import Settings  # noqa: E402
from s4_router.entrypoints.api import create_app  # noqa: E402
from svckit.embedded_redis import EmbeddedRedis  # noqa: E402
from svckit.redisio import make_redis  # noqa: E402
from svckit.store.sqlite import SqliteStore  # noqa: E402


async def measure(seconds: float) -> list[float]:
    with EmbeddedRedis() as server:
        redis = make_redis(server.addresses)
        tmp = Path(tempfile.mkdtemp(prefix="bench-feed-"))
        settings = Settings(
            redis_addresses=server.addresses, data_dir=tmp, fixtures_dir=REPO / "fixtures",
            route_table_path=REPO / "fixtures" / "route_table.json", auth_disabled=True,
        )  # fmt: skip
        store = SqliteStore(tmp / "store.sqlite3")
        ages: list[float] = []
        try:
            container = await bootstrap(settings, redis=redis, store=store)
            app = create_app(settings, container=container)
            async with AsyncExitStack() as stack:
                await stack.enter_async_context(app.router.lifespan_context(app))
                await start_feeder(stack, MDSettings(redis_addresses=server.addresses), redis=redis)
                while not await redis.exists("feat:last:BTCUSDT"):  # noqa: ASYNC110 - polls Redis
                    await asyncio.sleep(0.05)
                end = time.monotonic() + seconds
                while time.monotonic() < end:
                    snap = json.loads(await redis.get("feat:last:BTCUSDT"))
                    ages.append(time.time() * 1000 - snap["ts"])
                    await asyncio.sleep(0.05)
        finally:
            await store.close()
            await redis.aclose()
    return ages


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=15.0)
    args = ap.parse_args()
    ages = sorted(asyncio.run(measure(args.seconds)))

    def q(p: float) -> float:
        return ages[min(len(ages) - 1, int(p * len(ages)))]

    print(
        f"feat:last age over {args.seconds:.0f} s ({len(ages)} reads): p50 {q(0.5):.0f} ms, "
        f"p95 {q(0.95):.0f} ms, max {ages[-1]:.0f} ms, mean {statistics.mean(ages):.0f} ms"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

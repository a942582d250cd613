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
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from md_feeder.app import start_feeder  # noqa: E402
from md_feeder.config import Settings as MDSettings  # noqa: E402
from s4_router.bootstrap import bootstrap  # noqa: E402
from s4_router.config import Settings  # noqa: E402
from s4_router.entrypoints.api import create_app  # noqa: E402
from svckit import keys  # noqa: E402
from svckit.embedded_redis import EmbeddedRedis  # noqa: E402
from svckit.redisio import make_redis  # noqa: E402
from svckit.store.sqlite import SqliteStore  # noqa: E402


async def measure(seconds: float) -> tuple[list[float], list[float]]:
    with EmbeddedRedis() as server:
        redis = make_redis(server.addresses)
        tmp = Path(tempfile.mkdtemp(prefix="bench-feed-"))
        settings = Settings(
            redis_addresses=server.addresses,
            data_dir=tmp,
            fixtures_dir=REPO / "fixtures",
            route_table_path=REPO / "fixtures" / "route_table.json",
            auth_disabled=True,
        )
        store = SqliteStore(tmp / "store.sqlite3")
        ages: list[float] = []
        source: list[float] = []  # baseline: the age of the venue's newest step on sim:market
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
                    newest = await redis.xrevrange(keys.SIM_MARKET, count=1)
                    now_ms = time.time() * 1000
                    ages.append(now_ms - snap["ts"])
                    if newest:
                        fields = newest[0][1]
                        raw = fields.get(b"data", fields.get("data"))
                        source.append(now_ms - json.loads(raw)["ts"])
                    await asyncio.sleep(0.05)
        finally:
            await store.close()
            await redis.aclose()
    return ages, source


def summary(xs: list[float]) -> dict[str, float]:
    xs = sorted(xs)

    def q(p: float) -> float:
        return xs[min(len(xs) - 1, int(p * len(xs)))]

    return {"n": len(xs), "p50": q(0.5), "p95": q(0.95), "max": xs[-1], "mean": statistics.mean(xs)}


def run(seconds: float = 15.0) -> dict[str, Any]:
    """Ages in ms of `feat:last:BTCUSDT`, beside the age of the newest `sim:market` step (what
    the feeder reads: the floor set by the simulator's step grid), sampled together. The
    snapshot carries its step's ts, so the difference is steps the feeder has not published
    yet; the rest of the age is the grid itself."""
    ages, source = asyncio.run(measure(seconds))
    feat, src = summary(ages), summary(source)
    return {
        "name": "feed_age",
        "params": {"seconds": seconds, "sample_every_ms": 50},
        "feat_last_age_ms": feat,
        "baseline_sim_market_step_age_ms": src,
        "added_by_feeder_p50_ms": feat["p50"] - src["p50"],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--json", type=Path, default=None, help="write the figures here as JSON")
    args = ap.parse_args()
    out = run(args.seconds)
    rows = (
        ("feat_last_age_ms", "feat:last age"),
        ("baseline_sim_market_step_age_ms", "baseline: newest sim:market step"),
    )
    for key, label in rows:
        d = out[key]
        print(
            f"{label} over {args.seconds:.0f} s ({d['n']} reads): p50 {d['p50']:.0f} ms, "
            f"p95 {d['p95']:.0f} ms, max {d['max']:.0f} ms, mean {d['mean']:.0f} ms"
        )
    print(f"added by the feeder (p50): {out['added_by_feeder_p50_ms']:.0f} ms")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

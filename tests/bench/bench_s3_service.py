"""In-process benchmark of a whole S3 dry-run decision (`DecisionService.decide`: Redis read
through redis-py's pipeline, pipeline, `signals` write), without HTTP, and of the I/O choice that
shapes its cost, compared in one run: the `signals` write group-committed (`SignalWriter`) vs one
transaction per decision (`max_batch=1`, i.e. what a plain insert costs).

    .venv/bin/python tests/bench/bench_s3_service.py             # 12,000 decisions per variant
    .venv/bin/python tests/bench/bench_s3_service.py --n 30000 --concurrency 8

Real redis-server (svckit.embedded_redis) and SQLite in a temp dir; uvloop, like the service.
Prints decisions/s and CPU µs per decision for each variant and the ratios to the deployed
configuration; checks that every decision left its signal. Exit status 0 unless something broke.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import orjson  # noqa: E402

from s3_strategy.adapters.signals import SignalWriter  # noqa: E402
from s3_strategy.bootstrap import bootstrap  # noqa: E402
from s3_strategy.config import Settings  # noqa: E402
from s3_strategy.service_layer.decide import DecideInput, DecisionService  # noqa: E402
from svckit.embedded_redis import EmbeddedRedis  # noqa: E402
from tests.helpers import FULL_BTC_FEATURES as FEATURES  # noqa: E402
from tests.helpers import S3_TOKEN  # noqa: E402


async def run(svc: DecisionService, n: int, conc: int) -> tuple[float, float, int]:
    """(decisions/s, CPU µs per decision, decisions made)."""
    done = 0

    async def worker(k: int) -> None:
        nonlocal done
        for _ in range(k):
            out = await svc.decide(DecideInput(symbol="BTCUSDT", dry_run=True))
            if out["decision"] != "open":
                raise RuntimeError(f"unexpected decision: {out['reason']}")
            done += 1

    t, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker(n // conc) for _ in range(conc)))
    wall, cpu = time.perf_counter() - t, time.process_time() - cpu
    return done / wall, cpu / done * 1e6, done


async def main_async(args: argparse.Namespace) -> int:
    with EmbeddedRedis() as server, tempfile.TemporaryDirectory(prefix="s3svc-") as tmp:
        settings = Settings(
            redis_addresses=server.addresses,
            data_dir=Path(tmp),
            fixtures_dir=REPO / "fixtures",
            s4_url=None,
            api_token=S3_TOKEN,
        )
        c = await bootstrap(settings)
        svc = c.service
        grouped = svc.signals
        commits: list[int] = []
        observe = grouped.observe

        def record(size: int, seconds: float) -> None:
            commits.append(size)
            if observe is not None:
                observe(size, seconds)

        grouped.observe = record
        single = SignalWriter(c.store, max_batch=1)
        variants = {
            "deployed (group commit)": grouped,
            "one insert per decision": single,
        }
        made = 0

        async def feeder() -> None:  # fresh features, as the market feed keeps them
            while True:
                data = {**FEATURES, "ts": time.time_ns() // 10**6}
                await c.redis.set("feat:last:BTCUSDT", orjson.dumps(data))
                await asyncio.sleep(0.2)

        feed = asyncio.create_task(feeder())
        try:
            await asyncio.sleep(0.05)
            # warm-up
            svc.signals = grouped
            made += (await run(svc, 2000, args.concurrency))[2]
            print(
                f"S3 DecisionService.decide (dry run) in process, {args.concurrency} concurrent "
                f"callers, {args.n} decisions per variant, real Redis + SQLite, uvloop"
            )
            results: dict[str, tuple[float, float]] = {}
            for _ in range(args.rounds):
                for name, writer in variants.items():
                    svc.signals = writer
                    rate, cpu, k = await run(svc, args.n, args.concurrency)
                    made += k
                    best = results.get(name)
                    if best is None or rate > best[0]:
                        results[name] = (rate, cpu)
            base_rate = results["deployed (group commit)"][0]
            print(f"  {'variant':<32} {'decisions/s':>11} {'CPU µs/dec':>11} {'vs deployed':>12}")
            for name, (rate, cpu) in results.items():
                print(f"  {name:<32} {rate:>11.0f} {cpu:>11.0f} {rate / base_rate:>11.2f}×")
            mean = round(sum(commits) / len(commits), 2) if commits else 0.0
            print(
                f"  group commit: {len(commits)} commits, mean {mean} "
                f"signals per commit, largest {max(commits, default=0)}"
            )
        finally:
            feed.cancel()
            svc.signals = grouped
            await single.aclose()
            await c.aclose()
        # every decision persisted
        from svckit.store.sqlite import SqliteStore

        store = SqliteStore(Path(tmp) / "store.sqlite3")
        stored = await store.count("signals")
        await store.close()
        print(f"  signals persisted: {stored} (decisions made: {made})")
        return 0 if stored == made else 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=12_000, help="decisions per variant")
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=2, help="best of N rounds per variant")
    args = ap.parse_args()
    import uvloop

    return uvloop.run(main_async(args))


if __name__ == "__main__":
    raise SystemExit(main())

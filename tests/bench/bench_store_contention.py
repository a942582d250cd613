"""S3 decisions while S4 writes to the store at the same time (issue 12 point 7), beside a
baseline measured in the same run.

    .venv/bin/python tests/bench/bench_store_contention.py              # defaults below
    .venv/bin/python tests/bench/bench_store_contention.py --n 6000 --s4-orders-per-s 0

What runs: a real redis-server (svckit.embedded_redis) and S3's `DecisionService.decide` in
process (dry runs: Redis read, pipeline, `signals` group commit on SQLite), 8 concurrent callers,
uvloop, like bench_s3_service.py; and, in a subprocess, an S4-like writer on a SqliteStore: per
order one insert into `orders`, two status updates and one `fills` insert (four write
transactions), paced at `--s4-orders-per-s` (0: as fast as it can). Three scenarios, each
`--n` decisions:

* `S3 alone` — the baseline: no other writer;
* `S4 on the same file` — the writer on S3's database file (`make run` puts both services'
  SQLite store in one data dir, as both share one ArangoDB database in production);
* `S4 on its own file` — the writer on another file: no lock contention, only CPU.

Printed per scenario: decisions/s, decision latency p50/p99/max, the longest and the p99 gap of
a 1 ms ticker (how long the event loop was kept from running anything else), and the writes S4
made. Run it on the code before and after a change to compare: the baseline tells the machine's
noise from the change (on a shared 2-core VM expect ±20 %). Exit status 0 unless something
broke.

To measure the previous adapter with this script, put its source first on the path, e.g.
`git worktree add /tmp/base <rev>` then `PYTHONPATH=/tmp/base/libs/svckit/src` before the
command (the writer subprocess inherits it).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import orjson  # noqa: E402

from s3_strategy.bootstrap import bootstrap  # noqa: E402
from s3_strategy.config import Settings  # noqa: E402
from s3_strategy.service_layer.decide import DecideInput, DecisionService  # noqa: E402
from svckit.embedded_redis import EmbeddedRedis  # noqa: E402
from svckit.store.sqlite import SqliteStore  # noqa: E402
from tests.helpers import FULL_BTC_FEATURES as FEATURES  # noqa: E402
from tests.helpers import S3_TOKEN  # noqa: E402


# ---- the S4-like writer (its own process: `--s4-writer PATH`) ---------------------------------
async def s4_writer(path: Path, orders_per_s: float) -> None:
    store = SqliteStore(path)
    await store.bootstrap()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    writes = i = 0
    gap = 1 / orders_per_s if orders_per_s > 0 else 0.0
    t0 = time.perf_counter()
    print("ready", flush=True)
    while not stop.is_set():
        coid = f"s4b-{os.getpid()}-{i}"
        await store.insert(
            "orders",
            {
                "_key": coid,
                "client_order_id": coid,
                "symbol": "BTCUSDT",
                "side": "BUY",
                "status": "NEW",
                "qty": "0.002",
                "intent": FEATURES,
                "created_ts": i,
            },
        )
        await store.update("orders", coid, {"status": "PARTIALLY_FILLED", "filled_qty": "0.001"})
        await store.insert(
            "fills",
            {
                "venue": "sim",
                "order_id": coid,
                "trade_id": f"t{i}",
                "client_order_id": coid,
                "qty": "0.002",
                "price": "65000.5",
                "fee": "0.01",
            },
        )
        await store.update("orders", coid, {"status": "FILLED", "filled_qty": "0.002"})
        writes += 4
        i += 1
        if gap:
            await asyncio.sleep(max(0.0, t0 + i * gap - time.perf_counter()))
        else:
            await asyncio.sleep(0)  # let SIGTERM in
    await store.close()
    print(f"writes {writes} {writes / (time.perf_counter() - t0):.0f}", flush=True)


# ---- S3 in process ----------------------------------------------------------------------------
class Ticker:
    """Wakes every 1 ms; the gaps between wake-ups beyond that are the loop's stalls."""

    def __init__(self) -> None:
        self.gaps: list[float] = []

    async def run(self) -> None:
        last = time.perf_counter()
        while True:
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            self.gaps.append(now - last)
            last = now


async def decisions(svc: DecisionService, n: int, conc: int) -> tuple[float, list[float]]:
    """(decisions/s, latencies in seconds)."""
    lat: list[float] = []

    async def worker(k: int) -> None:
        for _ in range(k):
            t = time.perf_counter()
            out = await svc.decide(DecideInput(symbol="BTCUSDT", dry_run=True))
            lat.append(time.perf_counter() - t)
            if out["decision"] != "open":
                raise RuntimeError(f"unexpected decision: {out['reason']}")

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(n // conc) for _ in range(conc)))
    return len(lat) / (time.perf_counter() - t0), lat


def pct(values: list[float], p: float) -> float:
    return statistics.quantiles(values, n=1000)[int(p * 10) - 1] if len(values) > 1 else 0.0


async def start_writer(path: Path, rate: float) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--s4-writer",
        str(path),
        "--s4-orders-per-s",
        str(rate),
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), timeout=30)
    if line.strip() != b"ready":
        proc.kill()
        await proc.wait()
        raise RuntimeError(f"S4 writer did not start: {line!r}")
    return proc


async def stop_writer(proc: asyncio.subprocess.Process) -> str:
    proc.send_signal(signal.SIGTERM)
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=30)
    parts = out.decode().split()
    return f"{int(parts[1]):>7} ({int(parts[2]):>5}/s)" if parts[:1] == ["writes"] else "?"


async def main_async(args: argparse.Namespace) -> int:
    import svckit.store.sqlite as adapter

    with EmbeddedRedis() as server, tempfile.TemporaryDirectory(prefix="s3contention-") as tmp:
        settings = Settings(
            redis_addresses=server.addresses,
            data_dir=Path(tmp) / "s3",
            fixtures_dir=REPO / "fixtures",
            s4_url=None,
            api_token=S3_TOKEN,
        )
        c = await bootstrap(settings)
        svc = c.service
        own = Path(tmp) / "s4" / "store.sqlite3"
        scenarios: list[tuple[str, Path | None]] = [
            ("S3 alone (baseline)", None),
            ("S4 on the same file", settings.data_dir / "store.sqlite3"),
            ("S4 on its own file", own),
        ]

        async def feeder() -> None:  # fresh features, as the market feed keeps them
            while True:
                data = {**FEATURES, "ts": time.time_ns() // 10**6}
                await c.redis.set("feat:last:BTCUSDT", orjson.dumps(data))
                await asyncio.sleep(0.2)

        feed = asyncio.create_task(feeder())
        made = 0
        rate = "flat out" if args.s4_orders_per_s <= 0 else f"{args.s4_orders_per_s:g} orders/s"
        print(
            f"S3 DecisionService.decide (dry run) in process, {args.concurrency} concurrent "
            f"callers, {args.n} decisions per scenario, real Redis + SQLite, uvloop; S4-like "
            f"writer in a subprocess ({rate}, 4 writes per order); store adapter "
            f"{Path(adapter.__file__).parent.parent.parent}"
        )
        print(
            f"  {'scenario':<22} {'dec/s':>6} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} "
            f"{'loop stall p99/max ms':>22} {'S4 writes':>16}"
        )
        try:
            await asyncio.sleep(0.05)
            made += len((await decisions(svc, 1000, args.concurrency))[1])  # warm-up
            for _ in range(args.rounds):
                for name, writer_path in scenarios:
                    proc = (
                        await start_writer(writer_path, args.s4_orders_per_s)
                        if writer_path
                        else None
                    )
                    ticker = Ticker()
                    tick = asyncio.create_task(ticker.run())
                    try:
                        rate_s, lat = await decisions(svc, args.n, args.concurrency)
                    finally:
                        tick.cancel()
                        writes = await stop_writer(proc) if proc else "-"
                    made += len(lat)
                    stall = [g - 0.001 for g in ticker.gaps]
                    print(
                        f"  {name:<22} {rate_s:>6.0f} {pct(lat, 50) * 1e3:>7.2f} "
                        f"{pct(lat, 99) * 1e3:>7.2f} {max(lat) * 1e3:>7.1f} "
                        f"{pct(stall, 99) * 1e3:>10.2f} / {max(stall) * 1e3:>8.1f} {writes:>16}"
                    )
        finally:
            feed.cancel()
            await c.aclose()
        store = SqliteStore(settings.data_dir / "store.sqlite3")
        stored = await store.count("signals")
        await store.close()
        print(f"  signals persisted: {stored} (decisions made: {made})")
        return 0 if stored == made else 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=4000, help="decisions per scenario")
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--s4-orders-per-s", type=float, default=250.0, help="0: as fast as it can")
    ap.add_argument("--s4-writer", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    import uvloop

    if args.s4_writer is not None:
        uvloop.run(s4_writer(args.s4_writer, args.s4_orders_per_s))
        return 0
    return uvloop.run(main_async(args))


if __name__ == "__main__":
    raise SystemExit(main())

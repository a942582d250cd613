"""S4 throughput on real processes: 1 and 2 replicas, concurrency 1/10/50, with and without venue
faults, beside the exactly-once violations found against the venue's own records (issue 10).

    .venv/bin/python tests/bench/bench_s4_replicas.py                # the whole matrix, ~6 min
    .venv/bin/python tests/bench/bench_s4_replicas.py --replicas 2 --concurrency 10 --no-weight

The stack is the chaos campaign's (:mod:`tests.chaos.procs`): a Redis with AOF, the venue behind
its Binance facade as its own process, and S4 replicas (`python -m s4_router`) in one consumer
group trading through ccxt, one SQLite store file. Process faults are off; "with faults" is the
campaign's venue fault profile (429 with Retry-After, 5xx, connect timeouts, timeouts before and
after acceptance, dropped acks, delayed and duplicated reports) at `--fault-rate`.

For each cell, MARKET intents (BTCUSDT, BUY/SELL alternating) are POSTed to `/orders` at the given
concurrency, spread round-robin over the replicas. A client resends the same body on a 503 that
stored nothing, as S3's publisher does. Figures:

* intents/s — accepted intents over the wall time from the first POST to the last answer;
* submit p50/p95 — from the first POST of an intent to its 2xx answer (retries included);
* violations — the campaign's checks (no child id sent twice, no overfill, every venue fill
  stored once, store = venue, every intent final, one `orders:executed` per outcome), after
  every parent is final. Must be 0.

Then, with the 2-replica fault-free stack, the request weight S4 used per clock minute (its own
budget, `/health` → `weight`) with no live bracket and with `--brackets` live FUT brackets
(ETHUSDT long, stop and take profit 8 % away so they rest), and the difference per bracket.

Baseline in the same run: the 1-replica fault-free cell at concurrency 1 (each figure is printed
beside it). Exit status 0 when there are no violations, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import httpx  # noqa: E402

from tests.chaos.campaign import (  # noqa: E402
    TERMINAL,
    Campaign,
    Config,
    IntentPlan,
    Scenario,
    Stack,
    Violation,
)

D = Decimal


@dataclass
class Cell:
    replicas: int
    faults: bool
    concurrency: int
    intents: int = 0
    accepted: int = 0
    wall_s: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    answers: Counter[str] = field(default_factory=Counter)
    statuses: Counter[str] = field(default_factory=Counter)
    violations: list[Violation] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.accepted / self.wall_s if self.wall_s else 0.0

    def pct(self, q: int) -> float:
        xs = sorted(self.latencies_ms)
        return xs[min(len(xs) - 1, len(xs) * q // 100)] if xs else 0.0


async def post_until_answered(
    http: httpx.AsyncClient, urls: list[str], body: dict[str, Any], cell: Cell
) -> bool:
    """One intent, resent on 503/transport errors (same body: S4 answers a resend idempotently)
    to the next replica; True once it is answered 2xx."""
    for attempt in range(40):
        url = urls[attempt % len(urls)]
        try:
            r = await http.post(f"{url}/orders", json=body)
        except httpx.HTTPError as exc:
            cell.answers[type(exc).__name__] += 1
            await asyncio.sleep(0.2)
            continue
        cell.answers[str(r.status_code)] += 1
        if r.status_code < 300:
            return True
        if r.status_code != 503 or r.json().get("status") == "REJECTED":
            return False  # refused (stored or not): an answer, not accepted
        await asyncio.sleep(0.25)
    return False


async def run_cell(campaign: Campaign, stack: Stack, cell: Cell, n: int, run_id: int) -> None:
    urls = [r.url for r in stack.replicas]
    prefix = f"b{run_id}-"
    plans = [
        IntentPlan(
            body={
                "intent_id": f"i-{prefix}{i}",
                "client_order_id": f"{prefix}{i}",
                "market": "FUT",
                "symbol": "BTCUSDT",
                "side": "BUY" if i % 2 == 0 else "SELL",
                "qty": "0.001",
                "exec_policy": {"type": "MARKET"},
            },
            path="rest",
        )
        for i in range(n)
    ]
    sem = asyncio.Semaphore(cell.concurrency)
    ok: dict[str, bool] = {}

    async def one(i: int, plan: IntentPlan) -> None:
        async with sem:
            plan.body["created_ts"] = int(time.time() * 1000)
            order = urls[i % len(urls) :] + urls[: i % len(urls)]
            t = time.perf_counter()
            ok[plan.coid] = await post_until_answered(campaign.http, order, plan.body, cell)
            if ok[plan.coid]:
                cell.latencies_ms.append((time.perf_counter() - t) * 1000)

    t0 = time.perf_counter()
    await asyncio.gather(*(one(i, p) for i, p in enumerate(plans)))
    cell.wall_s = time.perf_counter() - t0
    cell.intents, cell.accepted = n, sum(ok.values())
    # Every parent final (an accepted MARKET intent ends FILLED, or EXPIRED/REJECTED).
    statuses: dict[str, str] = {}
    deadline = time.monotonic() + 120
    pending = {p.coid for p in plans}
    while pending and time.monotonic() < deadline:
        for coid in list(pending):
            st = await campaign._status(coid)
            if st is None and not ok.get(coid):
                statuses[coid] = "REFUSED"
                pending.discard(coid)
            elif st in TERMINAL:
                statuses[coid] = str(st)
                pending.discard(coid)
        if pending:
            await asyncio.sleep(0.5)
    for coid in pending:
        statuses[coid] = await campaign._status(coid) or "ABSENT"
    cell.statuses.update(statuses.values())
    sc = Scenario(run_id, "bench", prefix, plans)
    found = await campaign.check(sc, plans, statuses)
    for attempt in range(1, 5):  # what a late report settles is not a violation
        if not found:
            break
        await asyncio.sleep(3 * attempt)
        found = await campaign.check(sc, plans, statuses)
    cell.violations = found


async def weight_minute(campaign: Campaign, stack: Stack) -> int:
    """Weight all replicas used in one whole clock minute (S4's budget resets on the minute,
    as Binance's X-MBX-USED-WEIGHT-1M does): read just before the next boundary."""
    now = time.time()
    await asyncio.sleep(60 - now % 60 + 0.5)  # into a fresh minute
    await asyncio.sleep(58.5 - time.time() % 60)
    used = 0
    for r in stack.replicas:
        health = (await campaign.http.get(f"{r.url}/health", timeout=5)).json()
        used += int(health.get("weight", {}).get("FUT", {}).get("used", 0))
    return used


async def open_brackets(campaign: Campaign, stack: Stack, count: int) -> int:
    prices = await campaign.ref_prices()
    ref = prices["ETHUSDT"]
    urls = [r.url for r in stack.replicas]
    opened = 0
    for i in range(count):
        body = {
            "intent_id": f"i-wb-{i}",
            "client_order_id": f"wb-{i}",
            "market": "FUT",
            "symbol": "ETHUSDT",
            "side": "BUY",
            "qty": "0.01",
            "leverage": 5,
            "exec_policy": {"type": "MARKET"},
            "created_ts": int(time.time() * 1000),
            "sl": {"type": "STOP_MARKET", "price": str((ref * D("0.92")).quantize(D("0.01")))},
            "tp": {
                "type": "TAKE_PROFIT_MARKET",
                "price": str((ref * D("1.08")).quantize(D("0.01"))),
            },
        }
        cell = Cell(len(urls), False, 1)
        opened += await post_until_answered(campaign.http, urls[i % len(urls) :], body, cell)
    # Armed: both protective orders of every bracket rest at the venue.
    for _ in range(120):
        live = [a for a in await campaign.venue("algo-orders", "wb-") if a["status"] == "NEW"]
        if len(live) >= 2 * opened:
            break
        await asyncio.sleep(0.5)
    return opened


async def run_stack(
    replicas: int,
    faults: bool,
    levels: list[int],
    n_of: dict[int, int],
    args: argparse.Namespace,
    run_ids: itertools.count[int],
    weight: bool,
) -> tuple[list[Cell], dict[str, float] | None]:
    cfg = Config(
        seed=args.seed,
        fault_rate=args.fault_rate if faults else 0.0,
        process_faults=False,
        quiet=True,
    )
    run_dir = Path(tempfile.mkdtemp(prefix=f"bench-s4-{replicas}r-"))
    stack = Stack(cfg, run_dir, replicas=replicas)
    loop = asyncio.get_running_loop()
    cells: list[Cell] = []
    weights: dict[str, float] | None = None
    try:
        await loop.run_in_executor(None, stack.start)
        campaign = Campaign(cfg, stack)
        watcher = asyncio.create_task(campaign.watch_executed())
        try:
            for c in levels:
                cell = Cell(replicas, faults, c)
                await run_cell(campaign, stack, cell, n_of[c], next(run_ids))
                cells.append(cell)
                print(
                    f"  {replicas} replica(s) faults={'on ' if faults else 'off'} "
                    f"c={c:<3} {cell.accepted}/{cell.intents} accepted "
                    f"{cell.rate:7.1f} intents/s  p50 {cell.pct(50):7.1f} ms  "
                    f"p95 {cell.pct(95):7.1f} ms  violations {len(cell.violations)}",
                    flush=True,
                )
            if weight:
                print(
                    "  weight: one idle clock minute, then one with live brackets ...", flush=True
                )
                idle = await weight_minute(campaign, stack)
                opened = await open_brackets(campaign, stack, args.brackets)
                busy = await weight_minute(campaign, stack)
                limit = cfg.weight_limit
                weights = {
                    "idle": idle,
                    "busy": busy,
                    "brackets": opened,
                    "limit": limit,
                    "per_bracket": (busy - idle) / opened if opened else 0.0,
                }
        finally:
            campaign.stop.set()
            watcher.cancel()
            await campaign.aclose()
    finally:
        await loop.run_in_executor(None, stack.stop)
    return cells, weights


def report(cells: list[Cell], weights: dict[str, float] | None) -> str:
    base = next(
        (c for c in cells if c.replicas == 1 and not c.faults and c.concurrency == 1), cells[0]
    )
    lines = [
        "=" * 100,
        "S4 on real processes (Redis, venue facade, replicas through ccxt); MARKET intents by REST",
        f"{'replicas':>8} {'faults':>6} {'conc':>5} {'accepted':>9} {'intents/s':>10} "
        f"{'x base':>7} {'p50 ms':>8} {'p95 ms':>8} {'x base p50':>10} {'violations':>10}"
        "  outcomes",
    ]
    for c in cells:
        lines.append(
            f"{c.replicas:>8} {'on' if c.faults else 'off':>6} {c.concurrency:>5} "
            f"{c.accepted:>4}/{c.intents:<4} {c.rate:>10.1f} "
            f"{c.rate / base.rate if base.rate else 0:>7.2f} {c.pct(50):>8.1f} {c.pct(95):>8.1f} "
            f"{c.pct(50) / base.pct(50) if base.pct(50) else 0:>10.2f} {len(c.violations):>10}  "
            + ", ".join(f"{k}={v}" for k, v in c.statuses.most_common())
        )
    answers = Counter[str]()
    for c in cells:
        answers.update(c.answers)
    lines.append("HTTP answers: " + ", ".join(f"{k}={v}" for k, v in answers.most_common()))
    lines.append(
        f"baseline: 1 replica, no faults, concurrency 1 "
        f"({base.rate:.1f} intents/s, p50 {base.pct(50):.1f} ms)"
    )
    if weights is not None:
        w = weights
        lines.append(
            f"request weight per clock minute (2 replicas): idle {w['idle']:.0f}, with "
            f"{w['brackets']:.0f} live brackets {w['busy']:.0f} of {w['limit']:.0f} "
            f"({w['busy'] / w['limit']:.1%}); per live bracket {w['per_bracket']:.1f}/min"
        )
    total = sum(len(c.violations) for c in cells)
    lines.append(f"VIOLATIONS: {total}")
    for c in cells:
        lines.extend(v.line() for v in c.violations[:5])
    lines.append("=" * 100)
    return "\n".join(lines)


async def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--replicas", type=int, choices=(1, 2), action="append")
    p.add_argument("--concurrency", type=int, action="append")
    p.add_argument("--faults", choices=("off", "on", "both"), default="both")
    p.add_argument("--fault-rate", type=float, default=0.03)
    p.add_argument("--seed", type=int, default=int(os.environ.get("SEED") or 20261204))
    p.add_argument(
        "--intents",
        type=int,
        default=0,
        help="intents per cell (default: 40 at c=1, 200 at c=10, 300 at c=50)",
    )
    p.add_argument("--brackets", type=int, default=20)
    p.add_argument("--no-weight", action="store_true")
    args = p.parse_args()
    replicas = args.replicas or [1, 2]
    levels = args.concurrency or [1, 10, 50]
    n_of = {c: args.intents or {1: 40, 10: 200}.get(c, 300) for c in levels}
    faults = {"off": [False], "on": [True], "both": [False, True]}[args.faults]
    run_ids = itertools.count(1)
    cells: list[Cell] = []
    weights = None
    for r in replicas:
        for f in faults:
            measure_weight = not args.no_weight and r == max(replicas) and not f
            got, w = await run_stack(r, f, levels, n_of, args, run_ids, measure_weight)
            cells += got
            weights = w or weights
    print(report(cells, weights))
    return 1 if any(c.violations for c in cells) else 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))

"""Maker→Taker vs plain market orders on the recorded BTCUSDT data: slippage vs arrival mid.

    .venv/bin/python tests/bench/bench_s4_slippage.py                # 200 intents each
    .venv/bin/python tests/bench/bench_s4_slippage.py --n 500 --gap-s 30

Two identical venues (venue.defaults.default_venue: recorded Binance BTCUSDT quotes and trades,
replayed on a manual clock), two S4 routers, the same schedule of intents (0.002 BTC, one every
`--gap-s` simulated seconds, sides alternating): one arm sends them as MAKER_TAKER with the
route table's wait for their notional (band 1: 1,500 ms), the other as MARKET. The clock is
advanced in 100 ms steps so resting maker orders can fill against the replayed tape.

Slippage per intent = (average fill price − arrival mid) / arrival mid × 10⁴, signed so that
positive is adverse (paid above mid on a buy). Prints, per arm: fill completion, maker fill
ratio (maker quantity / filled quantity), slippage p50/p95/mean, fees. Target (issue 5): the
Maker→Taker median below the market median. Exit status 0 either way.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import statistics
import sys
import tempfile
from decimal import Decimal
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from svckit.clock import ManualClock  # noqa: E402
from svckit.embedded_redis import EmbeddedRedis  # noqa: E402
from svckit.redisio import RedisClient, make_redis  # noqa: E402
from tests.chaos.rig import INSTRUMENTS, T0, s4_rig, step_all  # noqa: E402
from venue.defaults import default_venue  # noqa: E402

D = Decimal


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * len(xs)))]


async def run_arm(
    redis: RedisClient, tmp: Path, *, policy: dict[str, Any], n: int, gap_s: int, seed: int
) -> dict[str, Any]:
    clock = ManualClock(T0)
    venue = default_venue(clock=clock, seed=seed, instruments=INSTRUMENTS)
    slips: list[float] = []
    filled = maker = fees = D(0)
    complete = 0
    incomplete: dict[str, int] = {}
    async with s4_rig(redis, tmp, clock=clock, venue=venue, poll_interval_ms=100) as r:
        for i in range(n):
            coid = f"sl-{i}"
            await r.submit(
                client_order_id=coid,
                intent_id=f"i{i}",
                side="BUY" if i % 2 == 0 else "SELL",
                qty="0.002",
                exec_policy=policy,
            )
            end = clock.now_ms() + gap_s * 1000
            while clock.now_ms() < end:
                clock.advance(100)
                if r.c.manager.active:
                    await step_all(r.c.manager)
            view = await r.c.router.get(coid)
            assert view is not None
            o = view["order"]
            if D(o["filled_qty"]) <= 0:
                continue
            if o["status"] == "FILLED":
                complete += 1
            else:
                why = f"{o['status']}: {o['message']}".split(" 0.")[0]
                incomplete[why] = incomplete.get(why, 0) + 1
            sign = 1 if o["side"] == "BUY" else -1
            arrival = D(o["arrival_mid"])
            slips.append(float((D(o["avg_price"]) - arrival) / arrival * 10_000 * sign))
            for f in view["fills"]:
                filled += D(f["qty"])
                fees += D(f["fee"])
                if f["liquidity"] == "MAKER":
                    maker += D(f["qty"])
    return {
        "slips": slips,
        "complete": complete,
        "filled": filled,
        "maker": maker,
        "fees": fees,
        "incomplete": incomplete,
    }


async def measure(n: int, gap_s: int, seed: int) -> dict[str, Any]:
    with EmbeddedRedis() as server:
        redis = make_redis(server.addresses)
        try:
            with tempfile.TemporaryDirectory() as tmp:
                mt = await run_arm(
                    redis, Path(tmp), policy={"type": "MAKER_TAKER"}, n=n, gap_s=gap_s, seed=seed
                )
            await redis.flushdb()
            with tempfile.TemporaryDirectory() as tmp:
                mk = await run_arm(
                    redis, Path(tmp), policy={"type": "MARKET"}, n=n, gap_s=gap_s, seed=seed
                )
        finally:
            await redis.aclose()
    arms: dict[str, Any] = {}
    for name, arm in (("MAKER_TAKER", mt), ("MARKET", mk)):
        s = arm["slips"]
        arms[name] = {
            "filled_complete": arm["complete"],
            "intents": n,
            "maker_fill_ratio": float(arm["maker"] / arm["filled"]) if arm["filled"] else 0.0,
            "slippage_bps": {
                "n": len(s),
                "p50": pct(s, 0.5),
                "p95": pct(s, 0.95),
                "mean": statistics.fmean(s),
            }
            if s
            else {"n": 0},
            "fees_usdt": float(arm["fees"]),
            "incomplete": arm["incomplete"],
            "raw_bps": s,
        }
    better = bool(mt["slips"] and mk["slips"]) and pct(mt["slips"], 0.5) < pct(mk["slips"], 0.5)
    return {
        "name": "s4_slippage",
        "params": {"n": n, "gap_s": gap_s, "seed": seed, "qty": "0.002", "symbol": "BTCUSDT"},
        "arms": arms,  # MARKET is the baseline of MAKER_TAKER, same tape, same schedule
        "target": {"maker_taker_median_below_market": better, "met": better},
    }


def run(n: int = 200, gap_s: int = 20, seed: int = 7) -> dict[str, Any]:
    """The figures as data (bps, positive = adverse); see the module doc."""
    return asyncio.run(measure(n, gap_s, seed))


def print_report(r: dict[str, Any]) -> None:
    p = r["params"]
    print(
        f"recorded BTCUSDT replay, {p['n']} intents of 0.002 BTC, one every {p['gap_s']} s, "
        f"seed {p['seed']}"
    )
    for name, arm in r["arms"].items():
        s = arm["slippage_bps"]
        print(
            f"  {name:<11} filled {arm['filled_complete']}/{p['n']}  maker fill ratio "
            f"{arm['maker_fill_ratio']:.1%}  slippage bps p50 {s.get('p50', 0):+.3f}  p95 "
            f"{s.get('p95', 0):+.3f}  mean {s.get('mean', 0):+.3f}  fees "
            f"{arm['fees_usdt']:.4f} USDT"
        )
        if arm["incomplete"]:
            print(f"    not completely filled: {arm['incomplete']}")
    met = r["target"]["met"]
    print(f"target (Maker→Taker median slippage below MARKET's): {'MET' if met else 'NOT MET'}")


if __name__ == "__main__":
    logging.basicConfig(level=logging.ERROR)  # alerts go to the alerts stream; keep stdout clean
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--gap-s", type=int, default=20)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--json", type=Path, default=None, help="write the figures here as JSON")
    a = ap.parse_args()
    out = run(a.n, a.gap_s, a.seed)
    print_report(out)
    if a.json:
        a.json.write_text(json.dumps(out, indent=1))

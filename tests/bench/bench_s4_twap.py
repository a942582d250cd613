"""A TWAP parent on the recorded BTCUSDT data: its schedule against the price, beside one MARKET
order of the same size at arrival, on an identical venue in the same run.

    .venv/bin/python tests/bench/bench_s4_twap.py                   # 0.05 BTC, 4 slices, 30 s apart
    .venv/bin/python tests/bench/bench_s4_twap.py --qty 0.1 --slices 20 --gap-ms 15000

The venue is venue.defaults.default_venue (recorded Binance BTCUSDT quotes and trades replayed on
a manual clock); S4 is the real router (s4_rig: real Redis, SQLite store). The TWAP intent is
submitted once and the clock advanced in 100 ms steps, stepping the execution manager, until the
parent is final; the venue mid is sampled every step. The baseline arm sends the same quantity as
one MARKET intent at the same simulated instant on a second venue built with the same seed.

Figures (bps vs the arrival mid, positive = adverse): the TWAP's average fill price, the
window's time-weighted mid (what a TWAP aims at), the MARKET arm's average price; each slice's
due time, fill time, price and quantity (the report plots them over the mid). Exit status 0.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
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
from tradekit.enums import Market  # noqa: E402
from venue.defaults import default_venue  # noqa: E402

D = Decimal
FINAL = {"FILLED", "CANCELED", "REJECTED", "EXPIRED"}


async def run_arm(
    redis: RedisClient,
    tmp: Path,
    *,
    policy: dict[str, Any],
    qty: str,
    side: str,
    seed: int,
    lead_s: int,
    max_s: int,
) -> dict[str, Any]:
    clock = ManualClock(T0)
    venue = default_venue(clock=clock, seed=seed, instruments=INSTRUMENTS)
    mids: list[tuple[int, float]] = []

    def sample() -> None:
        book = venue.book(Market.FUT, "BTCUSDT", depth=1)
        if book.bids and book.asks:
            mids.append((clock.now_ms(), float((book.bids[0][0] + book.asks[0][0]) / 2)))

    async with s4_rig(redis, tmp, clock=clock, venue=venue, poll_interval_ms=100) as r:
        for _ in range(lead_s * 10):  # some tape before the order, for the plot
            clock.advance(100)
            sample()
        t_submit = clock.now_ms()
        outcome = await r.submit(
            client_order_id="tw-1", intent_id="tw-i1", side=side, qty=qty, exec_policy=policy
        )
        if await r.c.router.get("tw-1") is None:
            raise RuntimeError(f"the intent was not taken: {outcome.response}")
        end = clock.now_ms() + max_s * 1000
        while clock.now_ms() < end:
            clock.advance(100)
            sample()
            if r.c.manager.active:
                await step_all(r.c.manager)
            view = await r.c.router.get("tw-1")
            if view is not None and view["order"]["status"] in FINAL:
                break
        for _ in range(50):  # a little tape after, for the plot
            clock.advance(100)
            sample()
        view = await r.c.router.get("tw-1")
        assert view is not None
    o = view["order"]
    fills = [
        {
            "ts": f["ts_fill"],
            "price": float(f["price"]),
            "qty": float(f["qty"]),
            "liquidity": f["liquidity"],
            "child": f["client_order_id"],
        }
        for f in view["fills"]
    ]
    slices = [
        {"index": s["index"], "qty": float(D(s["qty"])), "due_ms": s["due_ms"]}
        for s in (o.get("exec_state") or {}).get("slices") or []
    ]
    return {
        "status": o["status"],
        "filled_qty": float(D(o["filled_qty"])),
        "avg_price": float(D(o["avg_price"])) if o.get("avg_price") else None,
        "arrival_mid": float(D(o["arrival_mid"])) if o.get("arrival_mid") else None,
        "t_submit": t_submit,
        "fills": fills,
        "mids": mids,
        "plan": slices,
    }


def bps(price: float | None, ref: float | None, sign: int) -> float | None:
    if price is None or not ref:
        return None
    return (price - ref) / ref * 10_000 * sign


async def measure(
    qty: str, slices: int, gap_ms: int, side: str, seed: int, max_s: int
) -> dict[str, Any]:
    policy = {"type": "TWAP", "slices": slices, "gap_ms": gap_ms}
    with EmbeddedRedis() as server:
        redis = make_redis(server.addresses)
        try:
            with tempfile.TemporaryDirectory() as tmp:
                tw = await run_arm(
                    redis,
                    Path(tmp),
                    policy=policy,
                    qty=qty,
                    side=side,
                    seed=seed,
                    lead_s=20,
                    max_s=max_s,
                )
            await redis.flushdb()
            with tempfile.TemporaryDirectory() as tmp:
                mk = await run_arm(
                    redis,
                    Path(tmp),
                    policy={"type": "MARKET"},
                    qty=qty,
                    side=side,
                    seed=seed,
                    lead_s=20,
                    max_s=30,
                )
        finally:
            await redis.aclose()
    sign = 1 if side == "BUY" else -1
    arrival = tw["arrival_mid"]
    window = [
        m
        for t, m in tw["mids"]
        if tw["fills"] and t >= tw["t_submit"] and t <= tw["fills"][-1]["ts"]
    ]
    twap_mid = sum(window) / len(window) if window else None
    return {
        "name": "s4_twap",
        "params": {"qty": qty, "slices": slices, "gap_ms": gap_ms, "side": side, "seed": seed},
        "twap": tw,
        "market_baseline": {
            k: mk[k] for k in ("status", "filled_qty", "avg_price", "arrival_mid", "fills")
        },
        "figures_bps": {
            "twap_avg_vs_arrival": bps(tw["avg_price"], arrival, sign),
            "window_mid_vs_arrival": bps(twap_mid, arrival, sign),
            "twap_avg_vs_window_mid": bps(tw["avg_price"], twap_mid, sign),
            "market_avg_vs_arrival": bps(mk["avg_price"], mk["arrival_mid"], sign),
        },
        "duration_s": (tw["fills"][-1]["ts"] - tw["t_submit"]) / 1000 if tw["fills"] else None,
        "fills": len(tw["fills"]),
    }


def run(
    qty: str = "0.05",
    slices: int = 4,
    gap_ms: int = 30_000,
    side: str = "BUY",
    seed: int = 7,
    max_s: int = 900,
) -> dict[str, Any]:
    """The figures as data; see the module doc."""
    return asyncio.run(measure(qty, slices, gap_ms, side, seed, max_s))


def print_report(r: dict[str, Any]) -> None:
    p, f = r["params"], r["figures_bps"]

    def fmt(v: float | None) -> str:
        return "n/a" if v is None else f"{v:+.2f} bps"

    print(
        f"TWAP {p['side']} {p['qty']} BTC in {p['slices']} slices every {p['gap_ms']} ms "
        f"(recorded BTCUSDT, seed {p['seed']}): {r['twap']['status']}, {r['fills']} fills "
        f"over {r['duration_s']} s"
    )
    print(f"  TWAP average vs arrival mid        {fmt(f['twap_avg_vs_arrival'])}")
    print(f"  window's mean mid vs arrival mid   {fmt(f['window_mid_vs_arrival'])}")
    print(f"  TWAP average vs window's mean mid  {fmt(f['twap_avg_vs_window_mid'])}")
    print(f"  baseline: one MARKET at arrival    {fmt(f['market_avg_vs_arrival'])}")


if __name__ == "__main__":
    logging.basicConfig(level=logging.ERROR)  # alerts go to the alerts stream; keep stdout clean
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--qty", default="0.05")
    ap.add_argument("--slices", type=int, default=4, help="≤ S4_TWAP_MAX_SLICES (4)")
    ap.add_argument("--gap-ms", type=int, default=30_000)
    ap.add_argument("--side", choices=("BUY", "SELL"), default="BUY")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--json", type=Path, default=None, help="write the figures here as JSON")
    a = ap.parse_args()
    out = run(a.qty, a.slices, a.gap_ms, a.side, a.seed)
    print_report(out)
    if a.json:
        a.json.write_text(json.dumps(out, indent=1))

"""Tick-to-trade on the simulator: a feature update in Redis → a live S3 decision → S4 → the venue
order, beside a floor measured in the same run.

    .venv/bin/python tests/bench/bench_tick_to_trade.py                 # 300 ticks, 250 ms apart
    .venv/bin/python tests/bench/bench_tick_to_trade.py --n 1000 --gap-ms 50 --json out.json

What runs (all real processes, free loopback ports): one redis-server (svckit.embedded_redis);
S4 as `python -m s4_router` does it (uvicorn, the in-process venue simulator `S4_EXCHANGE=sim`
publishing its steps to `sim:market`, the `orders:intent` consumer) with one measuring hook: the
exchange adapter's `place_order` notes `time.time_ns()` when an order reaches the venue and when
the venue has acknowledged it (`--serve-s4`, below; nothing else in S4 is changed); S3 exactly
as deployed (`python -m s3_strategy`, S3_S4_URL → S4, so every intent goes out on both paths);
and a bare FastAPI app with the same bearer auth and a latency histogram (the floor's HTTP hop,
from bench_s3_http.py).

This script is the market-data feeder: it follows `sim:market` with md_feeder's own
`SimStreamFeed` (the same calculators and warm-up), and for each tick writes `mkt:tick`,
`mkt:depth` and `feat:last:BTCUSDT` with md_feeder's `publish_snapshots` (one pipeline, what
md_feeder writes), stamped with the current time, then at once sends a live `POST /decide`
(`sideHint` alternating BUY/SELL, so the position nets out). The clock starts before the
feature write (t0) and stops when the venue has the order:

* **tick → venue order** (the target): t0 → the entry's first child reaching the venue
  (`place_order` entered; for the default bundle's Maker→Taker that is the post-only limit);
* tick → venue ack, and tick → `/decide` answered (S3 answers once S4 has answered and the
  signal carries the publish report).

Floor, interleaved with the samples (same machine load): the same feature write plus one HTTP
round trip to the bare app ("Redis write + one HTTP hop"); the chain has that plus S3's Redis
reads, lock and idempotency claim, the signal's group commit, a second HTTP hop to S4, S4's
intake (idempotency, store, risk checks), so ratio ≈ 2–4 is the healthy range.

The bench runs with a copy of fixtures/ whose bundle raises the risk budget and with
S3_CONCURRENT_ENTRIES_PER_MARKET high, so consecutive ticks may open (otherwise every tick after
the first is a POSITION_OPEN skip, which measures nothing). Ticks are paced `--gap-ms` apart
(default 250 ms: every tick opens a Maker→Taker entry with SL/TP, so S4 works on several
executions and brackets at any moment; at 50 ms, 20 entries a second on one symbol, S4's
background work dominates the tail). Entries S4's liquidity probe held back on purpose
(`LIQUIDITY_PROBE` DELAY on `router:events`) are counted and also left out in one line.

Target (issue 15): tick → venue order p50 ≤ 2 ms, p99 ≤ 5 ms. Exit status 0 unless something
broke (a benchmark, not a test).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import orjson  # noqa: E402

from svckit.embedded_redis import EmbeddedRedis, free_port  # noqa: E402

SYMBOL = "BTCUSDT"
S3_TOKEN = "bench-s3-" + os.urandom(12).hex()
S4_TOKEN = "bench-s4-" + os.urandom(12).hex()
_CHILD = re.compile(r"-E\d+$")
TARGET_P50_MS, TARGET_P99_MS = 2.0, 5.0
NOTES = "s4-places.json"


# ---- S4 with the measuring hook (its own process: `--serve-s4 PORT OUT`) ---------------------
def serve_s4(out_path: str) -> None:
    """`python -m s4_router`, plus notes of when each intent enters S4's router (by path) and
    when each order reaches the venue and is acknowledged (`time.time_ns()`, kept in memory
    and written at exit, so the hook costs two clock reads and an append)."""
    from s4_router.adapters.exchange import sim_client
    from s4_router.adapters.exchange.base import ExchangeOrder, PlaceOrderRequest
    from s4_router.config import Settings
    from s4_router.entrypoints.api import create_app
    from s4_router.service_layer import router as router_mod
    from svckit.runner import run_service
    from tradekit.intents import OrderIntent

    notes: list[tuple[str, str, int, int]] = []
    place = sim_client.SimExchange.place_order
    submit = router_mod.OrderRouter.submit

    async def noted_place(self: sim_client.SimExchange, req: PlaceOrderRequest) -> ExchangeOrder:
        t_in = time.time_ns()
        order = await place(self, req)
        notes.append(("place", req.client_order_id, t_in, time.time_ns()))
        return order

    async def noted_submit(
        self: router_mod.OrderRouter,
        intent: OrderIntent,
        *,
        source: str,
        sync_wait_ms: int | None = None,
    ) -> Any:
        notes.append((f"intake:{source}", intent.client_order_id, time.time_ns(), 0))
        return await submit(self, intent, source=source, sync_wait_ms=sync_wait_ms)

    sim_client.SimExchange.place_order = noted_place  # type: ignore[method-assign]
    router_mod.OrderRouter.submit = noted_submit  # type: ignore[method-assign]

    def _exit(signum: int, frame: object) -> None:
        raise SystemExit(0)

    # uvicorn re-raises the SIGTERM it caught once it has shut down; with the default action
    # the process would die there and never write the notes.
    signal.signal(signal.SIGTERM, _exit)
    try:
        run_service("s4-router", Settings, create_app)
    finally:
        Path(out_path).write_bytes(orjson.dumps(notes))


# ---- a minimal keep-alive HTTP/1.1 client (costs the servers' CPU as little as possible) ------
class Conn:
    def __init__(self, port: int, token: str) -> None:
        self.port, self.token = port, token
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        assert self.reader is not None and self.writer is not None
        head = (
            f"POST {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
            f"Authorization: Bearer {self.token}\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        self.writer.write(head.encode() + body)
        raw = await self.reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in raw.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        return int(raw[9:12]), await self.reader.readexactly(length)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(Exception):
                await self.writer.wait_closed()


def wait_healthy(port: int, proc: subprocess.Popen[bytes], within_s: float = 120.0) -> None:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server on :{port} exited early with {proc.returncode}")
        url = f"http://127.0.0.1:{port}/health"
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2) as resp:
            if resp.status == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"no healthy HTTP server on :{port} after {within_s}s")


def stop_proc(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def pcts(xs: list[float]) -> dict[str, float]:
    """n, p50/p90/p99/max/mean in ms (xs in ms)."""
    if not xs:
        return {"n": 0}
    s = sorted(xs)

    def q(p: float) -> float:
        return s[min(len(s) - 1, int(len(s) * p))]

    return {
        "n": len(s),
        "p50": q(0.5),
        "p90": q(0.9),
        "p99": q(0.99),
        "max": s[-1],
        "mean": sum(s) / len(s),
    }


def bench_fixtures(dst: Path) -> Path:
    """fixtures/ with a risk budget no tick reaches (the bench measures latency, not limits)."""
    shutil.copytree(REPO / "fixtures", dst)
    path = dst / "config_bundle.json"
    bundle = json.loads(path.read_text())
    bundle["params"]["risk"]["budget"]["max_margin_in_flight_usdt"] = 10_000_000
    path.write_text(json.dumps(bundle, indent=1))
    return dst


# ---- the run ----------------------------------------------------------------------------------
@dataclasses.dataclass
class Stack:
    redis_addr: str
    s3_port: int
    s4_port: int
    bare_port: int
    procs: list[subprocess.Popen[bytes]]


def start_stack(work: Path, redis_addr: str, paths: str = "both") -> Stack:
    """S4 (hooked), S3 and the bare app as processes on free loopback ports. `paths`: "both"
    (as deployed: XADD orders:intent and POST S4 /orders) or "stream" (S3_S4_URL empty)."""
    fixtures = bench_fixtures(work / "fixtures")
    s3_port, s4_port, bare_port = free_port(), free_port(), free_port()
    base = {k: v for k, v in os.environ.items() if not k.startswith(("S3_", "S4_", "MD_"))}
    env = base | {
        "PYTHONPATH": str(REPO),
        "BENCH_TOKEN": S3_TOKEN,
        "S3_REDIS_ADDRESSES": redis_addr,
        "S3_PORT": str(s3_port),
        "S3_DATA_DIR": str(work),
        "S3_FIXTURES_DIR": str(fixtures),
        "S3_API_TOKEN": S3_TOKEN,
        "S3_S4_URL": f"http://127.0.0.1:{s4_port}" if paths == "both" else "",
        "S3_S4_API_TOKEN": S4_TOKEN,
        "S3_CONCURRENT_ENTRIES_PER_MARKET": "1000000",
        "S3_LOG_LEVEL": "WARNING",
        "S4_REDIS_ADDRESSES": redis_addr,
        "S4_PORT": str(s4_port),
        "S4_DATA_DIR": str(work),
        "S4_FIXTURES_DIR": str(fixtures),
        "S4_API_TOKEN": S4_TOKEN,
        "S4_ROUTE_TABLE_PATH": str(fixtures / "route_table.json"),
        "S4_LOG_LEVEL": "ERROR",
    }
    me = str(Path(__file__).resolve())
    bare = str(REPO / "tests" / "bench" / "bench_s3_http.py")
    cmds = [
        [sys.executable, me, "--serve-s4", str(work / NOTES)],
        [sys.executable, "-m", "s3_strategy"],
        [sys.executable, bare, "--serve-bare", str(bare_port)],
    ]
    procs = [subprocess.Popen(cmd, env=env, cwd=REPO) for cmd in cmds]
    return Stack(redis_addr, s3_port, s4_port, bare_port, procs)


async def measure(
    stack: Stack,
    n: int,
    gap_ms: float,
    warmup: int,
    sides: list[str],
    progress: Callable[[str], None],
) -> dict[str, Any]:
    """Drive the ticks; returns the client-side samples (the venue side is in S4's notes)."""
    from md_feeder.publishing import publish_snapshots
    from md_feeder.sim_stream import SimStreamFeed
    from svckit.redisio import make_redis

    samples: list[dict[str, Any]] = []
    floor_ms: list[float] = []
    redis_ms: list[float] = []
    reasons: Counter[str] = Counter()
    redis = make_redis([stack.redis_addr])
    s3, bare = Conn(stack.s3_port, S3_TOKEN), Conn(stack.bare_port, S3_TOKEN)
    try:
        feed = SimStreamFeed(redis=redis, symbols=[SYMBOL], block_ms=2000)
        while SYMBOL not in feed.last:  # the venue's first published step
            await feed.read_once()
        feed.block_ms = 0
        await s3.open()
        await bare.open()
        total = warmup + n
        t_start = time.monotonic()
        last_ts = 0
        for i in range(total):
            # Catch up with the venue's steps (md_feeder's calculators), outside the clock.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(feed.read_once(), 0.05)
            # The feature ts is part of the client order id: strictly increasing.
            ts = max(time.time_ns() // 1_000_000, last_ts + 1)
            sample = dataclasses.replace(feed._sample(SYMBOL), ts=ts)
            body = orjson.dumps({"symbol": SYMBOL, "sideHint": sides[i % len(sides)]})
            # The floor: the same feature write, then one bare authenticated HTTP hop.
            f0 = time.perf_counter()
            await publish_snapshots(redis, [sample], feed.calc, feed.ttl_s, feed.metrics)
            f1 = time.perf_counter()
            await bare.post("/decide", body)
            f2 = time.perf_counter()
            # The tick itself (a fresh ts, so the decision is a new one).
            last_ts = ts + 1
            sample = dataclasses.replace(sample, ts=last_ts)
            t0_ns = time.time_ns()
            p0 = time.perf_counter()
            await publish_snapshots(redis, [sample], feed.calc, feed.ttl_s, feed.metrics)
            status, raw = await s3.post("/decide", body)
            p1 = time.perf_counter()
            if status != 200:
                raise RuntimeError(f"/decide answered {status}: {raw[:300]!r}")
            answer = orjson.loads(raw)
            if i >= warmup:
                reasons["OPEN" if answer["decision"] == "open" else answer["reason"]] += 1
                floor_ms.append((f2 - f0) * 1000)
                redis_ms.append((f1 - f0) * 1000)
                rec: dict[str, Any] = {"t0_ns": t0_ns, "answer_ms": (p1 - p0) * 1000}
                if answer["decision"] == "open":
                    rec["coid"] = answer["intent"]["client_order_id"]
                samples.append(rec)
            done = i + 1
            if done % 100 == 0 or done == total:
                eta = (time.monotonic() - t_start) / done * (total - done)
                progress(f"tick-to-trade {done}/{total} ticks, ETA {eta:.0f}s")
            await asyncio.sleep(gap_ms / 1000)
        delayed = await probe_delays(redis)
    finally:
        await s3.close()
        await bare.close()
        await redis.aclose()
    return {
        "samples": samples,
        "floor_ms": floor_ms,
        "redis_ms": redis_ms,
        "reasons": reasons,
        "delayed": delayed,
    }


async def probe_delays(redis: Any) -> dict[str, int]:
    """Parents whose first child S4's liquidity probe held back on purpose (spread or top-1
    depth out of bounds: `LIQUIDITY_PROBE` with action DELAY on `router:events`), with the
    delay asked: policy, not latency, so the report shows the figures without them too."""
    out: dict[str, int] = {}
    cursor = "-"
    while True:
        batch = await redis.xrange("router:events", min=cursor, count=2000)
        for _id, fields in batch:
            ev = orjson.loads(fields[b"data"] if b"data" in fields else fields["data"])
            if ev.get("event") == "LIQUIDITY_PROBE" and ev["data"].get("action") == "DELAY":
                coid = ev.get("client_order_id") or ""
                out[coid] = out.get(coid, 0) + int(ev["data"].get("delay_ms") or 0)
        if len(batch) < 2000:
            return out
        last = batch[-1][0]
        cursor = "(" + (last.decode() if isinstance(last, bytes) else str(last))


def figures(m: dict[str, Any], notes: list[tuple[str, str, int, int]]) -> dict[str, Any]:
    """Joins the client's samples with S4's notes by client order id."""
    first: dict[str, tuple[int, int]] = {}
    intake: dict[str, tuple[int, str]] = {}
    for kind, coid, t_in, t_ack in notes:
        if kind == "place":
            parent = _CHILD.sub("", coid)
            if parent not in first or t_in < first[parent][0]:
                first[parent] = (t_in, t_ack)
        elif coid not in intake or t_in < intake[coid][0]:
            intake[coid] = (t_in, kind.partition(":")[2])
    to_order: list[float] = []
    to_ack: list[float] = []
    to_intake: list[float] = []
    in_s4: list[float] = []
    first_path: Counter[str] = Counter()
    opened = [s for s in m["samples"] if "coid" in s]
    missing = 0
    for s in opened:
        hit = first.get(s["coid"])
        if hit is None:
            missing += 1
            continue
        to_order.append((hit[0] - s["t0_ns"]) / 1e6)
        to_ack.append((hit[1] - s["t0_ns"]) / 1e6)
        if s["coid"] in intake:
            t_intake, path = intake[s["coid"]]
            first_path[path] += 1
            to_intake.append((t_intake - s["t0_ns"]) / 1e6)
            in_s4.append((hit[0] - t_intake) / 1e6)
    undelayed = [
        (first[s["coid"]][0] - s["t0_ns"]) / 1e6
        for s in opened
        if s["coid"] in first and s["coid"] not in m["delayed"]
    ]
    t2t, floor = pcts(to_order), pcts(m["floor_ms"])
    met = bool(to_order) and t2t["p50"] <= TARGET_P50_MS and t2t["p99"] <= TARGET_P99_MS
    return {
        "ticks": len(m["samples"]),
        "decisions": dict(m["reasons"]),
        "opened": len(opened),
        "opened_without_venue_order": missing,
        "tick_to_venue_order_ms": t2t,
        "tick_to_venue_ack_ms": pcts(to_ack),
        "tick_to_decide_answer_ms": pcts([s["answer_ms"] for s in m["samples"]]),
        "tick_to_venue_order_not_probe_delayed_ms": pcts(undelayed),
        "probe_delayed": {
            "parents": sum(1 for s in opened if s["coid"] in m["delayed"]),
            "delay_ms_asked": pcts(
                [float(m["delayed"][s["coid"]]) for s in opened if s["coid"] in m["delayed"]]
            ),
        },
        "split": {
            "tick_to_s4_intake_ms": pcts(to_intake),
            "s4_intake_to_venue_order_ms": pcts(in_s4),
            "first_path_into_s4": dict(first_path),
        },
        "baseline_redis_write_plus_http_hop_ms": floor,
        "baseline_redis_write_ms": pcts(m["redis_ms"]),
        "ratio_p50": t2t["p50"] / floor["p50"] if to_order and floor["n"] else None,
        "ratio_p99": t2t["p99"] / floor["p99"] if to_order and floor["n"] else None,
        "target": {"p50_ms": TARGET_P50_MS, "p99_ms": TARGET_P99_MS, "met": met},
        "raw": {"tick_to_venue_order_ms": to_order, "baseline_ms": m["floor_ms"]},
    }


def start_profilers(stack: Stack, out: Path) -> list[subprocess.Popen[bytes]]:
    """py-spy on S3 and S4 (collapsed stacks, idle frames dropped) for the whole run."""
    spy = Path(sys.executable).with_name("py-spy")
    out.mkdir(parents=True, exist_ok=True)
    return [
        subprocess.Popen(
            [
                str(spy),
                "record",
                "--pid",
                str(p.pid),
                "--format",
                "raw",
                "--rate",
                "500",
                "--nonblocking",
                "-o",
                str(out / f"{name}.folded"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for name, p in (("s4", stack.procs[0]), ("s3", stack.procs[1]))
    ]


def run(
    n: int = 300,
    gap_ms: float = 250.0,
    warmup: int = 50,
    sides: str = "BUY",
    progress: Callable[[str], None] | None = None,
    profile: Path | None = None,
    paths: str = "both",
) -> dict[str, Any]:
    """The figures as data (see the module doc); `progress` gets a line every 100 ticks;
    `profile`: a directory for py-spy's collapsed stacks of S3 and S4 (s3.folded, s4.folded)."""
    import uvloop

    say = progress or (lambda line: print(f"progress: {line}", flush=True))
    work = Path(tempfile.mkdtemp(prefix="t2t-bench-"))
    try:
        with EmbeddedRedis() as server:
            stack = start_stack(work, server.addresses[0], paths)
            spies: list[subprocess.Popen[bytes]] = []
            try:
                for port, proc in zip(
                    (stack.s4_port, stack.s3_port, stack.bare_port), stack.procs, strict=True
                ):
                    wait_healthy(port, proc)
                if profile is not None:  # started once up: start-up imports are not the run
                    spies = start_profilers(stack, profile)
                m = uvloop.run(measure(stack, n, gap_ms, warmup, sides.upper().split(","), say))
            finally:
                for spy in spies:  # py-spy writes its file on SIGINT
                    spy.send_signal(signal.SIGINT)
                    spy.wait(timeout=30)
                for p in reversed(stack.procs):
                    stop_proc(p)
        notes_file = work / NOTES
        notes = orjson.loads(notes_file.read_bytes()) if notes_file.exists() else []
    finally:
        shutil.rmtree(work, ignore_errors=True)
    params = {
        "n": n,
        "gap_ms": gap_ms,
        "warmup": warmup,
        "symbol": SYMBOL,
        "sides": sides,
        "paths": paths,
    }
    return {"name": "tick_to_trade", "params": params, **figures(m, notes)}


def print_report(r: dict[str, Any]) -> None:
    def line(name: str, d: dict[str, float]) -> str:
        if not d.get("n"):
            return f"  {name:<38} (no samples)"
        return (
            f"  {name:<38} n={d['n']:>5}  p50 {d['p50']:7.3f}  p90 {d['p90']:7.3f}  "
            f"p99 {d['p99']:7.3f}  max {d['max']:8.2f} ms"
        )

    p = r["params"]
    print(
        f"tick-to-trade, {r['ticks']} ticks {p['gap_ms']:g} ms apart, sideHint {p['sides']} "
        f"({p['warmup']} warm-up ticks excluded); decisions {r['decisions']}"
    )
    print(line("tick → venue order", r["tick_to_venue_order_ms"]))
    print(line("tick → venue ack", r["tick_to_venue_ack_ms"]))
    print(line("tick → /decide answered", r["tick_to_decide_answer_ms"]))
    sp = r["split"]
    print(line("  not held by the liquidity probe", r["tick_to_venue_order_not_probe_delayed_ms"]))
    print(f"  held back by S4's liquidity probe (policy): {r['probe_delayed']['parents']} entries")
    print(line("  of which tick → S4 intake (S3, hops)", sp["tick_to_s4_intake_ms"]))
    print(line("  of which S4 intake → venue order", sp["s4_intake_to_venue_order_ms"]))
    print(f"  the intent reached S4 first by: {sp['first_path_into_s4']}")
    print(line("baseline: Redis write + one HTTP hop", r["baseline_redis_write_plus_http_hop_ms"]))
    print(line("baseline: Redis write alone", r["baseline_redis_write_ms"]))
    if r["ratio_p50"] is not None:
        print(f"  ratio to the baseline: p50 ×{r['ratio_p50']:.2f}, p99 ×{r['ratio_p99']:.2f}")
    if r["opened_without_venue_order"]:
        print(f"  WARNING: {r['opened_without_venue_order']} opened decisions had no venue order")
    t = r["target"]
    print(
        f"  target p50 ≤ {t['p50_ms']:g} ms, p99 ≤ {t['p99_ms']:g} ms: "
        f"{'MET' if t['met'] else 'MISSED'}"
    )


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "--serve-s4":
        serve_s4(sys.argv[2])
        return 0
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--n", type=int, default=300, help="measured ticks")
    ap.add_argument("--gap-ms", type=float, default=250.0, help="pause between ticks")
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--sides", default="BUY", help="sideHint cycle, e.g. BUY or BUY,SELL")
    ap.add_argument(
        "--paths",
        choices=("both", "stream"),
        default="both",
        help="S3's publish paths: both (as deployed) or the stream alone",
    )
    ap.add_argument("--profile", type=Path, default=None, help="py-spy S3 and S4 into this dir")
    ap.add_argument("--json", type=Path, default=None, help="write the figures here as JSON")
    a = ap.parse_args()
    r = run(
        n=a.n, gap_ms=a.gap_ms, warmup=a.warmup, sides=a.sides, profile=a.profile, paths=a.paths
    )
    print_report(r)
    if a.json:
        a.json.write_bytes(orjson.dumps(r, option=orjson.OPT_INDENT_2))
    return 0 if r["ticks"] else 1


if __name__ == "__main__":
    raise SystemExit(main())

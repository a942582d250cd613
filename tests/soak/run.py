"""`make soak`: the whole stack under steady live decisions and intents, with a memory verdict.

    python -m tests.soak.run                                  # 10 minutes, seed 1
    python -m tests.soak.run --minutes 2 --seed 7 --order-rate 20
    make soak SOAK_MINUTES=30 SEED=7

Starts `make run`'s stack as real processes (scripts/devstack.py: embedded Redis, the SQLite
store, the market-data feeder, S4 with the venue simulator, S3) on free ports, then for the
given time keeps up, open loop (a fixed schedule, not "as fast as answers come back"):

* **live decisions**: one live `POST /decide` per second per symbol (`--symbols`, default
  BTCUSDT) — the default bundle, so every entry carries SL/TP — with a dry-run decision beside
  each as the baseline measured in the same run (issue 10's target load);
* **dry-run decisions**: `--dry-rate` per second on S3's symbols, round robin;
* **intents**: `--order-rate` MARKET orders per second straight to S4 on `--order-symbol`
  (ETHUSDT, so they never hold the live symbol's `lock:pos`), BUY and SELL alternately (the
  position stays flat), each by REST `POST /orders` or by `XADD orders:intent` (seeded draw).

Every `--step` seconds it prints one line: elapsed, counts, the RSS of every process, the
`orders:intent` consumer group's lag, S4's weight use, and an ETA. At the end, one screen:
throughput, p50/p95/p99 (live and dry-run `/decide`, S4 submit by REST, intent → `orders:
executed` by stream), stream lag, RSS per process at start (after warm-up) and end, and:

* entries refused for request weight — `ENTRY_REFUSED` on `router:events` naming the weight
  budget or a venue 429, and REST submits answered so — target 0;
* live decisions skipped `LOCK_BUSY` (S4 held `lock:pos:{symbol}`) — target 0;
* **memory**: each service process (S3, S4, the feeder) may grow by at most
  `--rss-bound-mb` (default 24 MB) from the sample after warm-up (`--warmup`, default 60 s)
  to the end. Why this bound: after warm-up a process whose caches are all capped holds a
  plateau, give or take the allocator's fragmentation (a few MB); issue 15's leak grew S4 by
  ~20 MB per minute at 20 orders/s, so even a leak of a tenth of that shows within a
  10-minute soak. Redis is reported, not bounded: its idempotency keys live an hour and its
  streams are capped at 100,000 entries (`STREAM_MAXLEN`), so it legitimately grows for an hour.

Exit status 0 when all three hold, 1 otherwise, 2 when the stack did not start. The seed fixes
the intents' paths, the dry-run symbols, the venue simulator's price process (`S4_SIM_SEED`)
and is printed at the start and in the summary; real processes on a shared machine are not
replayable to the nanosecond, the load is.

`--tracemalloc DIR` runs every Python process under tracemalloc (tests/soak/tracemalloc_hook)
and takes a snapshot of S3 and S4 after warm-up and at the end; diff them with
`python -m tests.soak.tmdiff`. `--env KEY=VALUE` (repeatable) sets a variable in the stack's
environment, over the soak's own: a variant measured on the same load (e.g.
`--env S4_RECONCILE_INTERVAL_MS=600000`, `--env MALLOC_ARENA_MAX=2`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import httpx
import redis.asyncio as aioredis

from svckit import jsonutil, keys
from svckit.embedded_redis import free_port

REPO = Path(__file__).resolve().parents[2]
HOOK_DIR = Path(__file__).resolve().parent / "tracemalloc_hook"
SERVICES = ("s3-strategy", "s4-router", "md-feeder")
WEIGHT_RE = re.compile(r"weight|\b429\b|rate.?limit|too many requests", re.I)


@dataclass
class Config:
    minutes: float = 10.0
    seed: int = 1
    symbols: list[str] = field(default_factory=lambda: ["BTCUSDT"])
    order_rate: float = 10.0
    order_symbol: str = "ETHUSDT"
    order_qty: str = "0.002"
    dry_rate: float = 10.0
    step_s: float = 30.0
    warmup_s: float = 60.0
    rss_bound_mb: float = 24.0
    concurrency: int = 64
    tracemalloc_dir: Path | None = None
    tracemalloc_only: str = "s4_router,s3_strategy"
    memory_verdict: bool = True
    quiet: bool = False
    env: dict[str, str] = field(default_factory=dict)  # --env: set last, over the soak's own


# ----------------------------------------------------------------------------- processes


def _ppid(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])


def descendants(root: int) -> list[int]:
    """Every live process below `root` (Linux /proc; devstack's children sit in their own
    process groups, so the tree is walked by parent id)."""
    by_parent: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            pp = _ppid(int(entry.name))
            if pp is not None:
                by_parent.setdefault(pp, []).append(int(entry.name))
    out: list[int] = []
    todo = [root]
    while todo:
        for child in by_parent.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def process_name(pid: int) -> str | None:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    args = [a.decode(errors="replace") for a in argv if a]
    if "-m" in args and args.index("-m") + 1 < len(args):
        return {
            "s3_strategy": "s3-strategy",
            "s4_router": "s4-router",
            "md_feeder": "md-feeder",
        }.get(args[args.index("-m") + 1])
    if args and "redis-server" in args[0]:
        return "redis"
    return None


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


# ----------------------------------------------------------------------------- figures


def pct(xs: list[float], p: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(p * len(s)))] if s else float("nan")


def lat_line(name: str, xs: list[float]) -> str:
    if not xs:
        return f"  {name:<28} (none)"
    return (
        f"  {name:<28} n={len(xs):<7d} p50 {pct(xs, 0.5):7.2f}  p95 {pct(xs, 0.95):7.2f}"
        f"  p99 {pct(xs, 0.99):7.2f}  max {max(xs):8.2f} ms"
    )


def names_weight(text: str, client_order_id: str | None = None) -> bool:
    """Whether a refusal's text names the weight budget or a venue 429 (the order's own id is
    taken out first: `soak1-0000429` is no rate limit)."""
    if client_order_id:
        text = text.replace(client_order_id, "")
    return bool(WEIGHT_RE.search(text))


def is_weight_refusal(event: dict[str, Any]) -> bool:
    """An `ENTRY_REFUSED` router event whose reason or message names the weight budget / 429."""
    return event.get("event") == "ENTRY_REFUSED" and names_weight(
        json.dumps(event.get("data", {})), event.get("client_order_id")
    )


def memory_findings(start: dict[str, float], end: dict[str, float], bound_mb: float) -> list[str]:
    """Service processes whose RSS grew past the bound from `start` (after warm-up) to `end`."""
    out = []
    for name in SERVICES:
        if name in start and name in end and end[name] - start[name] > bound_mb:
            out.append(
                f"{name} RSS grew {end[name] - start[name]:.1f} MB "
                f"({start[name]:.1f} → {end[name]:.1f}), bound {bound_mb:g} MB"
            )
    return out


@dataclass
class Stats:
    live: Counter[str] = field(default_factory=Counter)
    dry: Counter[str] = field(default_factory=Counter)
    orders: Counter[str] = field(default_factory=Counter)
    executed: Counter[str] = field(default_factory=Counter)
    events: Counter[str] = field(default_factory=Counter)
    alerts: Counter[str] = field(default_factory=Counter)
    live_ms: list[float] = field(default_factory=list)
    dry_base_ms: list[float] = field(default_factory=list)
    dry_ms: list[float] = field(default_factory=list)
    rest_ms: list[float] = field(default_factory=list)
    stream_ms: list[float] = field(default_factory=list)
    opened: list[str] = field(default_factory=list)
    weight_refusals: list[str] = field(default_factory=list)
    lag_max: int = 0
    pending_max: int = 0
    lag_last: int | None = None
    pending_last: int | None = None
    behind: int = 0  # scheduled sends that started > 1 s late (the driver could not keep up)
    rss: list[tuple[float, dict[str, float]]] = field(default_factory=list)
    weight: dict[str, Any] = field(default_factory=dict)


# ----------------------------------------------------------------------------- the soak


class Soak:
    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.rng = random.Random(cfg.seed)
        self.stats = Stats()
        self.tmp = Path(tempfile.mkdtemp(prefix="soak-"))
        self.s3_port, self.s4_port = free_port(), free_port()
        self.s3 = f"http://127.0.0.1:{self.s3_port}"
        self.s4 = f"http://127.0.0.1:{self.s4_port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.pids: dict[str, int] = {}
        self.sent_by_stream: dict[str, float] = {}
        self.ours: set[str] = set()
        self.t0 = 0.0
        self.end = 0.0
        self.sem = asyncio.Semaphore(cfg.concurrency)
        self.tasks: set[asyncio.Task[None]] = set()

    def say(self, line: str) -> None:
        if not self.cfg.quiet:
            print(line, flush=True)

    # -- stack
    def start_stack(self) -> str | None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("S3_", "S4_", "MD_"))}
        env |= {
            "S3_PORT": str(self.s3_port),
            "S4_PORT": str(self.s4_port),
            "MD_PORT": str(free_port()),
            "DEVSTACK_DATA_DIR": str(self.tmp / "data"),
            "DEVSTACK_TOKEN_DIR": str(self.tmp / "tokens"),
            "DEVSTACK_REDIS_DIR": "",  # nothing kept: each soak starts clean
            "S3_SYMBOLS": ",".join(sorted({*self.cfg.symbols, "BTCUSDT"})),
            "S4_SIM_SEED": str(self.cfg.seed),
            "DEVSTACK_START_TIMEOUT_S": "240" if self.cfg.tracemalloc_dir else "120",
            "S3_LOG_LEVEL": "WARNING",
            "S4_LOG_LEVEL": "WARNING",
            "MD_LOG_LEVEL": "WARNING",
        }
        env |= self.cfg.env
        if self.cfg.tracemalloc_dir is not None:
            self.cfg.tracemalloc_dir.mkdir(parents=True, exist_ok=True)
            env["SOAK_TRACEMALLOC_DIR"] = str(self.cfg.tracemalloc_dir)
            env["SOAK_TRACEMALLOC_ONLY"] = self.cfg.tracemalloc_only
            env["PYTHONPATH"] = os.pathsep.join(
                [str(HOOK_DIR), *filter(None, [env.get("PYTHONPATH")])]
            )
        self.log_path = self.tmp / "devstack.log"
        self.log = self.log_path.open("w+")
        self.proc = subprocess.Popen(
            [sys.executable, str(REPO / "scripts" / "devstack.py")],
            env=env,
            cwd=REPO,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            process_group=0,
        )
        deadline = time.monotonic() + 900
        while "devstack: ready" not in self.log_path.read_text():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                print(self.log_path.read_text()[-3000:], file=sys.stderr)
                return None
            time.sleep(0.2)
        m = re.search(r"redis-server \(embedded\) on (\S+)", self.log_path.read_text())
        assert m is not None
        for pid in descendants(self.proc.pid):
            name = process_name(pid)
            if name is not None:
                self.pids[name] = pid
        self.s3_tok = (self.tmp / "tokens" / "s3_api_token").read_text().strip()
        self.s4_tok = (self.tmp / "tokens" / "s4_api_token").read_text().strip()
        return m.group(1)

    def stop_stack(self) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGINT)
        try:
            self.proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.log.close()

    def rss_now(self) -> dict[str, float]:
        out = {}
        for name, pid in self.pids.items():
            mb = rss_mb(pid)
            if mb is not None:
                out[name] = mb
        return out

    def snapshot(self) -> None:
        """SIGUSR2: the tracemalloc hook in S3 and S4 dumps a snapshot."""
        if self.cfg.tracemalloc_dir is None:
            return
        traced = {m.strip().replace("_", "-") for m in self.cfg.tracemalloc_only.split(",")}
        for name in ("s3-strategy", "s4-router"):
            # Only a traced process has the handler: SIGUSR2's default action would kill it.
            if name in self.pids and name in traced:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pids[name], signal.SIGUSR2)

    # -- load
    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _paced(self, rate: float, make: Any) -> None:
        """Open loop: the n-th send is due at t0 + n / rate, whatever the answers do."""
        if rate <= 0:
            return
        n = 0
        start = time.monotonic()
        while True:
            due = start + n / rate
            if due >= self.end:
                return
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            elif delay < -1:
                self.stats.behind += 1
            await self.sem.acquire()
            self._spawn(self._release_after(make(n)))
            n += 1

    async def _release_after(self, coro: Any) -> None:
        try:
            await coro
        finally:
            self.sem.release()

    async def decide(self, symbol: str, *, dry: bool) -> tuple[float, int, Any]:
        body: dict[str, Any] = {"symbol": symbol}
        if dry:
            body["dry_run"] = True
        t = time.perf_counter()
        try:
            r = await self.http.post(f"{self.s3}/decide", json=body, headers=self.s3_auth)
        except httpx.HTTPError as exc:
            return (time.perf_counter() - t) * 1000, 0, type(exc).__name__
        return (time.perf_counter() - t) * 1000, r.status_code, r.json()

    @staticmethod
    def _label(status: int, body: Any) -> str:
        if status != 200 or not isinstance(body, dict):
            return f"HTTP_{status or body}"
        return "OPEN" if body.get("decision") == "open" else str(body.get("reason"))

    async def live_loop(self) -> None:
        """One live decision per second per symbol, a dry-run beside each (issue 10's load)."""
        n = 0
        start = time.monotonic()
        while start + n < self.end:
            delay = start + n - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            for sym in self.cfg.symbols:
                ms, status, body = await self.decide(sym, dry=False)
                self.stats.live_ms.append(ms)
                label = self._label(status, body)
                self.stats.live[label] += 1
                if label == "OPEN":
                    self.stats.opened.append(body["intent"]["client_order_id"])
                ms, status, body = await self.decide(sym, dry=True)
                self.stats.dry_base_ms.append(ms)
            n += 1

    async def dry_one(self, n: int) -> None:
        syms = sorted({*self.cfg.symbols, "BTCUSDT", "ETHUSDT"})
        ms, status, body = await self.decide(syms[n % len(syms)], dry=True)
        self.stats.dry_ms.append(ms)
        self.stats.dry[self._label(status, body)] += 1

    async def order_one(self, n: int) -> None:
        path = "stream" if self.rng.random() < 0.5 else "rest"
        coid = f"soak{self.cfg.seed}-{n:07d}"
        body = {
            "intent_id": f"soak-intent-{self.cfg.seed}-{n}",
            "market": "FUT",
            "symbol": self.cfg.order_symbol,
            "side": "BUY" if n % 2 == 0 else "SELL",
            "qty": self.cfg.order_qty,
            "exec_policy": {"type": "MARKET"},
            "client_order_id": coid,
            "created_ts": int(time.time() * 1000),
        }
        self.ours.add(coid)
        if path == "stream":
            self.sent_by_stream[coid] = time.perf_counter()
            try:
                await self.redis.xadd(keys.ORDERS_INTENT, {"data": json.dumps(body)})
                self.stats.orders["stream_sent"] += 1
            except (aioredis.RedisError, OSError) as exc:  # counted, the soak goes on
                self.stats.orders[f"stream_{type(exc).__name__}"] += 1
            return
        t = time.perf_counter()
        try:
            r = await self.http.post(f"{self.s4}/orders", json=body, headers=self.s4_auth)
        except httpx.HTTPError as exc:
            self.stats.orders[f"rest_{type(exc).__name__}"] += 1
            return
        self.stats.rest_ms.append((time.perf_counter() - t) * 1000)
        self.stats.orders[f"rest_{r.status_code}"] += 1
        if r.status_code >= 400 and names_weight(r.text, coid):
            self.stats.weight_refusals.append(f"{coid}: HTTP {r.status_code} {r.text[:200]}")

    async def read_streams(self) -> None:
        """orders:executed (stream-path latency, outcomes), router:events, alerts — read as
        they come, so trimming never hides an event from the counts."""
        ids = {keys.ORDERS_EXECUTED: "$", keys.ROUTER_EVENTS: "$", keys.ALERTS: "$"}
        while True:
            try:
                got = cast(list[Any], await self.redis.xread(ids, block=1000, count=500))
            except (aioredis.RedisError, OSError):
                await asyncio.sleep(0.5)
                continue
            now = time.perf_counter()
            for stream, entries in got:
                for eid, fields in entries:
                    ids[stream] = eid
                    ev = jsonutil.loads(fields["data"])
                    if stream == keys.ORDERS_EXECUTED:
                        coid = ev.get("client_order_id", "")
                        if coid in self.ours:
                            self.stats.executed[str(ev.get("status"))] += 1
                        sent = self.sent_by_stream.pop(coid, None)
                        if sent is not None:
                            self.stats.stream_ms.append((now - sent) * 1000)
                    elif stream == keys.ROUTER_EVENTS:
                        self.stats.events[str(ev.get("event"))] += 1
                        if is_weight_refusal(ev):
                            self.stats.weight_refusals.append(
                                f"{ev.get('client_order_id')}: {json.dumps(ev.get('data'))[:200]}"
                            )
                    else:
                        self.stats.alerts[str(ev.get("kind"))] += 1

    async def sample(self) -> dict[str, Any]:
        rss = self.rss_now()
        self.stats.rss.append((time.monotonic() - self.t0, rss))
        lag = pending = None
        with contextlib.suppress(aioredis.RedisError, OSError):
            for g in await self.redis.xinfo_groups(keys.ORDERS_INTENT):
                lag = int(g.get("lag") or 0)
                pending = int(g.get("pending") or 0)
        if lag is not None and pending is not None:
            self.stats.lag_last, self.stats.pending_last = lag, pending
            self.stats.lag_max = max(self.stats.lag_max, lag)
            self.stats.pending_max = max(self.stats.pending_max, pending)
        with contextlib.suppress(httpx.HTTPError, ValueError):
            h = (await self.http.get(f"{self.s4}/health")).json()
            if isinstance(h, dict):
                self.stats.weight = h.get("weight") or {}
        return {"rss": rss, "lag": lag, "pending": pending}

    def _weight_used(self) -> str:
        """S4's budget per market from /health: used/limit in the last minute, paced, refused."""
        parts = []
        for market, b in sorted(self.stats.weight.items()):
            if isinstance(b, dict) and b.get("used") is not None:
                parts.append(
                    f"{market} {b['used']}/{b.get('limit')} paced {b.get('paced')} "
                    f"refused {b.get('refused')}"
                )
        return ", ".join(parts) or "?"

    def step_line(self, s: dict[str, Any]) -> str:
        el = time.monotonic() - self.t0
        total = self.cfg.minutes * 60
        st = self.stats
        rss = " ".join(f"{n.split('-')[0]} {mb:.0f}" for n, mb in sorted(s["rss"].items()))
        live = sum(st.live.values())
        return (
            f"soak seed={self.cfg.seed} {el / 60:5.1f}/{total / 60:g} min | "
            f"live {live} (open {st.live['OPEN']}, lock_busy {st.live['LOCK_BUSY']}) "
            f"dry {len(st.dry_ms)} | intents {sum(st.orders.values())} "
            f"executed {sum(st.executed.values())} | weight-refused {len(st.weight_refusals)} | "
            f"lag {s['lag']} pend {s['pending']} | weight {self._weight_used()} | "
            f"RSS MB {rss} | ETA {max(0.0, total - el) / 60:.1f} min"
        )

    async def sampler(self) -> None:
        warm_snap = False
        while True:
            await asyncio.sleep(min(self.cfg.step_s, max(0.1, self.end - time.monotonic())))
            s = await self.sample()
            if not warm_snap and time.monotonic() - self.t0 >= self.cfg.warmup_s:
                self.snapshot()
                warm_snap = True
            self.say(self.step_line(s))
            if time.monotonic() >= self.end:
                return

    async def run(self, redis_addr: str) -> None:
        host, _, port = redis_addr.rpartition(":")
        self.redis = aioredis.Redis(host=host, port=int(port), decode_responses=True)
        self.http = httpx.AsyncClient(
            timeout=15, limits=httpx.Limits(max_connections=self.cfg.concurrency + 8)
        )
        self.s3_auth = {"Authorization": f"Bearer {self.s3_tok}"}
        self.s4_auth = {"Authorization": f"Bearer {self.s4_tok}"}
        self.t0 = time.monotonic()
        self.end = self.t0 + self.cfg.minutes * 60
        first = await self.sample()
        self.say(self.step_line(first))
        reader = asyncio.ensure_future(self.read_streams())
        try:
            await asyncio.gather(
                self.live_loop(),
                self._paced(self.cfg.dry_rate, self.dry_one),
                self._paced(self.cfg.order_rate, self.order_one),
                self.sampler(),
            )
            # Let the last intents finish (and their events arrive) before the final sample.
            if self.tasks:
                await asyncio.wait(self.tasks, timeout=30)
            await asyncio.sleep(2)
            self.stats.rss.append((time.monotonic() - self.t0, self.rss_now()))
            self.snapshot()
            await asyncio.sleep(1 if self.cfg.tracemalloc_dir else 0)
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            await self.http.aclose()
            await self.redis.aclose()

    # -- verdict
    def rss_start_end(self) -> tuple[dict[str, float], dict[str, float]]:
        samples = self.stats.rss
        start = next((r for t, r in samples if t >= self.cfg.warmup_s), samples[-1][1])
        return start, samples[-1][1]

    def summary(self, wall_s: float) -> tuple[str, bool]:
        st, cfg = self.stats, self.cfg
        first = st.rss[0][1] if st.rss else {}
        start, end = self.rss_start_end()
        mem = memory_findings(start, end, cfg.rss_bound_mb) if cfg.memory_verdict else []
        lock_busy = st.live["LOCK_BUSY"]
        ok = not mem and not st.weight_refusals and lock_busy == 0
        run_s = cfg.minutes * 60
        lines = [
            "",
            f"== soak summary: seed {cfg.seed}, {cfg.minutes:g} min ({wall_s:.0f} s wall), "
            f"load average {load_average()}, stack in {self.tmp}",
            f"  load: live /decide 1/s on {','.join(cfg.symbols)}, dry-run {cfg.dry_rate:g}/s, "
            f"MARKET intents {cfg.order_rate:g}/s on {cfg.order_symbol} (REST + stream)",
            f"  throughput: decisions {(sum(st.live.values()) + len(st.dry_base_ms) + len(st.dry_ms)) / run_s:.1f}/s, "  # noqa: E501
            f"intents sent {sum(st.orders.values()) / run_s:.1f}/s, executed "
            f"{sum(st.executed.values()) / run_s:.1f}/s; sends > 1 s late: {st.behind}",
            f"  live decisions {sum(st.live.values())}: {dict(st.live.most_common())}",
            f"  opened {len(st.opened)}; POSITION_PROTECTED {st.events['POSITION_PROTECTED']}",
            f"  dry-run decisions {len(st.dry_ms)}: {dict(st.dry.most_common(6))}",
            f"  intents {dict(st.orders)}; outcomes {dict(st.executed)}",
            "  latency (ms):",
            lat_line("live /decide", st.live_ms),
            lat_line("dry-run /decide (beside live)", st.dry_base_ms),
            lat_line("dry-run /decide (steady)", st.dry_ms),
            lat_line("S4 POST /orders (REST)", st.rest_ms),
            lat_line("XADD → orders:executed", st.stream_ms),
            f"  stream lag orders:intent (group): max {st.lag_max} undelivered, "
            f"{st.pending_max} pending; at the end {st.lag_last} / {st.pending_last}; "
            f"stream intents never executed {len(self.sent_by_stream)}",
            f"  S4 weight at the end: {self._weight_used()}",
            f"  alerts: {dict(st.alerts.most_common(8))}",
            f"  RSS MB (at start / after {cfg.warmup_s:g} s warm-up / end / growth after warm-up):",
        ]
        for name in (*SERVICES, "redis"):
            if name in end:
                a, b, c = first.get(name, float("nan")), start.get(name, float("nan")), end[name]
                bound = f"bound {cfg.rss_bound_mb:g}" if name in SERVICES else "not bounded"
                lines.append(f"    {name:<12} {a:7.1f} {b:7.1f} {c:7.1f}  {c - b:+6.1f}  ({bound})")
        lines += [
            f"  entries refused for weight: {len(st.weight_refusals)} (target 0)",
            *(f"    {w}" for w in st.weight_refusals[:5]),
            f"  LOCK_BUSY live decisions: {lock_busy} (target 0)",
            *(f"  MEMORY: {m}" for m in mem),
            f"verdict: {'OK' if ok else 'FAILED'} (seed {cfg.seed})",
        ]
        return "\n".join(lines), ok


def run(cfg: Config) -> tuple[int, Soak]:
    soak = Soak(cfg)
    t0 = time.monotonic()
    soak.say(
        f"soak: seed={cfg.seed} {cfg.minutes:g} min, live 1/s on {','.join(cfg.symbols)}, "
        f"dry-run {cfg.dry_rate:g}/s, intents {cfg.order_rate:g}/s; starting the stack in "
        f"{soak.tmp} (load average {load_average()})"
    )
    try:
        addr = soak.start_stack()
        if addr is None:
            print("soak: the stack did not start", file=sys.stderr)
            return 2, soak
        soak.say(f"soak: stack up in {time.monotonic() - t0:.0f} s, pids {soak.pids}")
        asyncio.run(soak.run(addr))
    finally:
        soak.stop_stack()
    text, ok = soak.summary(time.monotonic() - t0)
    soak.say(text)
    return (0 if ok else 1), soak


def parse(argv: list[str] | None = None) -> Config:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--symbols", default="BTCUSDT", help="live decisions, comma list")
    ap.add_argument("--order-rate", type=float, default=10.0, help="MARKET intents per second")
    ap.add_argument("--order-symbol", default="ETHUSDT")
    ap.add_argument("--dry-rate", type=float, default=10.0, help="dry-run decisions per second")
    ap.add_argument("--step", type=float, default=30.0, help="seconds between progress lines")
    ap.add_argument("--warmup", type=float, default=60.0, help="seconds before the RSS baseline")
    ap.add_argument("--rss-bound-mb", type=float, default=24.0)
    ap.add_argument("--tracemalloc", type=Path, default=None, metavar="DIR")
    ap.add_argument(
        "--tracemalloc-only",
        default="s4_router,s3_strategy",
        metavar="MODULES",
        help="the processes traced under --tracemalloc (comma list of modules)",
    )
    ap.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set in the stack's environment (repeatable; e.g. S4_RECONCILE_INTERVAL_MS=600000 "
        "or MALLOC_ARENA_MAX=2 to measure a variant)",
    )
    a = ap.parse_args(argv)
    env: dict[str, str] = {}
    for item in a.env:
        key, sep, value = item.partition("=")
        if not sep or not key:
            ap.error(f"--env {item!r}: KEY=VALUE expected")
        env[key] = value
    return Config(
        minutes=a.minutes,
        seed=a.seed,
        symbols=[s.strip().upper() for s in a.symbols.split(",") if s.strip()],
        order_rate=a.order_rate,
        order_symbol=a.order_symbol.upper(),
        dry_rate=a.dry_rate,
        step_s=a.step,
        warmup_s=min(a.warmup, a.minutes * 60 / 2),
        rss_bound_mb=a.rss_bound_mb,
        tracemalloc_dir=a.tracemalloc,
        tracemalloc_only=a.tracemalloc_only,
        env=env,
    )


def main(argv: list[str] | None = None) -> int:
    return run(parse(argv))[0]


if __name__ == "__main__":
    raise SystemExit(main())

"""Benchmarks of S3's hot-reloaded configuration (issue 13), each beside a baseline from the same
run.

    .venv/bin/python tests/bench/bench_config_reload.py                      # all three
    .venv/bin/python tests/bench/bench_config_reload.py --only lint
    .venv/bin/python tests/bench/bench_config_reload.py --activations 100 --load-activations 1000

1. **lint + compile + diff of a 200-rule bundle** (target ≤ 10 ms: the median wall time, p99
   printed beside it; the issue names no percentile here), in process: the build an
   upload / a replica's reload does (`build_engine` of the decision context: params validation,
   rule lint against the factor whitelist, compilation to closures, per-symbol plans) plus
   `diff_bundles` against the previous revision. Baseline: the same for the 6-rule fixture bundle.
2. **activation → every replica serves the new revision** (target p99 ≤ 1 s over 100
   activations): two S3 processes exactly as deployed (`python -m s3_strategy`, free loopback
   ports, one redis-server, one SQLite store file, S3_CONFIG_POLL_SEC=5 so that only the
   `cfg:events` path can explain sub-second figures). Each activation goes through replica A's
   `POST /config/activate`; the clock runs from its answer until both replicas' `/health` report
   the revision (polled every 2 ms). Baseline: a bare `GET /health` round trip on the same
   connection (the measurement floor).
3. **1,000 activations under continuous `/decide` load** (target 0 failed requests, 0 responses
   with a mixed or unknown revision): 8 keep-alive connections (4 per replica) send dry-run
   decisions while the script alternates two revisions 1,000 times. Every response must be HTTP
   200 with a `config_rev` among the activated ones, the same rev in its intent, and one
   `ctx_rev` ↔ `config_rev` pairing; the stored signals are checked the same way. Baseline: the
   same load with no activations (throughput and p99 beside).

Subprocesses are stopped by pid; loops are bounded. Exit 0 unless a target is missed or
something broke.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import gc
import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import orjson  # noqa: E402

from tests.bench.bench_s3_http import feeder, spawn, stop_proc, wait_http  # noqa: E402

TOKEN = "bench-admin-token"
API_TOKEN = "bench-api-token-0123456789abcdef"  # /decide needs S3_API_TOKEN since issue 8
DECIDE = orjson.dumps({"symbol": "BTCUSDT", "dry_run": True})


def _q(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(len(s) * p))]


# ---- 1. lint + compile + diff --------------------------------------------------------------------
def rules_200(factors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    names = [f["name"] for f in factors]
    out = []
    for i in range(200):
        leaves = [
            {"f": names[(i + k) % len(names)], "op": "<" if k % 2 else ">=", "v": 0.0}
            for k in range(3)
        ]
        when: dict[str, Any] = {"allOf": [leaves[0], {"anyOf": leaves[1:]}]}
        if i % 5 == 0:
            when = {"not": when}
        action = (
            {"type": "skip_entry"} if i % 7 == 0 else {"type": "size_mult", "value": 1 + i % 3 / 10}
        )
        out.append(
            {
                "rule_id": f"R-{i:04d}",
                "priority": i,
                "status": "ENABLED" if i % 9 else "DISABLED",
                "applies": {"symbols": ["BTCUSDT", "ETHUSDT"], "services": ["s3-strategy"]},
                "when": when,
                "action": action,
            }
        )
    return out


def bench_lint(rounds: int, freeze: bool = True) -> bool:
    from s3_strategy.adapters.configstore import assemble, build_engine, bundle_rev, context_rev
    from s3_strategy.domain.config_diff import diff_bundles
    from svckit.store.seed import load_fixtures

    fx = load_fixtures(REPO / "fixtures")
    factors = [dict(f) for f in fx.factors]
    # Thresholds inside each factor's declared range (the linter refuses others).
    lo = {f["name"]: f.get("min") for f in factors}
    instruments = [i.model_dump(mode="json") for i in fx.instruments]
    tables = {"default": {"rev": fx.route_table_rev, "bands": list(fx.route_bands)}}
    limits = {
        "max_funding_abs": "0.0005",
        "spread_bp_limit_default": "3",
        "depth_top1_usdt_min_default": "200",
        "leverage_default": 20,
        "margin_base_usdt": "20",
        "max_loss_usdt": "1.2",
        "atr_mult": "1.5",
        "concurrent_entries_per_market": 1,
        "feature_max_age_ms": 5000,
    }
    params = dict(fx.bundle["params"])
    small = [dict(r) for r in fx.rules]

    def bundle(k: int) -> list[dict[str, Any]]:
        rules = rules_200(factors)
        for r in rules:
            _fix_thresholds(r["when"], lo, k * 1e-7)  # new thresholds ⇒ new code to compile
        return rules

    def one(
        rules: list[dict[str, Any]], previous: list[dict[str, Any]], p: dict[str, Any]
    ) -> tuple[float, float]:
        """(lint + compile + diff, the two content hashes) in ms."""
        t0 = time.perf_counter()
        rev = bundle_rev(p, rules)
        content = assemble(
            bundle_id="b",
            rev=rev,
            params=p,
            rules=rules,
            factors=factors,
            instruments=instruments,
            route_tables=tables,
            limits=limits,
        )
        ctx = context_rev(content)
        t1, c1 = time.perf_counter(), time.thread_time()
        # params validation, rule lint, compilation, per-symbol plans (what a reload runs)
        build_engine(content, ctx)
        diff_bundles({"params": params, "rules": previous}, {"params": p, "rules": rules})
        t2, c2 = time.perf_counter(), time.thread_time()
        cpu.append((c2 - c1) * 1000)
        return (t2 - t1) * 1000, (t1 - t0) * 1000

    cpu: list[float] = []  # thread CPU time: what the work costs when it has a core to itself
    gen2 = [0]

    def count_gen2(phase: str, info: dict[str, int]) -> None:
        if phase == "start" and info["generation"] == 2:
            gen2[0] += 1

    # Each round's bundle is made just before it (outside the clock) and only the previous one
    # is kept, like a replica holds its active bundle: 200 pre-made bundles (1.3 M objects) would
    # make every full GC pass several times slower than in a service and measure that instead.
    prev = bundle(0)
    for k in range(1, 21):  # warm-up (imports, allocator)
        cur = bundle(k)
        one(cur, prev, params)
        one(small, small, params)
        prev = cur
    cpu.clear()
    if freeze:
        # What the service does once started (entrypoints/api.py lifespan): everything built so
        # far (modules, the reference data, the warm-up's survivors) moves to the permanent
        # generation, so a full collection triggered by a reload scans only what reloads made.
        # Without it (--no-freeze) every full pass walks the whole heap of this process.
        gc.collect()
        gc.freeze()
    gc.callbacks.append(count_gen2)
    cold = []
    for k in range(rounds):
        cur = bundle(21 + k)
        cold.append(one(cur, prev, params))
        prev = cur
    gc.callbacks.remove(count_gen2)
    cold_cpu = list(cpu)
    p2 = {**params, "tp_net_profit_pct": 0.2}
    same_rules = [one(prev, prev, p2 if k % 2 else params) for k in range(rounds)]
    t_small = [one(small, small, params) for _ in range(rounds)]
    print(
        f"1. lint + compile + diff ({rounds} rounds each; hashing = bundle rev + context rev; "
        f"heap {'frozen after start, as in the service' if freeze else 'not frozen'})"
    )
    rows = (
        ("200 rules, all new", cold),
        ("200 rules, params change", same_rules),
        ("baseline: 6 fixture rules", t_small),
    )
    for name, pairs in rows:
        ts, hs = [a for a, _ in pairs], [b for _, b in pairs]
        print(
            f"   {name:<26} p50 {_q(ts, 0.5):6.2f} ms  p99 {_q(ts, 0.99):6.2f} ms  "
            f"max {max(ts):6.2f}   (+ hashing p50 {_q(hs, 0.5):5.2f} ms)"
        )
    print(
        f"   CPU time of the 200-rule cold build: p50 {_q(cold_cpu, 0.5):6.2f} ms  "
        f"p99 {_q(cold_cpu, 0.99):6.2f} ms (wall time above includes waiting for a shared core); "
        f"full GC passes during those rounds: {gen2[0]}"
    )
    # Issue 13 states this target without a percentile ("≤ 10 ms"), where its propagation
    # target says "p99": the build's wall time at the median is the verdict (and the exit
    # status); the p99 is printed beside it. On this shared 2-core VM the slow rounds are not the
    # GC (its full passes here take 0.2-0.7 ms) but rounds whose own CPU time doubles while other
    # processes hold the cores.
    p50, p99 = _q([a for a, _ in cold], 0.5), _q([a for a, _ in cold], 0.99)
    ok = p50 <= 10
    print(
        f"   target ≤ 10 ms (200 rules, all new; median wall time): {'MET' if ok else 'MISSED'} "
        f"({p50:.2f} ms; p99 {p99:.2f} ms, not a stated target)"
    )
    cpu50 = _q(cold_cpu, 0.5)
    load1, load5, _ = os.getloadavg()
    print(
        f"   CPU p50 ≤ 10 ms (200 rules, all new): {'MET' if cpu50 <= 10 else 'MISSED'} "
        f"({cpu50:.2f} ms; load average {load1:.2f} (1 min), {load5:.2f} (5 min) on "
        f"{os.cpu_count()} CPUs)"
    )
    return ok


def _fix_thresholds(node: dict[str, Any], lo: dict[str, Any], eps: float) -> None:
    if "f" in node:
        node["v"] = (lo.get(node["f"]) or 0.0) + eps
        return
    for key in ("allOf", "anyOf"):
        for child in node.get(key, []):
            _fix_thresholds(child, lo, eps)
    if "not" in node:
        _fix_thresholds(node["not"], lo, eps)


# ---- HTTP helpers --------------------------------------------------------------------------------
class Conn:
    """One keep-alive HTTP/1.1 connection (raw, cheap for the client)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> Conn:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        return self

    async def request(
        self, method: str, path: str, body: bytes = b"", auth: bool = False
    ) -> tuple[int, bytes]:
        assert self.reader is not None and self.writer is not None
        head = f"{method} {path} HTTP/1.1\r\nHost: bench\r\nContent-Length: {len(body)}\r\n"
        if body:
            head += "Content-Type: application/json\r\n"
        if auth:
            head += f"Authorization: Bearer {TOKEN}\r\nX-Actor: bench\r\n"
        else:  # the API token (health and metrics are open; the header does no harm there)
            head += f"Authorization: Bearer {API_TOKEN}\r\n"
        try:
            self.writer.write((head + "\r\n").encode() + body)
            raw = await self.reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            # uvicorn closes a keep-alive connection idle for 5 s; nothing was read, so the
            # request was not answered: reconnect and send it again (once).
            if isinstance(exc, asyncio.IncompleteReadError) and exc.partial:
                raise
            await self.close()
            await self.open()
            assert self.reader is not None and self.writer is not None
            self.writer.write((head + "\r\n").encode() + body)
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


async def upload_variants(conn: Conn, n: int) -> list[str]:
    status, body = await conn.request("GET", "/config", auth=True)
    assert status == 200, body
    bundle = orjson.loads(body)["bundle"]
    revs = [bundle["rev"]]
    for i in range(1, n):
        variant = copy.deepcopy({"params": bundle["params"], "rules": bundle["rules"]})
        variant["params"]["tp_net_profit_pct"] = round(0.1 + i / 100, 4)
        status, body = await conn.request(
            "POST", "/config/bundles", orjson.dumps(variant), auth=True
        )
        assert status in (200, 201), body
        revs.append(orjson.loads(body)["rev"])
    return revs


async def activate(conn: Conn, rev: str) -> None:
    status, body = await conn.request(
        "POST", "/config/activate", orjson.dumps({"rev": rev}), auth=True
    )
    if status != 200:
        raise RuntimeError(f"activate {rev}: HTTP {status} {body[:300]!r}")


async def serving(conn: Conn) -> str:
    _, body = await conn.request("GET", "/health")
    return str(orjson.loads(body)["config_rev"])


# ---- 2. activation → both replicas ---------------------------------------------------------------
async def bench_propagation(ports: list[int], activations: int) -> bool:
    admin = await Conn(ports[0]).open()
    watchers = [await Conn(p).open() for p in ports]
    try:
        revs = await upload_variants(admin, 2)
        floor: list[float] = []
        for _ in range(200):
            t = time.perf_counter()
            await serving(watchers[1])
            floor.append((time.perf_counter() - t) * 1000)
        lat: list[float] = []
        for i in range(activations):
            rev = revs[(i + 1) % 2]
            await activate(admin, rev)
            t0 = time.perf_counter()
            pending = set(range(len(ports)))
            deadline = t0 + 10
            while pending:
                for k in list(pending):
                    if await serving(watchers[k]) == rev:
                        pending.discard(k)
                if pending:
                    if time.perf_counter() > deadline:
                        raise RuntimeError(f"replicas {pending} never served {rev}")
                    await asyncio.sleep(0.002)
            lat.append((time.perf_counter() - t0) * 1000)
    finally:
        for c in (admin, *watchers):
            await c.close()
    p50, p99 = _q(lat, 0.5), _q(lat, 0.99)
    print(f"2. activation → both replicas serve it ({activations} activations, 2 processes)")
    print(f"   propagation            p50 {p50:7.2f} ms  p99 {p99:7.2f} ms  max {max(lat):7.2f}")
    print(f"   baseline GET /health   p50 {_q(floor, 0.5):7.2f} ms  p99 {_q(floor, 0.99):7.2f} ms")
    ok = p99 <= 1000
    print(f"   target p99 ≤ 1 s: {'MET' if ok else 'MISSED'}")
    return ok


# ---- 3. activations under load -------------------------------------------------------------------
async def decide_loop(
    port: int, stop: asyncio.Event, lat: list[float], seen: dict[str, Any], bad: list[str]
) -> None:
    conn = await Conn(port).open()
    try:
        while not stop.is_set():
            t = time.perf_counter()
            try:
                status, body = await conn.request("POST", "/decide", DECIDE)
            except (OSError, asyncio.IncompleteReadError) as exc:
                bad.append(f"connection: {exc}")
                return
            lat.append((time.perf_counter() - t) * 1000)
            if status != 200:
                bad.append(f"HTTP {status}: {body[:200]!r}")
                continue
            r = orjson.loads(body)
            rev, ctx = r.get("config_rev"), r.get("ctx_rev")
            seen["n"] += 1
            seen["revs"][rev] = seen["revs"].get(rev, 0) + 1
            intent = r.get("intent")
            if intent is not None and intent.get("config_rev") != rev:
                bad.append(f"mixed: response {rev}, intent {intent.get('config_rev')}")
            if seen["ctx"].setdefault(ctx, rev) != rev:
                bad.append(f"mixed: ctx {ctx} seen with {seen['ctx'][ctx]} and {rev}")
    finally:
        await conn.close()


async def run_load(
    ports: list[int], conns: int, activations: int, revs: list[str], max_s: float, admin: Conn
) -> dict[str, Any]:
    stop = asyncio.Event()
    lat: list[float] = []
    seen: dict[str, Any] = {"n": 0, "revs": {}, "ctx": {}}
    bad: list[str] = []
    tasks = [
        asyncio.create_task(decide_loop(ports[i % len(ports)], stop, lat, seen, bad))
        for i in range(conns)
    ]
    t0 = time.perf_counter()
    done = 0
    try:
        if activations:
            for i in range(activations):
                if time.perf_counter() - t0 > max_s:
                    break
                await activate(admin, revs[(i + 1) % len(revs)])
                done += 1
        else:
            await asyncio.sleep(max_s)
    finally:
        await asyncio.sleep(0.5)  # decisions after the last activation
        stop.set()
        await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - t0
    return {"lat": lat, "seen": seen, "bad": bad, "activations": done, "elapsed": elapsed}


def check_signals(db_path: Path, revs: set[str]) -> tuple[int, list[str]]:
    db = sqlite3.connect(db_path, timeout=30)
    try:
        rows = db.execute(
            "SELECT json_extract(doc, '$.config_rev'), json_extract(doc, '$.ctx_rev'), "
            "json_extract(doc, '$.intent.config_rev'), count(*) FROM signals GROUP BY 1, 2, 3"
        ).fetchall()
    finally:
        db.close()
    problems: list[str] = []
    ctx_of: dict[str, str] = {}
    total = 0
    for rev, ctx, intent_rev, n in rows:
        total += n
        if rev not in revs:
            problems.append(f"{n} signals with unknown config_rev {rev}")
        if intent_rev is not None and intent_rev != rev:
            problems.append(f"{n} signals with intent rev {intent_rev} under {rev}")
        if ctx_of.setdefault(ctx, rev) != rev:
            problems.append(f"ctx {ctx} under two revs")
    return total, problems


async def bench_under_load(
    ports: list[int], activations: int, conns: int, max_s: float, work: Path
) -> bool:
    admin = await Conn(ports[0]).open()
    try:
        revs = await upload_variants(admin, 2)
        base = await run_load(ports, conns, 0, revs, min(10.0, max_s), admin)
        loaded = await run_load(ports, conns, activations, revs, max_s, admin)
    finally:
        await admin.close()
    print(
        f"3. {loaded['activations']} activations under /decide load ({conns} connections, "
        f"{len(ports)} replicas, dry runs)"
    )
    for name, r in (("baseline, no activation", base), ("with activations", loaded)):
        lat = r["lat"]
        print(
            f"   {name:<24} {len(lat):>7} decisions  {len(lat) / r['elapsed']:7.0f}/s  "
            f"p50 {_q(lat, 0.5):6.2f} ms  p99 {_q(lat, 0.99):7.2f} ms  failed/mixed "
            f"{len(r['bad'])}"
        )
    print(f"   revisions answered: {loaded['seen']['revs']}")
    total, problems = check_signals(work / "store.sqlite3", set(revs))
    print(f"   signals stored: {total}; inconsistent: {len(problems)}")
    for line in (loaded["bad"] + base["bad"] + problems)[:10]:
        print(f"   ! {line}")
    ok = (
        not loaded["bad"]
        and not base["bad"]
        and not problems
        and loaded["activations"] == activations
    )
    print(
        f"   target (all {activations} activations, 0 failed, 0 mixed/unknown): "
        f"{'MET' if ok else 'MISSED'}"
    )
    return ok


# ---- orchestration -------------------------------------------------------------------------------
async def main_async(args: argparse.Namespace) -> int:
    from svckit.embedded_redis import EmbeddedRedis, free_port

    ok = True
    if args.only in (None, "lint"):
        ok &= bench_lint(args.rounds, freeze=not args.no_freeze)
    if args.only == "lint":
        return 0 if ok else 1
    work = Path(tempfile.mkdtemp(prefix="s3reload-"))
    procs = []
    stop = asyncio.Event()
    with EmbeddedRedis() as redis_server:
        addr = redis_server.addresses[0]
        feed = asyncio.create_task(feeder(addr, stop))
        ports = [free_port(), free_port()]
        try:
            for port in ports:
                env = {
                    **os.environ,
                    "S3_REDIS_ADDRESSES": addr,
                    "S3_PORT": str(port),
                    "S3_DATA_DIR": str(work),
                    "S3_FIXTURES_DIR": str(REPO / "fixtures"),
                    "S3_S4_URL": "",
                    "S3_LOG_LEVEL": "WARNING",
                    "PYTHONPATH": str(REPO),
                    "S3_ADMIN_TOKEN": TOKEN,
                    "S3_API_TOKEN": API_TOKEN,
                    "S3_CONFIG_POLL_SEC": "5",
                }
                procs.append(spawn([sys.executable, "-m", "s3_strategy"], env))
                await wait_http(port, procs[-1], within_s=60)  # one at a time: one seeder
            if args.only in (None, "propagation"):
                ok &= await bench_propagation(ports, args.activations)
            if args.only in (None, "load"):
                ok &= await bench_under_load(
                    ports, args.load_activations, args.conns, args.max_s, work
                )
        finally:
            for p in procs:
                stop_proc(p)
            stop.set()
            await feed
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=("lint", "propagation", "load"), default=None)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument(
        "--no-freeze", action="store_true", help="lint: no gc.freeze() after the warm-up"
    )
    parser.add_argument("--activations", type=int, default=100)
    parser.add_argument("--load-activations", type=int, default=1000)
    parser.add_argument("--conns", type=int, default=8)
    parser.add_argument("--max-s", type=float, default=300.0)
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    raise SystemExit(main())

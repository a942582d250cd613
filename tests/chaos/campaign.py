"""`make chaos`: a seeded campaign of real processes against S4's exactly-once promise.

    python -m tests.chaos.campaign --seed 42 --scenarios 1000
    make chaos SEED=42 CHAOS_SCENARIOS=200

The stack (all real processes, :mod:`tests.chaos.procs`): a Redis (AOF, restartable on its
port), the venue behind its Binance facade (`python -m venue.facade`, with a seeded fault
profile: 429 with Retry-After, 5xx, connect timeouts, timeouts before and after acceptance,
dropped acknowledgements), and **two S4 replicas** in one consumer group trading through ccxt
(`S4_EXCHANGE=binanceusdm`, `S4_EXCHANGE_BASE_URL` = the facade), sharing one SQLite store file
(WAL; SQLite serialises the two writers, as `make run` shares it between S3 and S4).

A scenario is a handful of intents with their races: MARKET, Maker→Taker and TWAP on BTCUSDT
(both sides), bracketed FUT entries (sl/tp) on ETHUSDT (long only, so the account position there
must always be covered by stops); each intent arrives by REST, by the `orders:intent` stream, or
by both at once; some are POSTed in parallel to both replicas; some get a `/cancel` racing their
submit. Many scenarios run at once (`--concurrency`) against the one stack. Process faults run
among them: `kill -9` of a replica at a random moment and its restart, Redis frozen with
SIGSTOP/SIGCONT, Redis killed and restarted, and bursts of another client's requests that use up
the venue's request weight for the rest of the minute.

After every scenario the rig checks, **against the venue's own records** (the facade's
`/sim/orders`, `/sim/trades`, `/sim/algo-orders`) and the store file:

* DUPLICATE_CHILD_ID — a client order id the venue accepted more than once;
* OVERFILL — venue executed quantity of a parent's entry children above the parent's qty;
* FILL_MISSING / FILL_DUPLICATE / FILL_PHANTOM — every venue execution is in `fills` exactly
  once, and `fills` holds nothing the venue did not execute;
* PARENT_QTY_MISMATCH / CHILD_STATE_MISMATCH / VENUE_ORDER_UNKNOWN — the store's parent
  `filled_qty` equals its fills and the venue's executions; each child's status and filled
  quantity equal the venue's; no venue order of ours is missing from the store;
* NOT_FINAL — an intent neither final nor dead-lettered with an alert;
* OUTCOME_EVENTS — not exactly one `orders:executed` event for a final parent;
* NAKED_POSITION — a filled bracketed entry without its stop at the venue (and, at the end,
  UNPROTECTED_POSITION: the ETHUSDT position larger than the open stops);
* NAKED_UNALERTED — a position the checker saw naked longer than S4_UNPROTECTED_ALERT_MS after
  its first fill, with no POSITION_UNPROTECTED alert (or, when the replica that drove it died,
  PROTECTION_LATE once the stop is in) naming it.

A check that fails is re-run for up to ten settle delays (30 s by default; a naked position for
up to 75 s, since a venue that answers 429 to the whole account does so until its weight minute
ends and no stop can land before then); only what persists is a violation. Each is
printed with its evidence; any violation makes the exit status 1. The seed fixes the scenarios,
the venue's fault draws and the process-fault schedule (the interleaving of real processes
cannot be replayed exactly: a replay re-creates the same campaign, not the same nanoseconds).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import shutil
import signal
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

import httpx
from redis import exceptions as redis_exc

from svckit import keys
from svckit.redisio import RedisClient, make_redis
from tests.chaos.procs import REPO, FacadeProc, RedisProc, S4Proc

D = Decimal
API_KEY, API_SECRET = "chaos-key", "chaos-secret"
S4_TOKEN = "chaos-s4-api-token-0123456789abcdef"  # the replicas' S4_API_TOKEN
TERMINAL = {"FILLED", "CANCELED", "REJECTED", "EXPIRED"}
LIVE_STORE = {"NEW", "SUBMITTED", "ACCEPTED", "PARTIALLY_FILLED", "PENDING_CANCEL", "AMBIGUOUS"}
FIRST_PROTECTIVE_CHILD = 60  # S4's protective children count from -E60
_CHILD = re.compile(r"^(?P<parent>.+)-E(?P<n>\d{1,2})$")


# ---- configuration ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Config:
    seed: int
    scenarios: int = 1000
    concurrency: int = 12
    fault_rate: float = 0.03
    process_faults: bool = True
    fault_every_s: float = 3.0
    weight_limit: int = 6000
    scenario_timeout_s: float = 150.0
    settle_s: float = 3.0
    # A venue whose weight minute another client used up answers 429 to everyone until the
    # minute ends: a stop cannot land before then, so a naked position is re-checked that long.
    naked_settle_s: float = 75.0
    unprotected_alert_ms: int = 5_000  # S4_UNPROTECTED_ALERT_MS of the replicas
    run_dir: Path | None = None
    keep: bool = False
    quiet: bool = False


# ---- scenarios --------------------------------------------------------------------------------
@dataclass
class IntentPlan:
    body: dict[str, Any]
    path: str  # "rest" | "stream" | "both"
    parallel_dup: bool = False
    cancel_after_ms: int | None = None
    bracket: bool = False
    delay_ms: int = 0
    refused_http: int | None = None  # every REST answer was this 4xx: refused, nothing stored

    @property
    def coid(self) -> str:
        return str(self.body["client_order_id"])

    @property
    def qty(self) -> Decimal:
        return D(str(self.body["qty"]))


@dataclass
class Scenario:
    index: int
    kind: str
    prefix: str
    intents: list[IntentPlan]


@dataclass
class Violation:
    scenario: int
    kind: str
    coid: str
    evidence: str

    def line(self) -> str:
        return f"  VIOLATION {self.kind} scenario={self.scenario} {self.coid}: {self.evidence}"


KINDS = ("market", "maker", "twap", "bracket", "mixed")


def make_scenario(seed: int, index: int, prices: dict[str, Decimal]) -> Scenario:
    """Scenario `index` of campaign `seed`: a pure function of both (and of the reference
    prices, which only place the brackets' triggers)."""
    rng = random.Random(f"chaos:{seed}:{index}")
    kind = rng.choice(KINDS)
    prefix = f"k{seed % 100_000}-{index}-"
    intents: list[IntentPlan] = []
    n = rng.randint(1, 3) if kind != "bracket" else rng.randint(1, 2)
    for j in range(n):
        coid = f"{prefix}{j}"
        sub = kind if kind != "mixed" else rng.choice(("market", "maker", "twap", "bracket"))
        body: dict[str, Any] = {
            "intent_id": f"i-{coid}",
            "market": "FUT",
            "client_order_id": coid,
            "symbol": "BTCUSDT",
            "side": rng.choice(("BUY", "SELL")),
            "qty": str(D(rng.randint(1, 4)) / 1000),
        }
        bracket = False
        if sub == "market":
            body["exec_policy"] = {"type": "MARKET"}
        elif sub == "maker":
            body["exec_policy"] = {"type": "MAKER_TAKER", "maker_wait_ms": rng.randint(200, 1500)}
        elif sub == "twap":
            body["qty"] = str(D(rng.randint(2, 4)) / 1000)
            body["exec_policy"] = {
                "type": "TWAP",
                "slices": rng.randint(2, 3),
                "gap_ms": rng.randint(200, 800),
            }
        else:
            bracket = True
            ref = prices["ETHUSDT"]
            body.update(symbol="ETHUSDT", side="BUY", qty=str(D(rng.randint(2, 5)) / 1000))
            body["exec_policy"] = {"type": "MARKET"}
            # A take profit 12-30 bps away (S4 refuses one nearer than its minimum stop
            # distance): most brackets close by themselves within
            # the campaign, so live brackets (and their polling) stay bounded.
            tp = (ref * (1 + D(rng.randint(12, 30)) / 10_000)).quantize(D("0.01"))
            sl = (ref * D("0.97")).quantize(D("0.01"))
            body["sl"] = {"type": "STOP_MARKET", "price": str(sl)}
            body["tp"] = {"type": "TAKE_PROFIT_MARKET", "price": str(tp)}
            body["leverage"] = 20
        path = rng.choices(("rest", "stream", "both"), weights=(4, 3, 3))[0]
        cancel = rng.randint(0, 400) if sub in ("maker", "twap") and rng.random() < 0.3 else None
        intents.append(
            IntentPlan(
                body=body,
                path=path,
                parallel_dup=rng.random() < 0.25,
                cancel_after_ms=cancel,
                bracket=bracket,
                delay_ms=rng.randint(0, 300),
            )
        )
    return Scenario(index, kind, prefix, intents)


@dataclass
class Evidence:
    """What a scenario's checks read: the venue's records and the store's, by client id."""

    orders: list[dict[str, Any]]  # venue: /sim/orders
    trades: list[dict[str, Any]]  # venue: /sim/trades
    algos: list[dict[str, Any]]  # venue: /sim/algo-orders
    stored: list[dict[str, Any]]  # store: `orders` (parents and children)
    fills: list[dict[str, Any]]  # store: `fills`
    executed: Counter[str]  # `orders:executed` events per client order id


def find_violations(
    sc: Scenario,
    issued: list[IntentPlan],
    statuses: dict[str, str],
    ev: Evidence,
    timeout_s: float,
) -> list[Violation]:
    """The checks of one scenario (pure: the rig gathers `ev` from the venue and the store)."""
    out: list[Violation] = []

    def v(kind: str, coid: str, evidence: str) -> None:
        out.append(Violation(sc.index, kind, coid, evidence))

    orders, trades, algos, fills = ev.orders, ev.trades, ev.algos, ev.fills
    by_coid: dict[str, dict[str, Any]] = {d["client_order_id"]: d for d in ev.stored}
    # 1. a child id reaches the venue at most once
    ids = Counter(o["client_order_id"] for o in orders)
    ids.update(a["client_algo_id"] for a in algos)
    for cid, n in ids.items():
        if n > 1:
            rows = [
                f"{o['venue_order_id']}:{o['type']}:{o['status']}:{o['executed_qty']}"
                for o in orders
                if o["client_order_id"] == cid
            ] + [
                f"algo {a['algo_id']}:{a['type']}:{a['status']}:{a['qty']}"
                for a in algos
                if a["client_algo_id"] == cid
            ]
            v("DUPLICATE_CHILD_ID", cid, f"venue accepted it {n}x: {rows}")
    # 3. every venue fill persisted exactly once, nothing else persisted
    venue_keys = Counter((t["venue_order_id"], t["trade_id"]) for t in trades)
    store_keys = Counter((str(f["order_id"]), str(f["trade_id"])) for f in fills)
    for key in venue_keys:
        if store_keys[key] == 0:
            v("FILL_MISSING", sc.prefix, f"venue trade order={key[0]} trade={key[1]}")
        elif store_keys[key] > 1:
            v("FILL_DUPLICATE", sc.prefix, f"trade {key} stored {store_keys[key]}x")
    for key in store_keys:
        if key not in venue_keys:
            v("FILL_PHANTOM", sc.prefix, f"stored fill {key} the venue never executed")
    for plan in issued:
        p = plan.coid
        final = statuses.get(p, "?")
        doc = by_coid.get(p)
        entries = [
            o
            for o in orders
            if (m := _CHILD.match(o["client_order_id"]))
            and m["parent"] == p
            and int(m["n"]) < FIRST_PROTECTIVE_CHILD
        ]
        venue_filled = sum((D(o["executed_qty"]) for o in entries), D(0))
        # 2. no overfill
        if venue_filled > plan.qty:
            v(
                "OVERFILL",
                p,
                f"venue executed {venue_filled} for qty {plan.qty}: "
                + ", ".join(f"{o['client_order_id']}={o['executed_qty']}" for o in entries),
            )
        # 5. every intent final (or dead-lettered with an alert)
        if final not in TERMINAL and final not in ("DLQ", "REFUSED"):
            v("NOT_FINAL", p, f"status {final} after {timeout_s:.0f}s")
        if doc is None:
            if entries:
                v("VENUE_ORDER_UNKNOWN", p, f"no parent in the store; venue has {entries}")
            continue
        # 4. store state equals venue state
        entry_ids = {o["venue_order_id"] for o in entries}
        entry_fills = sum(
            (D(str(f["qty"])) for f in fills if str(f["order_id"]) in entry_ids), D(0)
        )
        parent_filled = D(str(doc.get("filled_qty", "0")))
        if not parent_filled == entry_fills == venue_filled:
            v(
                "PARENT_QTY_MISMATCH",
                p,
                f"store parent filled_qty={parent_filled} "
                f"sum(fills)={entry_fills} venue executed={venue_filled} "
                f"status={doc['status']}",
            )
        venue_by_id = {o["venue_order_id"]: o for o in orders}
        for o in entries:
            child = by_coid.get(o["client_order_id"])
            if child is None:
                v("VENUE_ORDER_UNKNOWN", o["client_order_id"], f"venue {o} not in the store")
                continue
            if (
                doc["status"] in TERMINAL
                and (
                    child.get("status") != o["status"]
                    or D(str(child.get("filled_qty", "0"))) != D(o["executed_qty"])
                )
                and child.get("venue_order_id") in (None, o["venue_order_id"])
            ):
                v(
                    "CHILD_STATE_MISMATCH",
                    o["client_order_id"],
                    f"store {child.get('status')}/{child.get('filled_qty')} "
                    f"venue {o['status']}/{o['executed_qty']} (order {o['venue_order_id']})",
                )
        for cid, child in by_coid.items():
            m = _CHILD.match(cid)
            if not m or m["parent"] != p or int(m["n"]) >= FIRST_PROTECTIVE_CHILD:
                continue
            vid = child.get("venue_order_id")
            if (
                vid
                and vid not in venue_by_id
                and child.get("status") in ("FILLED", "PARTIALLY_FILLED")
            ):
                v(
                    "CHILD_STATE_MISMATCH",
                    cid,
                    f"store says {child['status']} for venue order {vid} the venue does not have",
                )
        # 4b. exactly one outcome event per final parent (an intent refused before any
        # side effect is answered by its REJECTED record; it may publish none)
        events = ev.executed[p]
        refused = final == "REJECTED" and not entries
        if final in TERMINAL and (events > 1 or (events == 0 and not refused)):
            v("OUTCOME_EVENTS", p, f"{events} orders:executed events for {final}")
        # 6. a filled bracketed entry carries its stop
        if plan.bracket and venue_filled > 0:
            mine = [
                a for a in algos if (m := _CHILD.match(a["client_algo_id"])) and m["parent"] == p
            ]
            stops = [a for a in mine if a["type"] == "STOP_MARKET"]
            covered = any(
                a["status"] == "NEW" and (a["close_position"] or D(a["qty"] or "0") >= venue_filled)
                for a in stops
            )
            closed = any(a["status"] in ("FINISHED", "TRIGGERED") for a in mine)
            if not (covered or closed):
                v(
                    "NAKED_POSITION",
                    p,
                    f"entry filled {venue_filled}; venue conditional "
                    f"orders: {[(a['client_algo_id'], a['type'], a['status']) for a in mine]}",
                )
            # 4c. a protective order S4 believes live is live at the venue, and vice versa
            for a in mine:
                child = by_coid.get(a["client_algo_id"])
                if child is None:
                    v("VENUE_ORDER_UNKNOWN", a["client_algo_id"], f"venue {a} not in the store")
                    continue
                venue_live, store_live = a["status"] == "NEW", child.get("status") in LIVE_STORE
                if venue_live != store_live:
                    v(
                        "PROTECTIVE_STATE_MISMATCH",
                        a["client_algo_id"],
                        f"store {child.get('status')} venue {a['status']} ({a['type']})",
                    )
    return out


# ---- the stack ----------------------------------------------------------------------------------
class Stack:
    def __init__(self, cfg: Config, run_dir: Path, *, replicas: int = 2) -> None:
        self.cfg, self.run_dir = cfg, run_dir
        self.redis = RedisProc(run_dir / "redis")
        flags = [
            "--fault-rate",
            str(cfg.fault_rate),
            "--fault-seed",
            str(cfg.seed),
            "--seed",
            str(cfg.seed % 1000),
            "--stall-s",
            "1.5",
            "--weight-limit",
            str(cfg.weight_limit),
            "--fault-retry-after-s",
            "1",
        ]
        self.facade = FacadeProc(run_dir, api_key=API_KEY, api_secret=API_SECRET, flags=flags)
        self.data_dir = run_dir / "data"
        env = {
            "S4_EXCHANGE": "binanceusdm",
            "S4_EXCHANGE_BASE_URL": self.facade.url,
            "S4_BINANCE_KEY": API_KEY,
            "S4_BINANCE_SECRET": API_SECRET,
            "S4_TESTNET": "false",
            "S4_API_TOKEN": S4_TOKEN,
            # The facade counts spot and futures weight in one pool of --weight-limit (Binance
            # USD-M alone has 2,400): S4's budget follows the venue it trades with.
            "S4_WEIGHT_LIMIT_1M": str(cfg.weight_limit),
            "S4_REDIS_ADDRESSES": self.redis.address,
            "S4_DATA_DIR": str(self.data_dir),
            "S4_FIXTURES_DIR": str(REPO / "fixtures"),
            "S4_ROUTE_TABLE_PATH": str(REPO / "fixtures" / "route_table.json"),
            "S4_LOG_LEVEL": "INFO",
            "S4_CONSUMER_GROUP": "s4-router",
            "S4_UNPROTECTED_ALERT_MS": str(cfg.unprotected_alert_ms),
            # Scenarios are short: a dead replica's stream entries are reclaimed sooner than
            # production's 30 s, so a scenario does not wait for half a minute.
            "S4_STREAM_CLAIM_IDLE_MS": "5000",
        }
        self.replicas = [S4Proc(f"s4-{x}", run_dir, env=env) for x in "ab"[:replicas]]
        self.restarting: set[str] = set()

    def start(self) -> None:
        self.redis.start()
        self.redis.wait_ready()
        self.facade.start()
        self.facade.wait_ready()
        # Both at once: importing ccxt alone takes seconds of CPU; they seed the store with
        # idempotent upserts, which SQLite serialises.
        for r in self.replicas:
            r.start()
        for r in self.replicas:
            r.wait_ready()

    def stop(self) -> None:
        for r in self.replicas:
            r.stop()
        self.facade.stop()
        self.redis.stop()

    def live(self) -> list[S4Proc]:
        return [r for r in self.replicas if r.alive and r.name not in self.restarting]

    @property
    def store_path(self) -> Path:
        return self.data_dir / "store.sqlite3"


# ---- the store, read-only -------------------------------------------------------------------
class StoreReader:
    """Reads the shared SQLite file directly (read-only URI): what S4 persisted."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _rows(self, table: str, field_: str, prefix: str) -> list[dict[str, Any]]:
        uri = f"file:{self.path}?mode=ro"
        for attempt in range(20):
            try:
                con = sqlite3.connect(uri, uri=True, timeout=5)
                try:
                    cur = con.execute(
                        f'SELECT doc FROM "{table}" WHERE json_extract(doc, ?) LIKE ?',
                        (f"$.{field_}", prefix.replace("_", r"\_") + "%"),
                    )
                    return [json.loads(r[0]) for r in cur.fetchall()]
                finally:
                    con.close()
            except sqlite3.OperationalError:
                if attempt == 19:
                    raise
                time.sleep(0.1)
        return []

    def orders(self, prefix: str) -> list[dict[str, Any]]:
        return self._rows("orders", "client_order_id", prefix)

    def fills(self, prefix: str) -> list[dict[str, Any]]:
        return self._rows("fills", "client_order_id", prefix) + [
            f
            for f in self._rows("fills", "parent_client_order_id", prefix)
            if not str(f.get("client_order_id", "")).startswith(prefix)
        ]


# ---- the campaign -----------------------------------------------------------------------------
@dataclass
class Stats:
    done: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    violations: list[Violation] = field(default_factory=list)
    process_faults: Counter[str] = field(default_factory=Counter)
    http_errors: Counter[str] = field(default_factory=Counter)
    intents: int = 0
    dead_lettered: int = 0
    durations: list[float] = field(default_factory=list)


class Campaign:
    def __init__(self, cfg: Config, stack: Stack) -> None:
        self.cfg, self.stack = cfg, stack
        self.stats = Stats()
        self.store = StoreReader(stack.store_path)
        self.executed: Counter[str] = Counter()
        self.outcomes: dict[str, str] = {}  # client order id -> status of its outcome event
        self.redis: RedisClient = make_redis([stack.redis.address])
        self.http = httpx.AsyncClient(
            timeout=httpx.Timeout(10.0, connect=2.0),
            headers={"Authorization": f"Bearer {S4_TOKEN}"},
        )
        self.t0 = time.monotonic()
        self.stop = asyncio.Event()
        self.rng = random.Random(f"chaos-procs:{cfg.seed}")
        self.log_lines: list[str] = []
        self.restarts: set[asyncio.Future[None]] = set()

    # ---- output --------------------------------------------------------------------------
    def say(self, line: str) -> None:
        self.log_lines.append(line)
        with (self.stack.run_dir / "campaign.log").open("a") as f:
            f.write(line + "\n")
        if not self.cfg.quiet:
            print(line, flush=True)

    def progress(self, sc: Scenario, statuses: list[str], found: list[Violation]) -> None:
        s, n = self.stats, self.cfg.scenarios
        elapsed = time.monotonic() - self.t0
        eta = elapsed / s.done * (n - s.done) if s.done else 0.0
        pf = " ".join(f"{k}={v}" for k, v in sorted(s.process_faults.items())) or "-"
        self.say(
            f"[{s.done:>5}/{n}] #{sc.index:<5} {sc.kind:<7} {','.join(statuses):<30} "
            f"viol={len(s.violations)}{'!' if found else ''} proc[{pf}] "
            f"t={elapsed:6.0f}s eta={eta:5.0f}s"
        )

    # ---- venue and store -----------------------------------------------------------------
    async def venue(self, name: str, prefix: str | None = None) -> list[dict[str, Any]]:
        params = {"prefix": prefix} if prefix else None
        for attempt in range(10):
            try:
                r = await self.http.get(
                    f"{self.stack.facade.url}/sim/{name}",
                    params=params,
                    headers={"X-MBX-APIKEY": API_KEY},
                )
                r.raise_for_status()
                rows: list[dict[str, Any]] = r.json()[name.replace("-", "_")]
                return rows
            except httpx.HTTPError:
                if attempt == 9:
                    raise
                await asyncio.sleep(0.5)
        return []

    async def ref_prices(self) -> dict[str, Decimal]:
        """Mark prices (they only place the brackets' triggers). The facade injects faults into
        this read too: a symbol it does not answer for is left out, and the caller keeps the
        previous price (a zero would make every bracket's take profit invalid)."""
        out: dict[str, Decimal] = {}
        for sym in ("BTCUSDT", "ETHUSDT"):
            for _ in range(5):
                try:
                    r = await self.http.get(
                        f"{self.stack.facade.url}/fapi/v1/premiumIndex", params={"symbol": sym}
                    )
                except httpx.HTTPError:
                    await asyncio.sleep(0.2)
                    continue
                if r.status_code == 200:
                    out[sym] = D(str(r.json()["markPrice"]))
                    break
                await asyncio.sleep(0.2)
        return out

    # ---- background: outcome events and process faults -----------------------------------
    async def watch_executed(self) -> None:
        last = "0-0"
        while not self.stop.is_set():
            try:
                got = await self.redis.xread({keys.ORDERS_EXECUTED: last}, count=500, block=500)
            except (redis_exc.RedisError, OSError):
                await asyncio.sleep(0.5)
                continue
            replies = cast(list[tuple[str, list[tuple[str, dict[str, str]]]]], got or [])
            for _stream, entries in replies:
                for entry_id, fields in entries:
                    last = entry_id
                    with contextlib.suppress(ValueError, KeyError, TypeError):
                        event = json.loads(fields["data"])
                        self.executed[event["client_order_id"]] += 1
                        self.outcomes[event["client_order_id"]] = str(event["status"])

    async def process_faults(self) -> None:
        if not self.cfg.process_faults:
            return
        loop = asyncio.get_running_loop()
        while not self.stop.is_set():
            wait = self.rng.uniform(0.5, 1.5) * self.cfg.fault_every_s
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), timeout=wait)
            if self.stop.is_set():
                return
            fault = self.rng.choices(
                ("kill_replica", "redis_sigstop", "redis_kill", "weight_burn"),
                weights=(4, 3, 2, 1),
            )[0]
            if fault == "kill_replica":
                live = self.stack.live()
                if len(live) < 2:
                    continue  # keep one replica serving; the other is still restarting
                victim = self.rng.choice(live)
                self.stack.restarting.add(victim.name)
                victim.kill9()
                self.say(f"  fault: kill -9 {victim.name}; restarting")
                self.restarts.add(asyncio.ensure_future(self._restart(victim, loop)))
            elif fault == "redis_sigstop":
                hold = self.rng.uniform(1.0, 4.0)
                self.stack.redis.signal(signal.SIGSTOP)
                self.say(f"  fault: Redis SIGSTOP for {hold:.1f}s")
                await asyncio.sleep(hold)
                self.stack.redis.signal(signal.SIGCONT)
            elif fault == "redis_kill":
                down = self.rng.uniform(0.5, 3.0)
                self.stack.redis.kill9()
                self.say(f"  fault: Redis kill -9, down {down:.1f}s, restart (AOF)")
                await asyncio.sleep(down)
                self.stack.redis.start()
                await loop.run_in_executor(None, self.stack.redis.wait_ready)
            else:
                burned = await self._burn_weight()
                self.say(f"  fault: another client used up the venue weight ({burned} calls)")
            self.stats.process_faults[fault] += 1

    async def _restart(self, victim: S4Proc, loop: asyncio.AbstractEventLoop) -> None:
        """Restart as a supervisor (Kubernetes) does: a replica that exits at start-up (S4
        refuses to start while Redis is unreachable, e.g. killed by the next fault) is started
        again after a back-off."""
        try:
            for attempt in range(10):
                try:
                    victim.start()
                    await loop.run_in_executor(None, victim.wait_ready)
                    return
                except RuntimeError as exc:
                    if self.stop.is_set():
                        return  # at the end the stack stops it on purpose
                    self.say(
                        f"  {victim.name} exited while starting ({attempt + 1}): {str(exc)[-160:]}"
                    )
                    await asyncio.sleep(min(2.0 * (attempt + 1), 10.0))
            self.say(f"  {victim.name} did not come back after 10 starts")
        finally:
            self.stack.restarting.discard(victim.name)

    async def _burn_weight(self) -> int:
        """Depth requests (weight 5 each) from "another client" of the same account until the
        venue answers 429: the rest of the minute is over budget for everyone."""
        url = f"{self.stack.facade.url}/fapi/v1/depth"
        calls = 0
        for _ in range(self.cfg.weight_limit // 5 + 50):
            calls += 1
            with contextlib.suppress(httpx.HTTPError):
                r = await self.http.get(url, params={"symbol": "BTCUSDT", "limit": 5})
                if r.status_code == 429:
                    break
        return calls

    # ---- driving intents -----------------------------------------------------------------
    def _replica(self, rng: random.Random) -> S4Proc | None:
        live = self.stack.live()
        return rng.choice(live) if live else None

    async def _post(self, path: str, body: dict[str, Any], rng: random.Random) -> int | None:
        # A racing /cancel gives up after ~2 s of 404s (the intent never arrived, or is gone).
        for _ in range(12 if path == "/cancel" else 30):
            target = self._replica(rng)
            if target is None:
                await asyncio.sleep(0.5)
                continue
            try:
                r = await self.http.post(f"{target.url}{path}", json=body)
            except httpx.HTTPError as exc:
                self.stats.http_errors[type(exc).__name__] += 1
                await asyncio.sleep(0.3)
                continue
            if r.status_code == 503 or (r.status_code == 404 and path == "/cancel"):
                self.stats.http_errors[f"{path} {r.status_code}"] += 1
                await asyncio.sleep(0.15)
                if path == "/cancel" and r.status_code == 404:
                    continue  # the intent is not in yet: the cancel keeps racing it
                if path == "/orders" and r.json().get("status") != "REJECTED":
                    # 503 without a stored refusal means "not accepted now, retry" (deadline,
                    # Redis down): a client resends the same body, as S3's publisher does.
                    await asyncio.sleep(0.35)
                    continue
                return r.status_code
            return r.status_code
        return None

    async def _xadd(self, body: dict[str, Any]) -> bool:
        for _ in range(40):
            try:
                await self.redis.xadd(keys.ORDERS_INTENT, {"data": json.dumps(body)})
                return True
            except (redis_exc.RedisError, OSError):
                await asyncio.sleep(0.25)
        return False

    async def _send(self, plan: IntentPlan, rng: random.Random) -> bool:
        await asyncio.sleep(plan.delay_ms / 1000)
        # Stamped when the decision is made, as S3 does: every copy of the intent carries it.
        plan.body.setdefault("created_ts", int(time.time() * 1000))
        jobs: list[Any] = []
        if plan.path in ("rest", "both"):
            jobs.append(self._post("/orders", plan.body, rng))
            if plan.parallel_dup:
                jobs.append(self._post("/orders", plan.body, rng))
        if plan.path in ("stream", "both"):
            jobs.append(self._xadd(plan.body))
            if plan.parallel_dup and plan.path == "stream":
                jobs.append(self._xadd(plan.body))
        if plan.cancel_after_ms is not None:

            async def cancel() -> int | None:
                await asyncio.sleep(plan.cancel_after_ms / 1000)  # type: ignore[operator]
                return await self._post("/cancel", {"client_order_id": plan.coid}, rng)

            jobs.append(cancel())
        results = await asyncio.gather(*jobs, return_exceptions=True)
        rest = [r for r in results[: (2 if plan.parallel_dup else 1)] if isinstance(r, int)]
        if plan.path in ("rest", "both") and rest and all(400 <= c < 500 for c in rest):
            plan.refused_http = rest[0]  # refused at the door (e.g. 422 SL/TP sanity)
        return any(r not in (None, False) and not isinstance(r, BaseException) for r in results)

    async def _status(self, coid: str) -> str | None:
        for target in self.stack.live():
            try:
                r = await self.http.get(f"{target.url}/orders/{coid}", timeout=5)
            except httpx.HTTPError:
                continue
            if r.status_code == 200:
                return str(r.json()["order"]["status"])
            if r.status_code == 404:
                return None
        return "?"

    async def _dead_lettered(self, coid: str) -> bool:
        try:
            entries = await self.redis.xrange(keys.ORDERS_INTENT_DLQ)
            alerts = await self.redis.xrange(keys.ALERTS)
        except (redis_exc.RedisError, OSError):
            return False
        hit = [e for _id, e in entries if coid in str(e.get("data", ""))]
        alerted = any("INTENT_DEAD_LETTER" in str(e.get("data", "")) for _id, e in alerts)
        return bool(hit) and alerted

    async def run_scenario(self, sc: Scenario) -> None:
        started = time.monotonic()
        rng = random.Random(f"chaos-send:{self.cfg.seed}:{sc.index}")
        sent = await asyncio.gather(*(self._send(p, rng) for p in sc.intents))
        issued = [p for p, ok in zip(sc.intents, sent, strict=True) if ok]
        self.stats.intents += len(issued)
        deadline = time.monotonic() + self.cfg.scenario_timeout_s
        statuses: dict[str, str] = {}
        pending = {p.coid for p in issued if not (p.refused_http and p.path == "rest")}
        for p in issued:
            if p.refused_http:
                self.stats.http_errors[f"/orders {p.refused_http} (refused)"] += 1
            if p.coid not in pending:
                statuses[p.coid] = "REFUSED"
        refused = {p.coid for p in issued if p.refused_http}
        rounds = 0
        while pending and time.monotonic() < deadline:
            # The outcome event says when to look; GET /orders (every ~2 s) catches intents
            # that end without one (refused at intake) and events that never come.
            for coid in list(pending):
                if coid not in self.outcomes and rounds % 8:
                    continue
                st = await self._status(coid)
                if st is not None and st in TERMINAL:
                    statuses[coid] = st
                    pending.discard(coid)
                elif st is None and rounds % 8 == 0 and await self._dead_lettered(coid):
                    # Refused with nothing stored (a stream copy gone stale): its final place
                    # is the dead-letter stream; no outcome event will ever come.
                    statuses[coid] = "REFUSED" if coid in refused else "DLQ"
                    self.stats.dead_lettered += coid not in refused
                    pending.discard(coid)
            rounds += 1
            if pending:
                await asyncio.sleep(0.25)
        for coid in pending:
            st = await self._status(coid)
            if st is None and coid in refused:
                statuses[coid] = "REFUSED"  # REST said 4xx; its stream copy was refused too
            elif await self._dead_lettered(coid):
                statuses[coid] = "DLQ"
                self.stats.dead_lettered += 1
            else:
                statuses[coid] = st or "ABSENT"
        found = await self.settled_check(sc, issued, statuses)
        for v in found:
            self.say(v.line())
        self.stats.violations += found
        self.stats.statuses.update(statuses.values())
        self.stats.done += 1
        self.stats.durations.append(time.monotonic() - started)
        self.progress(sc, [statuses[p.coid] for p in issued], found)

    # ---- the checks ----------------------------------------------------------------------
    async def settled_check(
        self, sc: Scenario, issued: list[IntentPlan], statuses: dict[str, str]
    ) -> list[Violation]:
        """The checks, re-run while they fail: a late booking (a stop or take profit that fired
        as the scenario ended, polled under a 429 storm) is not a violation, so other findings
        get up to 10 settle periods (30 s by default), and a naked position the venue's whole
        weight minute (`naked_settle_s`). Naked longer than S4_UNPROTECTED_ALERT_MS after its
        first fill, it must have raised POSITION_UNPROTECTED or PROTECTION_LATE (NAKED_UNALERTED
        otherwise)."""
        naked_seen: dict[str, int] = {}  # parent → last wall ms the checker saw it naked
        waited, attempt = 0.0, 0
        while True:
            found = await self.check(sc, issued, statuses)
            now_ms = int(time.time() * 1000)
            naked_seen.update({v.coid: now_ms for v in found if v.kind == "NAKED_POSITION"})
            only_naked = all(v.kind == "NAKED_POSITION" for v in found)
            budget = self.cfg.naked_settle_s if only_naked else self.cfg.settle_s * 10
            if not found or waited >= budget:
                break
            attempt += 1
            delay = min(self.cfg.settle_s * attempt, budget - waited)
            await asyncio.sleep(delay)
            waited += delay
        return found + await self.unalerted_naked(sc, naked_seen)

    async def unalerted_naked(self, sc: Scenario, naked_seen: dict[str, int]) -> list[Violation]:
        if not naked_seen:
            return []
        trades = await self.venue("trades", sc.prefix)
        try:
            alerts = [e for _id, e in await self.redis.xrange(keys.ALERTS)]
        except (redis_exc.RedisError, OSError):
            alerts = []
        out: list[Violation] = []
        slack_ms = 2_000  # S4's protection poll and the alert's publish
        for parent, seen_ms in naked_seen.items():
            entry_ts = [
                int(t["ts"])
                for t in trades
                if (m := _CHILD.match(t["client_order_id"] or ""))
                and m["parent"] == parent
                and int(m["n"]) < FIRST_PROTECTIVE_CHILD
            ]
            if not entry_ts or seen_ms - min(entry_ts) < self.cfg.unprotected_alert_ms + slack_ms:
                continue
            if not any(
                ("POSITION_UNPROTECTED" in (d := str(e.get("data", ""))) or "PROTECTION_LATE" in d)
                and parent in d
                for e in alerts
            ):
                out.append(
                    Violation(
                        sc.index,
                        "NAKED_UNALERTED",
                        parent,
                        f"seen naked {(seen_ms - min(entry_ts)) / 1000:.1f} s after its first fill "
                        "without a POSITION_UNPROTECTED alert",
                    )
                )
        return out

    async def check(
        self, sc: Scenario, issued: list[IntentPlan], statuses: dict[str, str]
    ) -> list[Violation]:
        loop = asyncio.get_running_loop()
        evidence = Evidence(
            orders=await self.venue("orders", sc.prefix),
            trades=await self.venue("trades", sc.prefix),
            algos=await self.venue("algo-orders", sc.prefix),
            stored=await loop.run_in_executor(None, self.store.orders, sc.prefix),
            fills=await loop.run_in_executor(None, self.store.fills, sc.prefix),
            executed=self.executed,
        )
        return find_violations(sc, issued, statuses, evidence, self.cfg.scenario_timeout_s)

    async def final_checks(self) -> list[Violation]:
        """ETHUSDT carries only bracketed longs: its position must be covered by open stops."""
        out: list[Violation] = []
        positions = {p["symbol"]: D(p["qty"]) for p in await self.venue("positions")}
        pos = positions.get("ETHUSDT", D(0))
        stops = [
            a
            for a in await self.venue("algo-orders")
            if a["symbol"] == "ETHUSDT"
            and a["type"] == "STOP_MARKET"
            and a["status"] == "NEW"
            and a["side"] == "SELL"
        ]
        covered = sum((D(a["qty"] or "0") for a in stops), D(0))
        if pos > 0 and covered < pos and not any(a["close_position"] for a in stops):
            out.append(
                Violation(
                    -1,
                    "UNPROTECTED_POSITION",
                    "ETHUSDT",
                    f"position {pos} but open stops cover {covered}",
                )
            )
        return out

    # ---- main loop -----------------------------------------------------------------------
    async def run(self) -> Stats:
        bg = [
            asyncio.create_task(self.watch_executed()),
            asyncio.create_task(self.process_faults()),
        ]
        prices = await self.ref_prices()
        for _ in range(20):  # the scenarios need both before the first one is made
            if len(prices) == 2:
                break
            prices = {**prices, **await self.ref_prices()}
        sem = asyncio.Semaphore(self.cfg.concurrency)
        refresh_every = 25

        async def one(i: int) -> None:
            nonlocal prices
            async with sem:
                if i % refresh_every == 0:
                    prices = {**prices, **await self.ref_prices()}
                await self.run_scenario(make_scenario(self.cfg.seed, i, prices))

        try:
            await asyncio.gather(*(one(i) for i in range(self.cfg.scenarios)))
        finally:
            self.stop.set()
            for t in bg:
                t.cancel()
            for t in bg:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t
        await asyncio.sleep(self.cfg.settle_s)
        final = await self.final_checks()
        for v in final:
            self.say(v.line())
        self.stats.violations += final
        return self.stats

    async def aclose(self) -> None:
        await self.http.aclose()
        await self.redis.aclose()


def _pct(values: list[float], q: int) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, len(ordered) * q // 100)]


def summary(cfg: Config, stats: Stats, wall_s: float, faults: list[dict[str, Any]]) -> str:
    by_kind = Counter(v.kind for v in stats.violations)
    venue_faults = Counter()  # type: Counter[str]
    for row in faults:
        venue_faults[row["kind"]] += int(row["count"])
    lines = [
        "=" * 78,
        f"chaos campaign  seed={cfg.seed}  scenarios={stats.done}/{cfg.scenarios}  "
        f"concurrency={cfg.concurrency}  wall={wall_s:.0f}s "
        f"({stats.done / wall_s if wall_s else 0:.2f} scenarios/s)",
        f"scenario duration p50={_pct(stats.durations, 50):.1f}s "
        f"p95={_pct(stats.durations, 95):.1f}s max={max(stats.durations, default=0):.1f}s",
        f"intents issued: {stats.intents}   outcomes: "
        + ", ".join(f"{k}={v}" for k, v in stats.statuses.most_common()),
        f"venue faults injected (fault rate {cfg.fault_rate}): "
        + (", ".join(f"{k}={v}" for k, v in venue_faults.most_common()) or "none"),
        "process faults: "
        + (", ".join(f"{k}={v}" for k, v in sorted(stats.process_faults.items())) or "none"),
        "HTTP answers other than 2xx seen by the clients: "
        + (", ".join(f"{k}={v}" for k, v in stats.http_errors.most_common(8)) or "none"),
        f"VIOLATIONS: {len(stats.violations)}"
        + (" (" + ", ".join(f"{k}={v}" for k, v in by_kind.most_common()) + ")" if by_kind else ""),
    ]
    for v in stats.violations[:12]:
        lines.append(v.line())
    if len(stats.violations) > 12:
        lines.append(f"  ... {len(stats.violations) - 12} more above")
    lines.append(
        f"replay: make chaos SEED={cfg.seed} CHAOS_SCENARIOS={cfg.scenarios}  "
        f"(python -m tests.chaos.campaign --seed {cfg.seed} --scenarios {cfg.scenarios})"
    )
    lines.append("=" * 78)
    return "\n".join(lines)


async def run_campaign(cfg: Config) -> tuple[Stats, str]:
    """Start the stack, run the campaign, stop everything; returns the stats and the summary."""
    own_dir = cfg.run_dir is None
    run_dir = cfg.run_dir or Path(tempfile.mkdtemp(prefix=f"chaos-{cfg.seed}-"))
    run_dir.mkdir(parents=True, exist_ok=True)
    stack = Stack(cfg, run_dir)
    loop = asyncio.get_running_loop()
    t0 = time.monotonic()
    campaign: Campaign | None = None
    if not cfg.quiet:
        print(f"chaos: seed={cfg.seed} scenarios={cfg.scenarios} run dir {run_dir}", flush=True)
    try:
        await loop.run_in_executor(None, stack.start)
        if not cfg.quiet:
            print(
                f"chaos: stack up in {time.monotonic() - t0:.0f}s (redis {stack.redis.address},"
                f" facade {stack.facade.url}, replicas "
                f"{', '.join(r.url for r in stack.replicas)})",
                flush=True,
            )
        campaign = Campaign(cfg, stack)
        t1 = time.monotonic()
        try:
            stats = await campaign.run()
            faults = await campaign.venue("faults")
        finally:
            await campaign.aclose()
        text = summary(cfg, stats, time.monotonic() - t1, faults)
    finally:
        if campaign is not None:
            # Restarts end before the stack stops: one waking from its back-off after stop()
            # would start the replica again and leave its log open.
            for task in campaign.restarts:
                task.cancel()
            await asyncio.gather(*campaign.restarts, return_exceptions=True)
        await loop.run_in_executor(None, stack.stop)
        if own_dir and not cfg.keep:
            shutil.rmtree(run_dir, ignore_errors=True)
    return stats, text


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m tests.chaos.campaign",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    env_seed = os.environ.get("SEED") or os.environ.get("CHAOS_SEED")
    p.add_argument("--seed", type=int, default=int(env_seed) if env_seed else None)
    p.add_argument("--scenarios", type=int, default=int(os.environ.get("CHAOS_SCENARIOS") or 1000))
    p.add_argument(
        "--concurrency", type=int, default=int(os.environ.get("CHAOS_CONCURRENCY") or 12)
    )
    p.add_argument(
        "--fault-rate", type=float, default=float(os.environ.get("CHAOS_FAULT_RATE") or 0.03)
    )
    p.add_argument("--no-process-faults", action="store_true")
    p.add_argument("--fault-every-s", type=float, default=3.0)
    p.add_argument("--weight-limit", type=int, default=6000)
    p.add_argument("--run-dir", type=Path, default=None, help="keep logs and data here")
    p.add_argument("--quiet", action="store_true")
    a = p.parse_args(argv)
    seed = a.seed if a.seed is not None else random.SystemRandom().randrange(1, 1_000_000)
    cfg = Config(
        seed=seed,
        scenarios=a.scenarios,
        concurrency=a.concurrency,
        fault_rate=a.fault_rate,
        process_faults=not a.no_process_faults,
        fault_every_s=a.fault_every_s,
        weight_limit=a.weight_limit,
        run_dir=a.run_dir,
        keep=a.run_dir is not None,
        quiet=a.quiet,
    )
    stats, text = asyncio.run(run_campaign(cfg))
    print(text, flush=True)
    return 1 if stats.violations or stats.done < cfg.scenarios else 0


if __name__ == "__main__":
    sys.exit(main())

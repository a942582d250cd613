"""The default stack under one bracketed live decision per second per symbol (issue 10's target).

    .venv/bin/python tests/bench/bench_live_decisions.py                 # 10 minutes
    .venv/bin/python tests/bench/bench_live_decisions.py --minutes 2 --symbols BTCUSDT,ETHUSDT

Starts `make run`'s stack (scripts/devstack.py: embedded Redis, SQLite, the simulator, S3 and
S4) on free ports, then sends one live `POST /decide` per second per symbol — the default
bundle, so every entry carries SL/TP — for the given time, and a dry-run decision beside each
as the baseline measured in the same run. At the end it reads S4's own records:

* entries S4 refused for request weight (`ENTRY_REFUSED` on `router:events` whose reason or
  message names the weight budget or a venue 429) — target 0;
* S3 skips `LOCK_BUSY` (S4 holding `lock:pos:{symbol}`) — target 0;
* live decisions that opened, and the protective orders S4 placed for them;
* the venue weight S4 used per minute (its `/health` weight budget), per live bracket.

Prints its figures and exits 0 when both targets hold, 1 otherwise (a benchmark with a verdict,
not a test of `make test`).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from svckit import jsonutil  # noqa: E402
from svckit.embedded_redis import free_port  # noqa: E402


def http(method: str, url: str, body: Any = None, token: str | None = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("content-type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def redis_range(addr: str, stream: str) -> list[dict[str, Any]]:
    """XRANGE through redis-py (the address devstack printed)."""
    import redis

    host, _, port = addr.rpartition(":")
    r = redis.Redis(host=host, port=int(port), decode_responses=True)
    try:
        return [jsonutil.loads(e[1]["data"]) for e in r.xrange(stream)]
    finally:
        r.close()


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * len(xs)))] if xs else float("nan")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--symbols", default="BTCUSDT")
    args = ap.parse_args()
    symbols = [s.strip().upper() for s in args.symbols.split(",") if s.strip()]
    tmp = Path(tempfile.mkdtemp(prefix="bench-live-"))
    s3_port, s4_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("S3_", "S4_", "MD_"))} | {
        "S3_PORT": str(s3_port), "S4_PORT": str(s4_port), "MD_PORT": str(free_port()),
        "DEVSTACK_DATA_DIR": str(tmp),
        "DEVSTACK_TOKEN_DIR": str(tmp / "tokens"),
        "S3_SYMBOLS": ",".join(sorted({*symbols, "BTCUSDT"})),
    }  # fmt: skip
    log_path = tmp / "devstack.log"
    log = log_path.open("w+")
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "scripts" / "devstack.py")], env=env, cwd=REPO,
        stdout=log, stderr=subprocess.STDOUT, process_group=0,
    )  # fmt: skip
    live_ms: list[float] = []
    dry_ms: list[float] = []
    decisions: Counter[str] = Counter()
    opened: list[str] = []
    health: list[dict[str, Any]] = []
    try:
        deadline = time.monotonic() + 120
        while "devstack: ready" not in log_path.read_text():
            if proc.poll() is not None or time.monotonic() > deadline:
                print(log_path.read_text()[-3000:])
                return 2
            time.sleep(0.2)
        text = log_path.read_text()
        m = re.search(r"redis-server \(embedded\) on (\S+)", text)
        assert m is not None, text[-2000:]
        redis_addr = m.group(1)
        s3_tok = (tmp / "tokens" / "s3_api_token").read_text().strip()
        s3, s4 = f"http://127.0.0.1:{s3_port}", f"http://127.0.0.1:{s4_port}"
        end = time.monotonic() + args.minutes * 60
        next_tick = time.monotonic()
        n = 0
        print(f"live decisions: {', '.join(symbols)}, one per second each, "
              f"{args.minutes:g} min (stack in {tmp})", flush=True)  # fmt: skip
        while time.monotonic() < end:
            for sym in symbols:
                t0 = time.perf_counter()
                status, body = http("POST", f"{s3}/decide", {"symbol": sym}, s3_tok)
                live_ms.append((time.perf_counter() - t0) * 1000)
                if status != 200:
                    decisions[f"HTTP_{status}"] += 1
                else:
                    decisions[body["reason"] if body["decision"] == "skip" else "OPEN"] += 1
                    if body["decision"] == "open":
                        opened.append(body["intent"]["client_order_id"])
                t0 = time.perf_counter()
                http("POST", f"{s3}/decide", {"symbol": sym, "dry_run": True}, s3_tok)
                dry_ms.append((time.perf_counter() - t0) * 1000)
            n += 1
            if n % 60 == 0:
                _, h = http("GET", f"{s4}/health")
                health.append(
                    {"t": n, "weight": h.get("weight", {}) if isinstance(h, dict) else {}}
                )
                left = max(0.0, end - time.monotonic())
                print(f"  {n // 60} min: {dict(decisions)}; ETA {left / 60:.1f} min", flush=True)
            next_tick += 1.0
            time.sleep(max(0.0, next_tick - time.monotonic()))
        events = redis_range(redis_addr, "router:events")
        alerts = redis_range(redis_addr, "alerts")
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=90)
        log.close()

    refused = [e for e in events if e.get("event") == "ENTRY_REFUSED"]
    weight_refusals = [
        e for e in refused
        if re.search(r"weight|429|rate.?limit", json.dumps(e.get("data", {})), re.I)
    ]  # fmt: skip
    protective = [
        e for e in events if e.get("event") == "POSITION_PROTECTED"
    ]  # fmt: skip
    lock_busy = decisions.get("LOCK_BUSY", 0)
    print("\n== live decisions on the default stack")
    print(f"  decisions {sum(decisions.values())}: {dict(decisions)}")
    print(f"  opened {len(opened)}; positions protected (POSITION_PROTECTED) {len(protective)}")
    print(f"  live /decide p50 {statistics.median(live_ms):.2f} ms, p99 {pct(live_ms, 0.99):.2f}"
          f" ms; dry-run baseline p50 {statistics.median(dry_ms):.2f} ms, "
          f"p99 {pct(dry_ms, 0.99):.2f} ms")  # fmt: skip
    print(
        f"  entries refused {len(refused)}, of which for weight/429: {len(weight_refusals)}"
        " (target 0)"
    )
    print(f"  LOCK_BUSY skips {lock_busy} (target 0)")
    kinds = Counter(a.get("kind") for a in alerts)
    print(f"  alerts: {dict(kinds)}")
    if health:
        print(f"  S4 weight budget, last sample: {health[-1]['weight']}")
    ok = not weight_refusals and lock_busy == 0
    print("verdict:", "OK" if ok else "TARGET MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

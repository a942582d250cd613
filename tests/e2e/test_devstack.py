"""`make run` (scripts/devstack.py) as a user runs it: a real process tree on loopback.

Starts the stack on free ports, walks the README's curl path, then sends Ctrl-C (SIGINT) and
checks that every process – S3, S4, the market-data feeder and the embedded redis-server – is
gone; and, with traffic in flight, that Ctrl-C as a terminal sends it (to the whole process
group) stops S3, then S4, then the feeder, then Redis, with no event lost.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import redis as redis_sync

from svckit.embedded_redis import free_port
from svckit.store.base import Query
from svckit.store.sqlite import SqliteStore
from tradekit.enums import OrderStatus

REPO = Path(__file__).resolve().parents[2]


def _http(
    method: str, url: str, body: dict[str, Any] | None = None, token: str | None = None
) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("content-type", "application/json")
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def _children(pid: int) -> list[int]:
    out = subprocess.run(
        ["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True, check=False
    )
    return [int(p) for p in out.stdout.split()]


def _collect_streams(
    address: str, streams: list[str], out: dict[str, list[dict[str, Any]]], ready: threading.Event
) -> None:
    """Follow `streams` (XREAD BLOCK) until the server goes away: what S3/S4 published."""
    host, port = address.rsplit(":", 1)
    client = redis_sync.Redis(host=host, port=int(port), socket_timeout=5, decode_responses=True)
    last: dict[Any, Any] = dict.fromkeys(streams, "0")
    ready.set()
    try:
        while True:
            answer: Any = client.xread(last, block=500)
            for name, entries in answer or []:
                for entry_id, fields in entries:
                    last[name] = entry_id
                    out[name].append(json.loads(fields["data"]))
    except (redis_sync.ConnectionError, redis_sync.TimeoutError, OSError):
        return
    finally:
        client.close()


def _traffic(s3: str, s4: str, stop: threading.Event, sent: list[str], lane: int) -> None:
    """REST orders (MARKET and 4-slice TWAPs, some still running at Ctrl-C) and live S3
    decisions, until told to stop; errors once the stack goes down are expected."""
    twap = {"type": "TWAP", "slices": 4, "gap_ms": 400, "jitter_pct": 0, "maker_wait_ms": 0}
    i = lane * 100_000
    while not stop.is_set():
        i += 1
        policy = twap if i % 2 else {"type": "MARKET"}
        order = {
            "intent_id": f"t-{i}",
            "market": "FUT",
            "symbol": "BTCUSDT",
            "side": "BUY" if i % 4 < 2 else "SELL",
            "qty": 0.004,
            "exec_policy": policy,
            "client_order_id": f"sd-{i}",
        }
        try:
            _http("POST", f"{s4}/orders", order)
            sent.append(f"sd-{i}")
            _http("POST", f"{s3}/decide", {"symbol": "BTCUSDT"})
        except (OSError, ValueError):
            pass
        time.sleep(0.05)


LIVE_ATTEMPTS = 10  # ≈ 6 % of the replayed quotes are wider than R-001's 2.5 bps: 10 is plenty


@pytest.mark.slow
def test_devstack_serves_both_apis_and_on_ctrl_c_stops_s3_s4_redis_in_order_dropping_nothing(
    tmp_path: Path,
) -> None:
    """The README's curl path, then traffic, then Ctrl-C as a terminal sends it: to the whole
    foreground process group, the children too. The stack must still stop in order (S3, which
    publishes to S4; then S4, finishing its steps; then Redis), with executions in flight,
    publish every event it produced and leave no process behind."""
    s3_port, s4_port, md_port = free_port(), free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("S3_", "S4_", "MD_"))} | {
        "S3_PORT": str(s3_port),
        "S4_PORT": str(s4_port),
        "MD_PORT": str(md_port),
        "DEVSTACK_DATA_DIR": str(tmp_path),
        "DEVSTACK_TOKEN_DIR": str(tmp_path / "tokens"),
        "DEVSTACK_REDIS_DIR": "",  # nothing written under the repository's var/
    }
    log_path = tmp_path / "devstack.log"
    log = log_path.open("w+")
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "scripts" / "devstack.py")],
        env=env,
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
        process_group=0,  # its own group, as a shell runs a foreground job
    )
    stop = threading.Event()
    streams: dict[str, list[dict[str, Any]]] = {"router:events": [], "orders:executed": []}
    sent: list[str] = []
    threads: list[threading.Thread] = []
    procs: list[int] = []
    try:
        deadline = time.monotonic() + 90
        while "devstack: ready" not in log_path.read_text():
            assert proc.poll() is None, log_path.read_text()[-3000:]
            assert time.monotonic() < deadline, "devstack did not become ready"
            time.sleep(0.2)
        text = log_path.read_text()
        assert f"s3-strategy listening on http://127.0.0.1:{s3_port}" in text
        assert f"s4-router listening on http://127.0.0.1:{s4_port}" in text
        assert f"md-feeder listening on http://127.0.0.1:{md_port}" in text
        procs = _children(proc.pid)
        assert len(procs) == 4  # redis-server, the feeder, S4, S3

        # Tokens generated under the token dir, owner-only, and their paths printed.
        tokens = {}
        for var in ("S3_API_TOKEN", "S3_ADMIN_TOKEN", "S4_API_TOKEN"):
            path = tmp_path / "tokens" / var.lower()
            assert f"devstack: {var} from {path}" in text
            assert path.stat().st_mode & 0o777 == 0o600
            tokens[var] = path.read_text().strip()
            assert len(tokens[var]) == 64
        assert f'-H "Authorization: Bearer $(cat {tmp_path / "tokens" / "s3_api_token"})"' in text
        s3_tok, s4_tok = tokens["S3_API_TOKEN"], tokens["S4_API_TOKEN"]

        s3, s4 = f"http://127.0.0.1:{s3_port}", f"http://127.0.0.1:{s4_port}"
        assert _http("GET", f"{s3}/health")[1]["status"] == "ok"
        assert _http("GET", f"{s4}/health")[1]["status"] == "ok"
        feeder = _http("GET", f"http://127.0.0.1:{md_port}/health")[1]
        assert feeder["status"] == "ok" and feeder["source"] == "sim", feeder
        dry = {"symbol": "BTCUSDT", "dry_run": True}
        assert _http("POST", f"{s3}/decide", dry)[0] == 401
        assert _http("POST", f"{s3}/decide", dry, token=s4_tok)[0] == 401
        status, body = _http("POST", f"{s3}/decide", dry, token=s3_tok)
        assert status == 200 and body["decision"] in ("open", "skip") and body["reason"]
        order = {
            "intent_id": "u-1",
            "market": "FUT",
            "symbol": "BTCUSDT",
            "side": "BUY",
            "qty": 0.002,
            "exec_policy": {"type": "MARKET"},
            "client_order_id": "ds-1",
            "created_ts": int(time.time() * 1000),
        }
        assert _http("POST", f"{s4}/orders", order, token=s3_tok)[0] == 401
        status, body = _http("POST", f"{s4}/orders", order, token=s4_tok)
        assert (status, body["result"], body["status"]) == (200, "OK", "FILLED")
        status, body = _http("POST", f"{s4}/orders", order, token=s4_tok)
        assert body["duplicate"] is True
        status, body = _http("POST", f"{s4}/orders", {**order, "qty": 0}, token=s4_tok)
        assert status == 422 and "qty" in body["message"]

        # `make run` trades for real (issue 11): a live /decide for BTCUSDT, on the feed's
        # market data only, opens within a few attempts and S4 executes it; the same request
        # with what-if features is refused (they are for dry runs).
        what_if = {"symbol": "BTCUSDT", "context": {"features": {"mid": 70000}}}
        status, body = _http("POST", f"{s3}/decide", what_if, token=s3_tok)
        assert status == 422 and "context.features" in body["detail"]
        answers: list[dict[str, Any]] = []
        for _ in range(LIVE_ATTEMPTS):
            status, body = _http("POST", f"{s3}/decide", {"symbol": "BTCUSDT"}, token=s3_tok)
            assert status == 200, body
            answers.append(body)
            if body["decision"] == "open":
                break
            time.sleep(1.0)  # the next snapshot
        reasons = [a["reason"] for a in answers]
        assert answers[-1]["decision"] == "open", reasons
        opened = answers[-1]
        assert opened["publish"]["rest"] == "ok" and opened["publish"]["s4"]["result"] == "OK"

        # Then traffic in flight (REST orders, TWAPs under way, live decisions) at Ctrl-C.
        m = re.search(r"redis-server \(embedded\) on (\S+)", log_path.read_text())
        assert m is not None
        ready = threading.Event()
        threads = [
            threading.Thread(
                target=_collect_streams,
                args=(m.group(1), list(streams), streams, ready),
                daemon=True,
            ),
        ] + [
            threading.Thread(
                target=_traffic,
                args=(
                    f"http://127.0.0.1:{s3_port}",
                    f"http://127.0.0.1:{s4_port}",
                    stop,
                    sent,
                    lane,
                ),
                daemon=True,
            )
            for lane in range(4)  # requests in flight in both services at Ctrl-C
        ]
        threads[0].start()
        assert ready.wait(10)
        for t in threads[1:]:
            t.start()
        time.sleep(3)  # TWAPs under way when Ctrl-C comes
    finally:
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: the whole foreground group
        rc = proc.wait(timeout=60)
        stop.set()
        for t in threads:
            t.join(timeout=15)
        log.close()
    text = log_path.read_text()
    assert rc == 0, text[-3000:]
    assert len(sent) >= 5, text[-3000:]
    assert "not published" not in text, text[-5000:]
    # Nobody saw Redis go away under it while stopping.
    assert "Connection refused" not in text and "redis unavailable" not in text, text[-5000:]

    async def parents() -> list[dict[str, Any]]:
        store = SqliteStore(tmp_path / "store.sqlite3")
        try:
            docs = await store.find("orders", Query(where={"parent_client_order_id": None}))
        finally:
            await store.close()
        return docs

    executed = [d for d in asyncio.run(parents()) if d.get("exec_state") is not None]
    finished = {d["client_order_id"] for d in executed if OrderStatus(d["status"]).is_terminal}
    assert finished, text[-3000:]
    reported = {e["client_order_id"] for e in streams["orders:executed"]}
    done_events = {
        e["client_order_id"] for e in streams["router:events"] if e["event"] == "EXEC_DONE"
    }
    # Every execution that finished before S4 stopped was reported on both streams.
    assert finished <= reported, sorted(finished - reported)
    assert finished <= done_events, sorted(finished - done_events)
    stops = [
        text.find(f"devstack: {name} stopped")
        for name in ("s3-strategy", "s4-router", "md-feeder", "redis-server")
    ]
    assert -1 not in stops and stops == sorted(stops), text[-3000:]
    # Each stopped by itself within its grace period (uvicorn re-raises the SIGTERM it
    # handled, hence rc -15), its lifespan shutdown complete: never killed.
    assert "killed" not in text, text[-3000:]
    for name in ("s3-strategy", "s4-router", "md-feeder"):
        assert re.search(rf"devstack: {name} stopped \(rc (0|-15)\)", text), text[-3000:]
        assert re.search(rf'"service":"{name}".*"Application shutdown complete', text)
    assert "devstack: stopped" in text
    for pid in procs:  # reaped by devstack: no process, no zombie
        assert not Path(f"/proc/{pid}").exists(), f"pid {pid} left behind"


def _devstack_module() -> Any:
    spec = importlib.util.spec_from_file_location("devstack", REPO / "scripts" / "devstack.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_devstack_tokens_from_environment_are_used_and_nothing_is_written(tmp_path: Path) -> None:
    devstack = _devstack_module()
    env = {"S3_API_TOKEN": "a" * 32, "S3_ADMIN_TOKEN": "b" * 32, "S4_API_TOKEN": "c" * 32}
    files = devstack.resolve_tokens(env, tmp_path / "tokens")
    assert files == {}
    assert not (tmp_path / "tokens").exists()
    assert env["S3_S4_API_TOKEN"] == "c" * 32  # S3 calls S4 with S4's token


def test_devstack_tokens_missing_are_generated_0600_and_reused(tmp_path: Path) -> None:
    devstack = _devstack_module()
    token_dir = tmp_path / "tokens"
    env = {"S4_API_TOKEN": "c" * 32}
    files = devstack.resolve_tokens(env, token_dir)
    assert set(files) == {"S3_API_TOKEN", "S3_ADMIN_TOKEN"}
    assert token_dir.stat().st_mode & 0o777 == 0o700
    for var, path in files.items():
        assert path.stat().st_mode & 0o777 == 0o600
        assert path.read_text().strip() == env[var] and len(env[var]) == 64
    assert env["S3_API_TOKEN"] != env["S3_ADMIN_TOKEN"]
    files["S3_API_TOKEN"].chmod(0o644)
    again: dict[str, str] = {"S4_API_TOKEN": "c" * 32}
    devstack.resolve_tokens(again, token_dir)
    assert again["S3_API_TOKEN"] == env["S3_API_TOKEN"]  # the same token across restarts
    assert files["S3_API_TOKEN"].stat().st_mode & 0o777 == 0o600

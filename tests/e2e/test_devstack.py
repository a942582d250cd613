"""`make run` (scripts/devstack.py) as a user runs it: a real process tree on loopback.

Starts the stack on free ports, walks the README's curl path, then sends Ctrl-C (SIGINT) and
checks that every process – S3, S4 and the embedded redis-server – is gone.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from svckit.embedded_redis import free_port

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


@pytest.mark.slow
def test_devstack_with_defaults_serves_both_apis_and_stops_cleanly_on_ctrl_c(
    tmp_path: Path,
) -> None:
    s3_port, s4_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("S3_", "S4_"))} | {
        "S3_PORT": str(s3_port),
        "S4_PORT": str(s4_port),
        "DEVSTACK_DATA_DIR": str(tmp_path),
        "DEVSTACK_TOKEN_DIR": str(tmp_path / "tokens"),
    }
    log = (tmp_path / "devstack.log").open("w+")
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "scripts" / "devstack.py")],
        env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while "devstack: ready" not in (tmp_path / "devstack.log").read_text():
            assert proc.poll() is None, (tmp_path / "devstack.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "devstack did not become ready"
            time.sleep(0.2)
        text = (tmp_path / "devstack.log").read_text()
        assert f"s3-strategy listening on http://127.0.0.1:{s3_port}" in text
        assert f"s4-router listening on http://127.0.0.1:{s4_port}" in text
        procs = _children(proc.pid)
        assert len(procs) == 3  # redis-server, S4, S3

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
        dry = {"symbol": "BTCUSDT", "dry_run": True}
        assert _http("POST", f"{s3}/decide", dry)[0] == 401
        assert _http("POST", f"{s3}/decide", dry, token=s4_tok)[0] == 401
        status, body = _http("POST", f"{s3}/decide", dry, token=s3_tok)
        assert status == 200 and body["decision"] in ("open", "skip") and body["reason"]
        order = {
            "intent_id": "u-1", "market": "FUT", "symbol": "BTCUSDT", "side": "BUY",
            "qty": 0.002, "exec_policy": {"type": "MARKET"}, "client_order_id": "ds-1",
        }  # fmt: skip
        assert _http("POST", f"{s4}/orders", order, token=s3_tok)[0] == 401
        status, body = _http("POST", f"{s4}/orders", order, token=s4_tok)
        assert (status, body["result"], body["status"]) == (200, "OK", "FILLED")
        status, body = _http("POST", f"{s4}/orders", order, token=s4_tok)
        assert body["duplicate"] is True
        status, body = _http("POST", f"{s4}/orders", {**order, "qty": 0}, token=s4_tok)
        assert status == 422 and "qty" in body["message"]
    finally:
        proc.send_signal(signal.SIGINT)
        rc = proc.wait(timeout=30)
        log.close()
    assert rc == 0, (tmp_path / "devstack.log").read_text()[-3000:]
    assert "devstack: stopped" in (tmp_path / "devstack.log").read_text()
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

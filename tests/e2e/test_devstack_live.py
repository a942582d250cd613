"""`make run` trades for real (issue 11): on the default stack a live `/decide` for BTCUSDT,
with market data from the simulator's feed only, opens within a few attempts and S4 executes it;
the same request with what-if features is refused (422) — they are for dry runs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from svckit.embedded_redis import free_port
from tests.e2e.test_devstack import REPO, _http

ATTEMPTS = 10  # ≈ 6 % of the replayed quotes are wider than R-001's 2.5 bps: 10 is plenty


@pytest.mark.slow
def test_devstack_live_decide_for_btcusdt_opens_within_a_few_attempts(tmp_path: Path) -> None:
    s3_port, s4_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("S3_", "S4_"))} | {
        "S3_PORT": str(s3_port),
        "S4_PORT": str(s4_port),
        "DEVSTACK_DATA_DIR": str(tmp_path),
    }
    log_path = tmp_path / "devstack.log"
    log = log_path.open("w+")
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "scripts" / "devstack.py")],
        env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while "devstack: ready" not in log_path.read_text():
            assert proc.poll() is None, log_path.read_text()[-3000:]
            assert time.monotonic() < deadline, "devstack did not become ready"
            time.sleep(0.2)
        s3 = f"http://127.0.0.1:{s3_port}"
        status, body = _http("POST", f"{s3}/decide", {
            "symbol": "BTCUSDT", "context": {"features": {"mid": 70000}}})  # fmt: skip
        assert status == 422 and "context.features" in body["detail"]

        answers: list[dict[str, Any]] = []
        for _ in range(ATTEMPTS):
            status, body = _http("POST", f"{s3}/decide", {"symbol": "BTCUSDT"})
            assert status == 200, body
            answers.append(body)
            if body["decision"] == "open":
                break
            time.sleep(1.0)  # the next snapshot
        reasons = [a["reason"] for a in answers]
        assert answers[-1]["decision"] == "open", reasons
        opened = answers[-1]
        assert opened["publish"]["rest"] == "ok" and opened["publish"]["s4"]["result"] == "OK"
        print(f"live /decide opened on attempt {len(answers)}: {reasons}")
    finally:
        proc.send_signal(signal.SIGINT)
        rc = proc.wait(timeout=30)
        log.close()
    assert rc == 0, log_path.read_text()[-3000:]

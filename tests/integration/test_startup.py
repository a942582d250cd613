"""Process start-up: bad configuration and unreachable Redis end the process with exit code 2
and one readable line naming the problem (no traceback)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from svckit.embedded_redis import free_port
from tests.helpers import TOKEN_ENV

REPO = Path(__file__).resolve().parents[2]


def _run(module: str, env_over: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("S3_", "S4_"))}
    env.update(TOKEN_ENV)  # the services refuse to start without their tokens
    env.update(env_over)
    env[f"{module[:2].upper()}_DATA_DIR"] = str(tmp_path)
    return subprocess.run(
        [sys.executable, "-m", module],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("module", ["s3_strategy", "s4_router"])
def test_start_with_unreachable_redis_exits_2_naming_the_address(
    module: str, tmp_path: Path
) -> None:
    port = free_port()
    prefix = module[:2].upper()
    res = _run(module, {f"{prefix}_REDIS_ADDRESSES": f"127.0.0.1:{port}"}, tmp_path)
    assert res.returncode == 2
    assert f"Redis unreachable at 127.0.0.1:{port}" in res.stderr
    assert "Traceback" not in res.stderr


@pytest.mark.parametrize(
    ("module", "var", "value"),
    [
        ("s3_strategy", "S3_MAX_FUNDING_ABS", "lots"),
        ("s4_router", "S4_CB_ERROR_RATE_WINDOW", "a while"),
        ("s4_router", "S4_EXCHANGE", "ftx"),
    ],
)
def test_start_with_invalid_variable_exits_2_naming_it(
    module: str, var: str, value: str, tmp_path: Path
) -> None:
    res = _run(module, {var: value}, tmp_path)
    assert res.returncode == 2
    assert var in res.stderr and "invalid configuration" in res.stderr
    assert "Traceback" not in res.stderr

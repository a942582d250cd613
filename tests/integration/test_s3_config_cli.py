"""`python -m s3_strategy.config` (issue 13): the operator CLI as a real subprocess on a real
Redis and the SQLite store, through the same service layer as the admin API."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

from s3_strategy.config import Settings
from s3_strategy.config_cli import build_parser, run
from svckit import keys
from svckit.redisio import RedisClient
from svckit.store.seed import seed_store
from svckit.store.sqlite import SqliteStore
from tests.conftest import FIXTURES, REPO


async def cli_process(env: dict[str, str], *args: str) -> tuple[int, Any]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "s3_strategy.config",
        "--actor",
        "cli:ops",
        *args,
        env=env,
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, json.loads(out or err)


async def cli(env: dict[str, str], *args: str) -> tuple[int, Any]:
    """The CLI in process (argument parsing and run(); a subprocess costs seconds of imports on
    a loaded machine — one test below goes through `python -m` for real)."""
    settings = Settings(
        redis_addresses=env["S3_REDIS_ADDRESSES"].split(","),
        data_dir=Path(env["S3_DATA_DIR"]),
        fixtures_dir=FIXTURES,
    )
    code, out = await run(build_parser().parse_args(["--actor", "cli:ops", *args]), settings)
    return code, json.loads(json.dumps(out, default=str))


async def test_cli_upload_activate_rollback_round_trip(
    redis: RedisClient, redis_addresses: list[str], tmp_path: Path
) -> None:
    store = SqliteStore(tmp_path / "store.sqlite3")
    report = await seed_store(store, FIXTURES)
    env = {
        **os.environ,
        "S3_REDIS_ADDRESSES": ",".join(redis_addresses),
        "S3_DATA_DIR": str(tmp_path),
        "S3_FIXTURES_DIR": str(FIXTURES),
    }
    try:
        code, shown = await cli_process(env, "show")
        assert code == 0 and shown["active_rev"] == report.bundle_rev
        bundle = shown["bundle"]
        bundle["params"]["tp_net_profit_pct"] = 0.2
        path = tmp_path / "bundle.json"
        path.write_text(json.dumps({"bundle": bundle}))  # `show` output, edited
        code, uploaded = await cli(env, "upload", str(path), "--note", "wider TP")
        assert code == 0 and uploaded["created"] is True, uploaded
        rev = uploaded["rev"]
        assert uploaded["diff"]["params"] == [{"path": "tp_net_profit_pct", "old": 0.1, "new": 0.2}]
        bundle["rules"][0]["when"] = {"allOf": [{"f": "nope", "op": "<", "v": 1}]}
        path.write_text(json.dumps(bundle))
        code, failed = await cli(env, "upload", str(path))
        assert code == 2 and failed["errors"][0]["path"].startswith("rules[0].when")
        code, activated = await cli(env, "activate", rev)
        assert code == 0 and activated == {"active_rev": rev, "previous_rev": report.bundle_rev}
        assert await redis.get(keys.CFG_ACTIVE_REV) == rev
        assert await redis.xlen(keys.CFG_EVENTS) == 1
        code, rolled = await cli(env, "rollback")
        assert code == 0 and rolled["active_rev"] == report.bundle_rev
        audit = sorted(await store.find("config_audit"), key=lambda d: d["ts"])
        assert [(a["action"], a["actor"]) for a in audit] == [
            ("activate", "cli:ops"),
            ("rollback", "cli:ops"),
        ]
        code, missing = await cli(env, "activate", "0123456789ab")
        assert code == 3 and "unknown config rev" in missing["error"]
    finally:
        await store.close()

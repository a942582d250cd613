"""Operator CLI for S3's hot-reloaded config: `python -m s3_strategy.config COMMAND`.

    show                      the active revision and its bundle (JSON)
    upload FILE [--note TXT]  lint + store a bundle ({params, rules, note?}; `-` reads stdin);
                              prints {rev, lint, diff}; exit 2 with {errors} when it fails lint
    diff [FROM] [TO]          semantic diff of two stored revisions (defaults: the active one)
    activate REV              make REV active on every replica
    rollback                  re-activate the previous revision
    history [--limit N]       the audit trail, newest first

It talks to the store and Redis directly through the same service layer as the admin API
(`service_layer/config_admin.py`) — with the replicas' own `S3_*` settings (`S3_REDIS_ADDRESSES`,
`S3_DB_ARANGO_*`, `S3_DATA_DIR`, `S3_SYMBOLS`, limits), so what it lints is what they build.
The actor recorded in the audit is `cli:$USER` (override with `--actor`).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
from collections.abc import Sequence
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from s3_strategy.adapters.configstore import ConfigStore
from s3_strategy.config import Settings
from s3_strategy.service_layer.config_admin import (
    BundleInvalid,
    BundleNotFound,
    ConfigAdmin,
    NoPreviousRevision,
)
from svckit.clock import WallClock
from svckit.errors import ConfigError, StartupError
from svckit.infra import open_infra


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m s3_strategy.config",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--actor", default=None, help="recorded in the audit (default cli:$USER)")
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("show")
    up = sub.add_parser("upload")
    up.add_argument("file")
    up.add_argument("--note", default=None)
    df = sub.add_parser("diff")
    df.add_argument("from_rev", nargs="?")
    df.add_argument("to_rev", nargs="?")
    act = sub.add_parser("activate")
    act.add_argument("rev")
    sub.add_parser("rollback")
    hist = sub.add_parser("history")
    hist.add_argument("--limit", type=int, default=20)
    return p


def _read_bundle(file: str) -> dict[str, Any]:
    text = sys.stdin.read() if file == "-" else Path(file).read_text(encoding="utf-8")
    data = json.loads(text)
    if isinstance(data, dict) and isinstance(data.get("bundle"), dict):
        data = data["bundle"]  # the output of `show` is accepted as is
    if not isinstance(data, dict):
        raise ValueError("a bundle is a JSON object {params, rules, note?}")
    return {k: data[k] for k in ("params", "rules", "note", "bundle_id") if k in data}


async def run(args: argparse.Namespace, settings: Settings) -> tuple[int, Any]:
    async with AsyncExitStack() as stack:  # closes Redis and the store, however it ends
        infra = await open_infra(stack, settings, prefix="S3_", seed=False)
        configs = ConfigStore(infra.store)
        admin = ConfigAdmin(
            settings=settings, redis=infra.redis, configs=configs, clock=WallClock()
        )
        return await _command(admin, args)


async def _command(admin: ConfigAdmin, args: argparse.Namespace) -> tuple[int, Any]:
    actor = args.actor or f"cli:{getpass.getuser()}"
    try:
        if args.cmd == "show":
            return 0, await admin.show()
        if args.cmd == "upload":
            body = _read_bundle(args.file)
            if args.note is not None:
                body["note"] = args.note
            out, created = await admin.upload(body, actor=actor)
            return 0, {**out, "created": created}
        if args.cmd == "diff":
            return 0, await admin.diff(args.from_rev, args.to_rev)
        if args.cmd == "activate":
            return 0, await admin.activate(args.rev, actor=actor)
        if args.cmd == "rollback":
            return 0, await admin.rollback(actor=actor)
        return 0, {"items": await admin.history(args.limit)}
    except BundleInvalid as exc:
        return 2, {"errors": exc.errors}
    except BundleNotFound as exc:
        return 3, {"error": f"unknown config rev {exc.args[0]!r}"}
    except NoPreviousRevision as exc:
        return 3, {"error": str(exc)}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings()
        code, out = asyncio.run(run(args, settings))
    except (ConfigError, StartupError, OSError, ValueError) as exc:
        print(json.dumps({"error": str(exc)}), file=sys.stderr)
        return 1
    print(json.dumps(out, indent=2, sort_keys=True, default=str))
    return code

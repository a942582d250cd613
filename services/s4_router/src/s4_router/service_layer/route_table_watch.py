"""Hot reload of S4's route table and reloadable settings (issue 13).

**Route table.** The file at `S4_ROUTE_TABLE_PATH` is a ConfigMap volume in Kubernetes, which the
kubelet updates in place by swapping a symlink (`..data`), so the watcher compares `stat()` of
the resolved file (inode, mtime, size) every `S4_CONFIG_WATCH_MS` and, on a change, reads and
validates the table. A valid table with a new content rev replaces `router.route_table` in one
assignment: an execution resolves its band once, at intake (`resolve_policy` → its
`ExecutionConfig`), so executions in flight keep the band they started with and the next intake
uses the new table. An invalid table is refused — alert `ROUTE_TABLE_INVALID` (once per content),
the old table stays, `/health` shows the error beside `route_table_rev`.

**Settings.** `S4_*` environment variables are read at start; a pod does not see a ConfigMap edit
in its environment. With `S4_SETTINGS_DIR` set (the same ConfigMap mounted as a directory: one file
per key), the watcher re-reads it, validates it as a whole `Settings`, applies the settings
declared reloadable (`config.RELOADABLE_SETTINGS`: the execution-policy limits) and reports every
changed restart-only setting — alert `CONFIG_RESTART_REQUIRED` and `/health.config.restart_required`
— instead of ignoring it silently.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from s4_router.config import RELOADABLE_SETTINGS, Settings
from s4_router.policies.registry import PolicyLimits
from s4_router.policies.route_table import RouteTable, RouteTableError
from s4_router.service_layer.publisher import Publisher
from s4_router.service_layer.router import OrderRouter
from svckit.store import content_rev

log = logging.getLogger(__name__)

Fingerprint = tuple[Any, ...]


def load_table(path: Path) -> RouteTable:
    """Read and validate a route table file (RouteTableError / OSError on failure)."""
    try:
        bands = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise RouteTableError(f"route table: invalid JSON: {exc}") from None
    return RouteTable.parse(bands, rev=content_rev(bands))


def _file_fingerprint(path: Path) -> Fingerprint:
    try:
        st = os.stat(path)  # follows the ConfigMap's symlinks
    except OSError as exc:
        return ("missing", type(exc).__name__)
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def read_settings_dir(path: Path) -> dict[str, str]:
    """`{field: raw value}` from the files `S4_*` of a mounted ConfigMap directory."""
    out: dict[str, str] = {}
    for name in sorted(os.listdir(path)):
        if name.startswith("S4_") and (path / name).is_file():
            out[name[3:].lower()] = (path / name).read_text(encoding="utf-8").strip()
    return out


def policy_limits(settings: Settings) -> PolicyLimits:
    """The execution-policy limits: the reloadable settings (each intake reads them once, so
    in-flight work keeps its own)."""
    return PolicyLimits(**{f: getattr(settings, f) for f in RELOADABLE_SETTINGS})


def changed_fields(old: Settings, new: Settings) -> list[str]:
    return [f for f in type(old).model_fields if getattr(old, f) != getattr(new, f)]


@dataclass(kw_only=True, eq=False)
class RouteTableWatcher:
    settings: Settings  # as running (reloadable fields follow the directory)
    router: OrderRouter
    publisher: Publisher
    table_error: str | None = field(default=None, init=False)
    swaps: int = field(default=0, init=False)
    restart_required: list[str] = field(default_factory=list, init=False)
    reloaded: list[str] = field(default_factory=list, init=False)
    settings_error: str | None = field(default=None, init=False)
    _refused: str | None = field(default=None, init=False)
    _reported: tuple[str, ...] = field(default=(), init=False)
    _baseline: Settings | None = field(default=None, init=False)
    _dir_fp: Fingerprint | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.path = self.settings.route_table_path
        self.interval_s = self.settings.config_watch_ms / 1000
        self._table_fp = _file_fingerprint(self.path)

    def health(self) -> dict[str, Any]:
        return {
            "route_table": {
                "rev": self.router.route_table.rev,
                "path": str(self.path),
                "state": "ok" if self.table_error is None else "refused",
                "error": self.table_error,
                "swaps": self.swaps,
            },
            "settings_dir": str(self.settings.settings_dir) if self.settings.settings_dir else None,
            "restart_required": [f"S4_{f.upper()}" for f in self.restart_required],
            "reloaded": [f"S4_{f.upper()}" for f in self.reloaded],
            "settings_error": self.settings_error,
        }

    # ---- route table --------------------------------------------------------------------------
    async def check_table(self) -> None:
        fp = _file_fingerprint(self.path)
        if fp == self._table_fp:
            return
        self._table_fp = fp
        try:
            table = await asyncio.to_thread(load_table, self.path)
        except (OSError, RouteTableError, ValueError) as exc:
            self.table_error = str(exc)
            if self.table_error != self._refused:  # alerted once per content
                self._refused = self.table_error
                kept = self.router.route_table.rev
                await self.publisher.alert(
                    "ROUTE_TABLE_INVALID",
                    f"{self.path}: refused ({exc}); keeping route table {kept}",
                    severity="critical",
                    data={"path": str(self.path), "kept_rev": kept},
                )
            return
        self.table_error, self._refused = None, None
        if table.rev == self.router.route_table.rev:
            return  # touched, same content
        old = self.router.route_table.rev
        self.router.route_table = table  # one assignment: intakes read it once each
        self.swaps += 1
        log.info("route table swapped", extra={"from_rev": old, "route_table_rev": table.rev})
        await self.publisher.event(
            "ROUTE_TABLE_RELOADED",
            client_order_id=None,
            symbol=None,
            data={"rev": table.rev, "previous_rev": old, "path": str(self.path)},
        )

    # ---- settings -----------------------------------------------------------------------------
    async def check_settings(self) -> None:
        directory = self.settings.settings_dir
        if directory is None:
            return
        fp: Fingerprint
        try:
            names = sorted(n for n in os.listdir(directory) if n.startswith("S4_"))
            fp = tuple((n, _file_fingerprint(directory / n)) for n in names)
        except OSError as exc:
            fp = ("missing", type(exc).__name__)
        if fp == self._dir_fp:
            return
        self._dir_fp = fp
        try:
            raw = await asyncio.to_thread(read_settings_dir, directory)
            new = Settings(**raw)  # type: ignore[arg-type]  # strings, validated like env vars
        except (OSError, ValidationError, ValueError) as exc:
            self.settings_error = str(exc)
            await self.publisher.alert(
                "SETTINGS_INVALID",
                f"{directory}: {exc}; running settings kept",
                severity="warning",
                data={"dir": str(directory)},
            )
            return
        self.settings_error = None
        if self._baseline is None:
            # The first reading is what the pod started with (the same ConfigMap feeds its env);
            # later readings are compared with it, so pod-level env (secrets, the consumer name
            # from the pod name) never reads as a change.
            self._baseline = new
            return
        reloadable = [f for f in changed_fields(self.settings, new) if f in RELOADABLE_SETTINGS]
        restart_only = [
            f for f in changed_fields(self._baseline, new) if f not in RELOADABLE_SETTINGS
        ]
        if reloadable:
            merged = self.settings.model_copy(update={f: getattr(new, f) for f in reloadable})
            self.router.limits = policy_limits(merged)
            self.settings = merged
            self.reloaded = sorted(set(self.reloaded) | set(reloadable))
            log.info("settings reloaded", extra={"fields": reloadable})
        self.restart_required = restart_only
        if restart_only and tuple(restart_only) != self._reported:
            names = [f"S4_{f.upper()}" for f in restart_only]
            await self.publisher.alert(
                "CONFIG_RESTART_REQUIRED",
                f"restart-only settings changed in {directory}: {names}; "
                "they take effect at the next rollout (kubectl rollout restart)",
                severity="warning",
                data={"settings": names},
            )
        self._reported = tuple(restart_only)

    # ---- loop ---------------------------------------------------------------------------------
    async def check(self) -> None:
        await self.check_table()
        await self.check_settings()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.check()
            except Exception:
                log.exception("config watch failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.interval_s)

"""Config administration (issue 13, spec C2): upload, lint, diff, activate, roll back, audit.

One service layer for the admin HTTP API (`entrypoints/admin.py`) and the operator CLI
(`python -m s3_strategy.config`):

* **upload** lints and compiles the bundle against the store's reference data (factor
  whitelist, instruments, route tables) and the `S3_*` limits — the very build a replica does
  before swapping — and only then stores it, immutable and content-addressed
  (`config_bundles/bundle-{rev}`). A bundle that fails lint is answered with every error
  (`[{path, message}]`) and nothing activatable is written.
* **activate** (serialised by `lock:cfg:activate`) re-lints (reference data may have changed
  since the upload), writes `config_active` (`{bundle_id, rev, previous_rev, activated_at,
  activated_by}`), an audit record in `config_audit`, sets `cfg:active_rev` and appends the
  revision to the capped stream `cfg:events`. The store is written first: a replica woken by the
  event always finds the record it announces.
* **rollback** activates `previous_rev` again (audited as a rollback).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from s3_strategy.adapters.configstore import ConfigStore, build_engine, bundle_rev
from s3_strategy.config import Settings
from s3_strategy.domain.config_diff import diff_bundles
from s3_strategy.domain.engine import ContextError, Engine
from s3_strategy.domain.rules import RuleLintError
from svckit import jsonutil, keys
from svckit.clock import Clock
from svckit.redisio import RedisClient, hold_lock
from svckit.store import KEY_RE
from svckit.store.base import Doc, Query

AUDIT = "config_audit"
_RULE_ERR = re.compile(r"^(?P<rid>[^:\s]+): (?:(?P<path>[A-Za-z_][\w.\[\]]*): )?(?P<msg>.*)$", re.S)


class BundleInvalid(Exception):
    def __init__(self, errors: list[dict[str, str]]) -> None:
        super().__init__("; ".join(f"{e['path']}: {e['message']}" for e in errors[:5]))
        self.errors = errors


class BundleNotFound(Exception):
    pass


class NoPreviousRevision(Exception):
    pass


def lint_errors(exc: ContextError, rules: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
    """A build failure as `[{path, message}]` (rule errors point into `rules[i]`)."""
    cause = exc.__cause__
    if isinstance(cause, ValidationError):
        return [
            {"path": ".".join(["params", *(str(p) for p in e["loc"])]), "message": e["msg"]}
            for e in cause.errors()
        ]
    if not isinstance(cause, RuleLintError):
        return [{"path": "bundle", "message": str(exc)}]
    index = {str(r.get("rule_id")): i for i, r in enumerate(rules) if isinstance(r, Mapping)}
    out: list[dict[str, str]] = []
    for text in cause.errors:
        m = _RULE_ERR.match(text)
        if m is None or m["rid"] not in index:
            out.append({"path": "rules", "message": text})
            continue
        path = f"rules[{index[m['rid']]}]" + (f".{m['path']}" if m["path"] else "")
        out.append({"path": path, "message": f"{m['rid']}: {m['msg']}"})
    return out


@dataclass(kw_only=True, eq=False)
class ConfigAdmin:
    settings: Settings
    redis: RedisClient
    configs: ConfigStore
    clock: Clock

    # ---- lint ---------------------------------------------------------------------------------
    async def lint(self, bundle: Mapping[str, Any]) -> tuple[Engine, list[str]]:
        """Build the engine the replicas would build (lint + compile) and say what to warn
        about, or BundleInvalid."""
        rules = bundle.get("rules") or []
        content = await self.configs.content_for(self.settings, bundle)
        try:
            # CPU only: a worker thread keeps this replica's event loop answering decisions.
            engine = await asyncio.to_thread(build_engine, content)
        except ContextError as exc:
            errors = lint_errors(exc, rules)
            if isinstance(exc.__cause__, ValidationError):
                # params failed first; report the rules' problems in the same answer
                try:
                    build_engine(
                        await self.configs.content_for(self.settings, {**bundle, "params": {}})
                    )
                except ContextError as rules_exc:
                    errors += lint_errors(rules_exc, rules)
            raise BundleInvalid(errors) from exc
        missing = [s for s in self.settings.symbols if s not in engine.plans]
        if missing:
            raise BundleInvalid(
                [{"path": "instruments", "message": f"S3_SYMBOLS not tradable: {missing}"}]
            )
        warnings: list[str] = []
        for sym in self.settings.symbols:
            for market, plan in engine.plans[sym].markets.items():
                if plan.rules.empty:
                    warnings.append(
                        f"no ENABLED rule applies to {sym}/{market.value}: every decision there "
                        "skips with NO_RULES"
                    )
        disabled = len(engine.rule_ids) - engine.rules_enabled
        if disabled:
            warnings.append(f"{disabled} rule(s) DISABLED")
        return engine, warnings

    # ---- reads --------------------------------------------------------------------------------
    async def show(self) -> dict[str, Any]:
        """GET /config: the active record and its bundle (full rule documents)."""
        active = await self.configs.get_active() or {}
        rev = active.get("rev")
        bundle = await self.configs.get_bundle(str(rev)) if rev else None
        return {
            "active_rev": rev,
            "previous_rev": active.get("previous_rev"),
            "activated_at": active.get("activated_at"),
            "activated_by": active.get("activated_by"),
            "bundle": _public(bundle) if bundle is not None else None,
        }

    async def bundle(self, rev: str) -> dict[str, Any]:
        bundle = await self.configs.get_bundle(rev) if KEY_RE.match(rev) else None
        if bundle is None:
            raise BundleNotFound(rev)
        return {
            **_public(bundle),
            "note": bundle.get("note"),
            "created_by": bundle.get("created_by"),
            "created_ts": bundle.get("created_ts"),
            "lint_warnings": bundle.get("lint_warnings", []),
        }

    async def diff(self, from_rev: str | None, to_rev: str | None) -> dict[str, Any]:
        """Diff two stored revisions; a missing side defaults to the active one."""
        active = await self.configs.get_active() or {}
        a_rev = from_rev or active.get("rev")
        b_rev = to_rev or active.get("rev")
        if not a_rev or not b_rev:
            raise BundleNotFound("no active revision")
        return diff_bundles(
            await self.bundle(str(a_rev)), await self.bundle(str(b_rev)), from_rev=str(a_rev)
        )

    async def history(self, limit: int = 50) -> list[Doc]:
        rows = await self.configs.store.find(AUDIT, Query(sort=[("ts", "desc")], limit=limit))
        return [{k: v for k, v in r.items() if k != "_key"} | {"id": r["_key"]} for r in rows]

    # ---- writes -------------------------------------------------------------------------------
    async def upload(self, body: Mapping[str, Any], *, actor: str) -> tuple[dict[str, Any], bool]:
        """Lint, store, diff; returns ({rev, lint, diff}, created)."""
        params = body.get("params") or {}
        rules = list(body.get("rules") or [])
        active = await self.configs.get_active() or {}
        bundle_id = str(body.get("bundle_id") or active.get("bundle_id") or "default")
        have_ids = all(isinstance(r, Mapping) and isinstance(r.get("rule_id"), str) for r in rules)
        rev = bundle_rev(params, rules) if have_ids else "unlinted"
        _, warnings = await self.lint(
            {"bundle_id": bundle_id, "rev": rev, "params": params, "rules": rules}
        )
        claimed = body.get("rev")
        if claimed is not None and claimed != rev:
            raise BundleInvalid(
                [{"path": "rev", "message": f"the content hashes to {rev}, not {claimed}"}]
            )
        rev, created = await self.configs.put_bundle(
            bundle_id=bundle_id,
            params=params,
            rules=rules,
            note=body.get("note"),
            actor=actor,
            now_ms=self.clock.now_ms(),
            lint_warnings=warnings,
            rev=rev,
        )
        current = await self.configs.get_bundle(str(active["rev"])) if active.get("rev") else None
        # What was just stored (or was already there: the same content under the same rev), not
        # read back and hashed again.
        new = {"rev": rev, "params": params, "rules": rules}
        diff = diff_bundles(current, new, from_rev=active.get("rev"))
        lint = {"ok": True, "warnings": warnings}
        return {"rev": rev, "lint": lint, "diff": diff}, created

    async def activate(self, rev: str, *, actor: str, action: str = "activate") -> dict[str, Any]:
        """Make `rev` the active revision everywhere (see module docstring)."""
        async with hold_lock(
            self.redis, keys.CFG_ACTIVATE_LOCK, ttl_ms=10_000, wait_ms=5_000, owner="s3-config"
        ):
            bundle = await self.configs.get_bundle(rev) if KEY_RE.match(rev) else None
            if bundle is None:
                raise BundleNotFound(rev)
            engine, _ = await self.lint(bundle)
            active = await self.configs.get_active() or {}
            prev = active.get("rev")
            now = self.clock.now_ms()
            if prev == rev:
                # Nothing changes; announce again (repairs a lost SET/XADD), no audit record.
                await self._announce(
                    rev, prev=active.get("previous_rev"), actor=actor, action="reannounce", now=now
                )
                return {"active_rev": rev, "previous_rev": active.get("previous_rev")}
            old = await self.configs.get_bundle(str(prev)) if prev else None
            diff = diff_bundles(old, bundle, from_rev=prev)
            await self.configs.store.upsert(
                "config_active",
                self.configs.active_key,
                {
                    "bundle_id": bundle["bundle_id"],
                    "rev": rev,
                    "previous_rev": prev,
                    "activated_at": now,
                    "activated_by": actor,
                },
            )
            await self.configs.store.insert(
                AUDIT,
                {
                    "action": action,
                    "rev": rev,
                    "previous_rev": prev,
                    "actor": actor,
                    "ts": now,
                    "bundle_id": bundle["bundle_id"],
                    "diff_summary": diff["summary"],
                },
            )
            await self.configs.save_context(engine, now)
            await self._announce(rev, prev=prev, actor=actor, action=action, now=now)
            return {"active_rev": rev, "previous_rev": prev}

    async def rollback(self, *, actor: str) -> dict[str, Any]:
        active = await self.configs.get_active() or {}
        prev = active.get("previous_rev")
        if not prev:
            raise NoPreviousRevision("no previous revision to roll back to")
        return await self.activate(str(prev), actor=actor, action="rollback")

    async def _announce(
        self, rev: str, *, prev: str | None, actor: str, action: str, now: int
    ) -> None:
        await self.redis.set(keys.CFG_ACTIVE_REV, rev)
        event = {"rev": rev, "previous_rev": prev, "actor": actor, "action": action, "ts": now}
        await self.redis.xadd(
            keys.CFG_EVENTS,
            {"data": jsonutil.dumps(event)},
            maxlen=keys.CFG_EVENTS_MAXLEN,
            approximate=True,
        )


def _public(bundle: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "bundle_id": bundle["bundle_id"],
        "rev": bundle["rev"],
        "params": bundle["params"],
        "rules": bundle["rules"],
    }

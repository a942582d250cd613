"""Config bundles in the store: load the active one, keep every decision context for replay.

**Loading** (`load_active`): `config_active/s3-strategy = {bundle_id, rev}` names the bundle;
`config_bundles/{bundle_id} = {bundle_id, rev, rules: [ids], params}` holds its parameters and
`strategy_rules/{id}` the rules. A bundle's `rev` is `content_rev({params, rules: [full rule
documents sorted by rule_id]})` (svckit.store.seed computes it the same way), so S3 verifies that
what it assembled is exactly what was reviewed under that rev. When the live bundle document has
moved on (someone re-seeded or edited a rule without promoting a new rev), S3 falls back to the
content it recorded for that rev (below) and reports a warning (→ `CONFIG_REV_MISMATCH` alert);
when neither exists it refuses to start rather than decide with rules nobody promoted.

A bundle that fails lint (or cannot be assembled at all) never crashes the start: S3 keeps the
*last good* one — the newest recorded decision context whose bundle still builds with today's
registries and limits — and says so (`rejected` → a critical `CONFIG_REJECTED` alert naming
the lint errors with their paths); with no good one to keep it refuses to start with that
message (StartupError), never a stray exception.

**Recording** (`save_context`): everything a decision depends on besides its inputs — the bundle
content, factor whitelist, instruments, route tables, the `S3_*` limits, the engine version — is
one JSON *decision context*, stored content-addressed as `config_bundles/s3ctx-{ctx_rev}`
(`kind: "s3-decision-context"`, `config_rev`, `bundle_id`, `content`). Every signal carries its
`config_rev` and `ctx_rev`; `/decide/replay` rebuilds the engine from that document. These
documents are immutable (insert-if-absent) and small (a few KB); delete old ones only together
with the signals that point at them.

**Revisioned bundles** (hot reload, issue 13): every uploaded bundle is stored immutable and
content-addressed as `config_bundles/bundle-{rev}` (`kind: "s3-bundle"`, `bundle_id`, `rev`,
`params`, `rules: [full rule documents]`, `note`, `created_by`, `created_ts`, `lint_warnings`),
so a rule edited in `strategy_rules` or re-seeded from fixtures never changes what a rev means.
`config_active/s3-strategy` names the active one (`{bundle_id, rev, previous_rev, activated_at,
activated_by}`); `load_active` reads `bundle-{rev}` first and falls back to the older layout
below (bundle document + `strategy_rules`) for a store seeded before revisioned bundles.
Operators activate through `service_layer/config_admin.py` (admin API, CLI).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from s3_strategy.config import Settings
from s3_strategy.domain.engine import ENGINE_VERSION, SERVICE, ContextError, Engine
from s3_strategy.domain.params import EngineLimits
from svckit.errors import DuplicateKey
from svckit.store import body_of, content_rev
from svckit.store.base import Doc, DocumentStore, Query
from svckit.store.seed import BUNDLE_KIND, BUNDLE_PREFIX, CONFIG_ACTIVE_KEY

CTX_PREFIX = "s3ctx-"
CTX_KIND = "s3-decision-context"


class ConfigLoadError(RuntimeError):
    """The active config cannot be loaded (missing, unverifiable, or fails lint)."""


def bundle_rev(params: Mapping[str, Any], rules: Sequence[Mapping[str, Any]]) -> str:
    ordered = sorted((body_of(r) for r in rules), key=lambda r: str(r["rule_id"]))
    return content_rev({"params": dict(params), "rules": ordered})


def context_rev(content: Mapping[str, Any]) -> str:
    return content_rev(dict(content), length=16)


def limits_of(settings: Settings) -> dict[str, Any]:
    """EngineLimits' fields, from the `S3_*` settings of the same names (Decimals as strings)."""
    values = {name: getattr(settings, name) for name in EngineLimits.model_fields}
    return {k: str(v) if isinstance(v, Decimal) else v for k, v in values.items()}


def assemble(
    *,
    bundle_id: str,
    rev: str,
    params: Mapping[str, Any],
    rules: Sequence[Mapping[str, Any]],
    factors: Sequence[Mapping[str, Any]],
    instruments: Sequence[Mapping[str, Any]],
    route_tables: Mapping[str, Mapping[str, Any]],
    limits: Mapping[str, Any],
) -> dict[str, Any]:
    """The decision-context document (see module docstring); deterministic ordering."""
    return {
        "engine_version": ENGINE_VERSION,
        "service": SERVICE,
        "bundle": {
            "bundle_id": bundle_id,
            "rev": rev,
            "params": dict(params),
            "rules": sorted((body_of(r) for r in rules), key=lambda r: str(r["rule_id"])),
        },
        "factors": sorted((body_of(f) for f in factors), key=lambda f: str(f["name"])),
        "instruments": sorted((body_of(i) for i in instruments), key=lambda i: str(i["symbol"])),
        "route_tables": {
            name: {"rev": t.get("rev"), "bands": list(t["bands"])}
            for name, t in sorted(route_tables.items())
        },
        "limits": dict(limits),
    }


def build_engine(content: Mapping[str, Any], ctx_rev: str | None = None) -> Engine:
    """Lint + compile a decision context (`ctx_rev`: its rev when already computed).

    The cyclic GC is paused while the engine is built: a 200-rule bundle allocates ~15,000
    container objects that all survive (they *are* the engine), so the dozen young-generation
    passes the build would trigger find no garbage and cost ≈ 10 % of it (issue 13's reload
    budget). Allocation counts carry over, so the next pass after the build runs as usual; a
    caller that had disabled the GC keeps it disabled."""
    # Builds run in worker threads (asyncio.to_thread) and may overlap: the first to pause is
    # the one that resumes, so the GC never stays off after the last build ends.
    resume = gc.isenabled()
    gc.disable()
    try:
        return Engine(content, context_rev(content) if ctx_rev is None else ctx_rev)
    finally:
        if resume:
            gc.enable()


class ConfigStore:
    def __init__(self, store: DocumentStore, *, active_key: str = CONFIG_ACTIVE_KEY) -> None:
        self.store = store
        self.active_key = active_key
        # Set by load_active when the active bundle was refused and the last good one kept.
        self.rejected: str | None = None

    async def _rules(self, ids: Sequence[str] | None) -> list[Doc]:
        if ids is None:
            return [body_of(d) for d in await self.store.find("strategy_rules")]
        out: list[Doc] = []
        missing: list[str] = []
        for rid in ids:
            doc = await self.store.get("strategy_rules", rid)
            if doc is None:
                missing.append(rid)
            else:
                out.append(body_of(doc))
        if missing:
            raise ConfigLoadError(f"bundle names rules missing from strategy_rules: {missing}")
        return out

    # ---- revisioned bundles ---------------------------------------------------------------------
    async def get_active(self) -> Doc | None:
        doc = await self.store.get("config_active", self.active_key)
        return None if doc is None else body_of(doc)

    async def get_bundle(self, rev: str) -> dict[str, Any] | None:
        """The immutable bundle `rev` as `{bundle_id, rev, params, rules, ...}`, verified against
        its rev (a document whose content does not hash to its rev is treated as absent)."""
        doc = await self.store.get("config_bundles", BUNDLE_PREFIX + rev)
        if doc is None or doc.get("kind") != BUNDLE_KIND:
            return None
        if bundle_rev(doc.get("params") or {}, doc.get("rules") or []) != rev:
            return None
        return body_of(doc)

    async def put_bundle(
        self,
        *,
        bundle_id: str,
        params: Mapping[str, Any],
        rules: Sequence[Mapping[str, Any]],
        note: str | None,
        actor: str,
        now_ms: int,
        lint_warnings: Sequence[str] = (),
        rev: str | None = None,
    ) -> tuple[str, bool]:
        """Store a (linted) bundle under its content rev; (rev, created). Insert-if-absent: the
        same content is the same rev, whoever uploads it again. `rev`: `bundle_rev(params,
        rules)` when the caller has just computed it (hashing 200 rules costs milliseconds)."""
        ordered = sorted((body_of(r) for r in rules), key=lambda r: str(r["rule_id"]))
        if rev is None:
            rev = bundle_rev(params, ordered)
        doc: Doc = {
            "_key": BUNDLE_PREFIX + rev,
            "kind": BUNDLE_KIND,
            "bundle_id": bundle_id,
            "rev": rev,
            "params": dict(params),
            "rules": ordered,
            "note": note,
            "created_by": actor,
            "created_ts": now_ms,
            "lint_warnings": list(lint_warnings),
        }
        try:
            await self.store.insert("config_bundles", doc)
        except DuplicateKey:
            return rev, False
        return rev, True

    async def content_for(self, settings: Settings, bundle: Mapping[str, Any]) -> dict[str, Any]:
        """`bundle` with the store's reference data and the limits: its decision context."""
        return assemble(
            bundle_id=str(bundle["bundle_id"]),
            rev=str(bundle["rev"]),
            params=bundle.get("params") or {},
            rules=bundle.get("rules") or [],
            factors=await self.store.find("factor_registry"),
            instruments=await self.store.find("instrument_registry"),
            route_tables={str(t["_key"]): t for t in await self.store.find("route_tables")},
            limits=limits_of(settings),
        )

    async def load_rev(self, settings: Settings, rev: str) -> Engine:
        """Build the engine of the stored bundle `rev` (lint + compile); ConfigLoadError if it
        is missing, does not verify, or fails lint."""
        bundle = await self.get_bundle(rev)
        if bundle is None:
            raise ConfigLoadError(f"bundle {rev} is not in config_bundles (or fails its hash)")
        content = await self.content_for(settings, bundle)
        try:
            # Lint + compile is pure CPU (milliseconds for a large bundle): in a worker thread the
            # event loop keeps answering decisions meanwhile (they pin the engine they started
            # with); the swap itself is one assignment back on the loop.
            return await asyncio.to_thread(build_engine, content)
        except ContextError as exc:
            raise ConfigLoadError(f"bundle {rev} fails lint: {exc}") from exc

    async def ensure_revisioned(self, engine: Engine, now_ms: int) -> None:
        """Store the revisioned copy of the bundle `engine` runs (insert-if-absent): a store
        seeded before revisioned bundles gets one at the first start, so GET /config, diff and
        rollback work for its active revision too."""
        if await self.get_bundle(engine.config_rev) is not None:
            return  # one read, not a hash of every rule and a failing insert on every start
        bundle = engine.content["bundle"]
        await self.put_bundle(
            bundle_id=engine.bundle_id,
            params=bundle["params"],
            rules=bundle["rules"],
            note="revisioned copy of the active bundle (migration)",
            actor="s3-bootstrap",
            now_ms=now_ms,
        )

    async def load_active(self, settings: Settings) -> tuple[Engine, list[str]]:
        """Build the engine of the active bundle; returns it with warnings (rev mismatches)."""
        warnings: list[str] = []
        active = await self.store.get("config_active", self.active_key)
        if active is None:
            raise ConfigLoadError(f"no config_active/{self.active_key}: seed or promote a bundle")
        bundle_id, rev = str(active["bundle_id"]), str(active["rev"])
        if await self.get_bundle(rev) is not None:
            try:
                return await self.load_rev(settings, rev), warnings
            except ConfigLoadError as exc:
                return await self._keep_last_good(settings, rev, exc), warnings
        live = await self.store.get("config_bundles", bundle_id)
        params: Mapping[str, Any] | None = None
        rules: list[Doc] = []
        if live is not None and str(live.get("rev")) == rev:
            ids = live.get("rules")
            rules = await self._rules(list(ids) if ids is not None else None)
            params = live.get("params") or {}
            actual = bundle_rev(params, rules)
            if actual != rev:
                warnings.append(
                    f"bundle {bundle_id}@{rev}: its rules were edited after the rev was cut "
                    f"(content hashes to {actual})"
                )
                params = None
        elif live is not None:
            warnings.append(
                f"config_active points at {bundle_id}@{rev} but config_bundles/{bundle_id} is "
                f"rev {live.get('rev')}; deciding with the recorded content of {rev}"
            )
        if params is None:
            # The content recorded for that rev (a decision context), if it still hashes to it.
            rows = await self.store.find(
                "config_bundles",
                Query(where={"kind": CTX_KIND, "bundle_id": bundle_id, "config_rev": rev}, limit=1),
            )
            recorded = rows[0]["content"]["bundle"] if rows else None
            if recorded is None or bundle_rev(recorded["params"], recorded["rules"]) != rev:
                where = "absent" if live is None else f"at rev {live.get('rev')}"
                raise ConfigLoadError(
                    f"the content of the active bundle {bundle_id}@{rev} is gone (bundle document "
                    f"{where}, no recorded decision context): promote a bundle explicitly"
                    + "".join(f"; {w}" for w in warnings)
                )
            params, rules = recorded["params"], list(recorded["rules"])
        try:
            return await self._build(bundle_id, rev, params, rules, settings), warnings
        except ConfigLoadError as exc:
            return await self._keep_last_good(settings, rev, exc), warnings

    async def _keep_last_good(self, settings: Settings, rev: str, exc: ConfigLoadError) -> Engine:
        """The active revision does not build: the newest recorded one that does (recorded as
        `rejected`, alerted by the caller); ConfigLoadError when there is none."""
        rows = await self.store.find(
            "config_bundles",
            Query(where={"kind": CTX_KIND}, sort=[("created_ts", "desc")], limit=50),
        )
        for row in rows:
            try:
                bundle = row["content"]["bundle"]
                if str(bundle["rev"]) == rev:
                    continue
                good = await self._build(
                    str(bundle["bundle_id"]),
                    str(bundle["rev"]),
                    bundle["params"],
                    list(bundle["rules"]),
                    settings,
                )
            except (ConfigLoadError, KeyError, TypeError):
                continue
            self.rejected = (
                f"{exc}; keeping the last good bundle {good.bundle_id}@{good.config_rev}"
            )
            return good
        raise ConfigLoadError(
            f"{exc}; no earlier bundle to keep: fix it and promote a bundle"
        ) from None

    async def _build(
        self,
        bundle_id: str,
        rev: str,
        params: Mapping[str, Any],
        rules: Sequence[Mapping[str, Any]],
        settings: Settings,
    ) -> Engine:
        bundle = {"bundle_id": bundle_id, "rev": rev, "params": params, "rules": rules}
        try:
            return build_engine(await self.content_for(settings, bundle))
        except ContextError as exc:
            raise ConfigLoadError(f"bundle {bundle_id}@{rev} fails lint: {exc}") from exc
        except (TypeError, ValueError, ArithmeticError, KeyError) as exc:
            # content no lint reached (a hash of an unserialisable value, a missing key)
            raise ConfigLoadError(
                f"bundle {bundle_id}@{rev} cannot be built: {type(exc).__name__}: {exc}"
            ) from exc

    async def save_context(self, engine: Engine, now_ms: int) -> None:
        """Record the engine's decision context (insert-if-absent)."""
        with contextlib.suppress(DuplicateKey):
            await self.store.insert(
                "config_bundles",
                {
                    "_key": CTX_PREFIX + engine.ctx_rev,
                    "kind": CTX_KIND,
                    "ctx_rev": engine.ctx_rev,
                    "config_rev": engine.config_rev,
                    "bundle_id": engine.bundle_id,
                    "engine_version": ENGINE_VERSION,
                    "created_ts": now_ms,
                    "content": dict(engine.content),
                },
            )

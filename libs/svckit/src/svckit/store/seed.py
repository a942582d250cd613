"""Seed a store from the JSON fixtures (dev, tests, first deploy). Idempotent.

What it writes (fixtures are the source of truth for reference data, never for live state):

* `instrument_registry/{symbol}`: every instrument, validated by `tradekit.instrument.Instrument`
  and stored as `model_dump(mode="json")` (Decimals as strings, defaults filled in); upserted.
* `factor_registry/{name}`: the features S3's rule DSL may reference (the whitelist); upserted.
* `strategy_rules/{rule_id}`: each `when` tree is linted (ops, factor whitelist, symbols known)
  so a broken fixture fails here, not at decision time; written **only when there is no
  `config_active`** (like the bundle below): once a bundle was activated, rules live in the
  revisioned bundles and a restart never overwrites what an operator edited or activated.
* `route_tables/default`: `{name, rev, bands}`; `rev` = content_rev(bands).
* `config_bundles/{bundle_id}`: `{bundle_id, rev, rules: [rule ids], params}`; `rev` =
  content_rev({params, rules: full rule documents}) so editing a rule changes the bundle rev;
  plus the immutable revisioned copy `config_bundles/bundle-{rev}` (`kind: "s3-bundle"`, full
  rule documents: what S3's config admin API uploads). Both only when there is no
  `config_active`.
* `config_active/s3-strategy`: `{bundle_id, rev}`, created **only when absent**: an operator's
  active config is never clobbered. If it points at the seeded bundle with an older rev, the
  report carries a warning (S3 will alert on the mismatch until someone promotes the new rev).

`content_rev(x)` = first 12 hex of sha256 over canonical JSON (sorted keys, no whitespace).

CLI: `python -m svckit.store.seed --fixtures fixtures --data-dir var/data` (or `--arango-uri`;
defaults from `S3_DB_ARANGO_URI/_USER/_PASS`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from svckit.errors import DuplicateKey
from svckit.store._common import KEY_RE, SYSTEM_FIELDS, content_rev
from svckit.store.base import Doc, DocumentStore
from tradekit.instrument import Instrument

INSTRUMENTS_FILE = "instrument_registry.json"
FACTORS_FILE = "factor_registry.json"
RULES_FILE = "strategy_rules.json"
ROUTE_TABLE_FILE = "route_table.json"
CONFIG_BUNDLE_FILE = "config_bundle.json"

ROUTE_TABLE_KEY = "default"
CONFIG_ACTIVE_KEY = "s3-strategy"
# Revisioned bundles (s3_strategy.adapters.configstore writes the same shape).
BUNDLE_PREFIX = "bundle-"
BUNDLE_KIND = "s3-bundle"

# The S3 rule DSL (s3_strategy.domain.rules.lint is the authority; S3 lints again at load).
# Mirrored here so that a fixture S3 would refuse fails at seed time, not at S3 start.
RULE_OPS = frozenset({"<", "<=", ">", ">=", "==", "!="})
RULE_STATUSES = frozenset({"ENABLED", "DISABLED"})
RULE_ACTIONS = frozenset({"size_mult", "skip_entry"})
RULE_MAX_DEPTH = 6
RULE_MAX_SIZE_MULT = 10.0
_FACTOR_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")


class FixtureError(ValueError):
    """A fixture file is malformed (names the file and the offending entry)."""


@dataclass(frozen=True)
class Fixtures:
    instruments: tuple[Instrument, ...]
    factors: tuple[Doc, ...]
    rules: tuple[Doc, ...]
    route_bands: tuple[Doc, ...]
    bundle: Doc

    @property
    def route_table_rev(self) -> str:
        return content_rev(list(self.route_bands))

    @property
    def bundle_id(self) -> str:
        return str(self.bundle["bundle_id"])

    @property
    def bundle_rule_ids(self) -> list[str]:
        ids = self.bundle.get("rules")
        return list(ids) if ids is not None else sorted(r["rule_id"] for r in self.rules)

    @property
    def bundle_rev(self) -> str:
        chosen = set(self.bundle_rule_ids)
        rules = sorted((r for r in self.rules if r["rule_id"] in chosen), key=_rule_id)
        return content_rev({"params": self.bundle.get("params", {}), "rules": rules})


@dataclass(frozen=True)
class SeedReport:
    instruments: tuple[str, ...]
    factors: tuple[str, ...]
    rules: tuple[str, ...]
    route_table_rev: str
    bundle_id: str
    bundle_rev: str
    config_active_created: bool
    active_bundle_id: str
    active_rev: str
    warnings: tuple[str, ...] = field(default=())
    # False when a config_active existed: rules and bundle were left as the operator has them.
    bundle_seeded: bool = True


def _rule_id(rule: Mapping[str, Any]) -> str:
    return str(rule["rule_id"])


# ---- loading and linting ---------------------------------------------------------------------
def _bounded_int(text: str) -> int:
    # A 400-digit literal would otherwise reach math.isfinite (OverflowError) and the store's
    # serialiser (64-bit integers only): refuse it here with the file's name.
    if len(text.lstrip("-")) > 18:
        raise ValueError(f"integer {text[:24]}… has {len(text.lstrip('-'))} digits (max 18)")
    return int(text)


def _read(path: Path, **kwargs: Any) -> Any:
    kwargs.setdefault("parse_int", _bounded_int)
    try:
        return json.loads(path.read_text(encoding="utf-8"), **kwargs)
    except FileNotFoundError as exc:
        raise FixtureError(f"{path}: missing") from exc
    except ValueError as exc:  # JSONDecodeError, or a number refused above
        raise FixtureError(f"{path}: invalid JSON: {exc}") from exc


def _list_of_objects(path: Path, data: Any) -> list[Doc]:
    if not isinstance(data, list) or not all(isinstance(x, dict) for x in data):
        raise FixtureError(f"{path}: expected a JSON array of objects")
    return data


def instrument_from_doc(doc: Mapping[str, Any]) -> Instrument:
    """Parse a stored `instrument_registry` document (system fields dropped)."""
    return Instrument.model_validate({k: v for k, v in doc.items() if k not in SYSTEM_FIELDS})


def load_instruments(path: Path) -> list[Instrument]:
    # parse_float=Decimal: 0.001 must reach the model as Decimal("0.001"), never via a float.
    rows = _list_of_objects(path, _read(path, parse_float=Decimal))
    out: list[Instrument] = []
    for row in rows:
        try:
            out.append(Instrument.model_validate(row))
        except ValueError as exc:
            raise FixtureError(f"{path}: {row.get('symbol')!r}: {exc}") from exc
    _unique(path, [i.symbol for i in out], "symbol")
    return out


def _unique(path: Path, names: Sequence[str], what: str) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise FixtureError(f"{path}: duplicate {what} {name!r}")
        seen.add(name)


def load_factors(path: Path) -> list[Doc]:
    rows = _list_of_objects(path, _read(path))
    for row in rows:
        name = row.get("name")
        if not isinstance(name, str) or not _FACTOR_NAME_RE.match(name):
            raise FixtureError(f"{path}: invalid factor name {name!r}")
        if row.get("type") != "float":
            raise FixtureError(f"{path}: {name}: type must be 'float'")
        lo, hi = row.get("min"), row.get("max")
        if lo is not None and hi is not None and lo > hi:
            raise FixtureError(f"{path}: {name}: min > max")
    _unique(path, [r["name"] for r in rows], "factor")
    return rows


def lint_condition(node: Any, factors: frozenset[str], where: str, depth: int = 1) -> None:
    """A `when` tree: {allOf: [...]}, {anyOf: [...]}, {not: node} or a leaf {f, op, v}."""
    if depth > RULE_MAX_DEPTH:
        raise FixtureError(f"{where}: condition deeper than {RULE_MAX_DEPTH}")
    if not isinstance(node, dict):
        raise FixtureError(f"{where}: condition must be an object, got {node!r}")
    if "allOf" in node or "anyOf" in node:
        children = node.get("allOf", node.get("anyOf"))
        if len(node) != 1 or not isinstance(children, list) or not children:
            raise FixtureError(f"{where}: allOf/anyOf takes exactly one non-empty list")
        for child in children:
            lint_condition(child, factors, where, depth + 1)
        return
    if "not" in node:
        if len(node) != 1:
            raise FixtureError(f"{where}: 'not' takes exactly one condition")
        lint_condition(node["not"], factors, where, depth + 1)
        return
    if set(node) != {"f", "op", "v"}:
        raise FixtureError(f"{where}: leaf must be {{f, op, v}}, got {sorted(node)}")
    if node["f"] not in factors:
        raise FixtureError(f"{where}: unknown factor {node['f']!r} (not in factor_registry)")
    if node["op"] not in RULE_OPS:
        raise FixtureError(f"{where}: invalid op {node['op']!r}")
    v = node["v"]
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise FixtureError(f"{where}: v must be a finite number, got {v!r}")


def load_rules(path: Path, factors: frozenset[str], symbols: frozenset[str]) -> list[Doc]:
    rows = _list_of_objects(path, _read(path))
    for row in rows:
        rid = row.get("rule_id")
        if not isinstance(rid, str) or not KEY_RE.match(rid):
            raise FixtureError(f"{path}: invalid rule_id {rid!r}")
        where = f"{path}: {rid}"
        if row.get("status") not in RULE_STATUSES:
            raise FixtureError(f"{where}: status must be one of {sorted(RULE_STATUSES)}")
        action = row.get("action")
        if not isinstance(action, dict) or action.get("type") not in RULE_ACTIONS:
            raise FixtureError(f"{where}: action.type must be one of {sorted(RULE_ACTIONS)}")
        if action["type"] == "size_mult":
            value = action.get("value")
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
                or not 0 < value <= RULE_MAX_SIZE_MULT
            ):
                raise FixtureError(f"{where}: size_mult value must be in (0, {RULE_MAX_SIZE_MULT}]")
        priority = row.get("priority")
        if isinstance(priority, bool) or not isinstance(priority, int) or priority < 0:
            raise FixtureError(f"{where}: priority must be an int >= 0")
        applies = row.get("applies", {})
        unknown = set(applies.get("symbols", ())) - symbols
        if unknown:
            raise FixtureError(f"{where}: applies to unknown symbols {sorted(unknown)}")
        lint_condition(row.get("when"), factors, where)
    _unique(path, [r["rule_id"] for r in rows], "rule_id")
    return rows


def load_route_table(path: Path) -> list[Doc]:
    """Bands ascending by `notional_usdt_max`; only the last may be null (= unbounded)."""
    bands = _list_of_objects(path, _read(path))
    if not bands:
        raise FixtureError(f"{path}: route table is empty")
    previous = 0.0
    for i, band in enumerate(bands):
        cap = band.get("notional_usdt_max")
        last = i == len(bands) - 1
        if cap is None:
            if not last:
                raise FixtureError(f"{path}: band {i}: only the last band may be unbounded")
        elif isinstance(cap, bool) or not isinstance(cap, int | float) or cap <= previous:
            raise FixtureError(f"{path}: band {i}: notional_usdt_max must ascend")
        else:
            previous = float(cap)
        wait, twap = band.get("maker_wait_ms"), band.get("twap")
        if not isinstance(wait, int) or wait < 0:
            raise FixtureError(f"{path}: band {i}: maker_wait_ms must be an int >= 0")
        if (
            not isinstance(twap, dict)
            or not isinstance(twap.get("slices"), int)
            or twap["slices"] < 1
            or not isinstance(twap.get("gap_ms"), int)
            or twap["gap_ms"] < 0
        ):
            raise FixtureError(f"{path}: band {i}: twap needs slices >= 1 and gap_ms >= 0")
    return bands


def load_bundle(path: Path, rule_ids: frozenset[str]) -> Doc:
    bundle = _read(path)
    if not isinstance(bundle, dict):
        raise FixtureError(f"{path}: expected an object")
    bid = bundle.get("bundle_id")
    if not isinstance(bid, str) or not KEY_RE.match(bid):
        raise FixtureError(f"{path}: invalid bundle_id {bid!r}")
    if not isinstance(bundle.get("params", {}), dict):
        raise FixtureError(f"{path}: params must be an object")
    rules = bundle.get("rules")
    if rules is not None:
        if not isinstance(rules, list) or not all(isinstance(r, str) for r in rules):
            raise FixtureError(f"{path}: rules must be a list of rule ids")
        missing = set(rules) - rule_ids
        if missing:
            raise FixtureError(f"{path}: unknown rules {sorted(missing)}")
    return bundle


def load_fixtures(fixtures_dir: Path) -> Fixtures:
    instruments = load_instruments(fixtures_dir / INSTRUMENTS_FILE)
    factors = load_factors(fixtures_dir / FACTORS_FILE)
    rules = load_rules(
        fixtures_dir / RULES_FILE,
        frozenset(f["name"] for f in factors),
        frozenset(i.symbol for i in instruments),
    )
    bands = load_route_table(fixtures_dir / ROUTE_TABLE_FILE)
    bundle = load_bundle(fixtures_dir / CONFIG_BUNDLE_FILE, frozenset(r["rule_id"] for r in rules))
    return Fixtures(tuple(instruments), tuple(factors), tuple(rules), tuple(bands), bundle)


# ---- seeding ---------------------------------------------------------------------------------
async def seed_store(store: DocumentStore, fixtures_dir: Path) -> SeedReport:
    """Bootstrap `store` and upsert the fixtures (see the module docstring); idempotent."""
    fx = load_fixtures(Path(fixtures_dir))
    await store.bootstrap()

    for inst in fx.instruments:
        await store.upsert("instrument_registry", inst.symbol, inst.model_dump(mode="json"))
    for factor in fx.factors:
        await store.upsert("factor_registry", factor["name"], factor)

    route_rev = fx.route_table_rev
    await store.upsert(
        "route_tables",
        ROUTE_TABLE_KEY,
        {"name": ROUTE_TABLE_KEY, "rev": route_rev, "bands": list(fx.route_bands)},
    )

    bundle_rev = fx.bundle_rev
    active = await store.get("config_active", CONFIG_ACTIVE_KEY)
    seeded = active is None
    if seeded:
        await _seed_bundle(store, fx, bundle_rev)
        try:
            await store.insert(
                "config_active",
                {"_key": CONFIG_ACTIVE_KEY, "bundle_id": fx.bundle_id, "rev": bundle_rev},
            )
            created = True
        except DuplicateKey:
            created = False  # a concurrent seeder (another replica) created it first: keep theirs
        active = await store.get("config_active", CONFIG_ACTIVE_KEY)
    else:
        created = False
    if active is None:  # deleted between our insert and read: report what we wrote
        active = {"bundle_id": fx.bundle_id, "rev": bundle_rev}

    warnings: list[str] = []
    if active.get("bundle_id") == fx.bundle_id and active.get("rev") != bundle_rev:
        warnings.append(
            f"config_active points at {fx.bundle_id}@{active.get('rev')} but the seeded bundle "
            f"is rev {bundle_rev}; promote it explicitly (seeding never changes config_active)"
        )
    return SeedReport(
        instruments=tuple(i.symbol for i in fx.instruments),
        factors=tuple(f["name"] for f in fx.factors),
        rules=tuple(r["rule_id"] for r in fx.rules),
        route_table_rev=route_rev,
        bundle_id=fx.bundle_id,
        bundle_rev=bundle_rev,
        config_active_created=created,
        active_bundle_id=str(active.get("bundle_id")),
        active_rev=str(active.get("rev")),
        warnings=tuple(warnings),
        bundle_seeded=seeded,
    )


async def _seed_bundle(store: DocumentStore, fx: Fixtures, bundle_rev: str) -> None:
    """Rules, the bundle document and its immutable revisioned copy (no config_active yet)."""
    for rule in fx.rules:
        await store.upsert("strategy_rules", rule["rule_id"], rule)
    bundle_doc: Doc = {
        "bundle_id": fx.bundle_id,
        "rev": bundle_rev,
        "rules": fx.bundle_rule_ids,
        "params": fx.bundle.get("params", {}),
    }
    if "description" in fx.bundle:
        bundle_doc["description"] = fx.bundle["description"]
    await store.upsert("config_bundles", fx.bundle_id, bundle_doc)
    chosen = set(fx.bundle_rule_ids)
    revisioned: Doc = {
        "_key": BUNDLE_PREFIX + bundle_rev,
        "kind": BUNDLE_KIND,
        "bundle_id": fx.bundle_id,
        "rev": bundle_rev,
        "params": fx.bundle.get("params", {}),
        "rules": sorted((r for r in fx.rules if r["rule_id"] in chosen), key=_rule_id),
        "note": "seeded from fixtures",
        "created_by": "seed",
        "created_ts": 0,
        "lint_warnings": [],
    }
    try:
        await store.insert("config_bundles", revisioned)
    except DuplicateKey:
        pass  # immutable and content-addressed: the same rev holds the same content


def main(argv: Sequence[str] | None = None) -> int:
    from svckit.store.factory import make_store

    parser = argparse.ArgumentParser(description="Seed the document store from fixtures.")
    parser.add_argument("--fixtures", type=Path, default=Path("fixtures"))
    parser.add_argument("--data-dir", type=Path, default=Path("var/data"))
    parser.add_argument("--arango-uri", default=os.environ.get("S3_DB_ARANGO_URI"))
    parser.add_argument("--arango-user", default=os.environ.get("S3_DB_ARANGO_USER"))
    parser.add_argument("--arango-pass", default=os.environ.get("S3_DB_ARANGO_PASS"))
    parser.add_argument("--arango-db", default=os.environ.get("S3_DB_ARANGO_DB", "chimera"))
    args = parser.parse_args(argv)

    async def run() -> SeedReport:
        store = make_store(
            arango_uri=args.arango_uri,
            arango_user=args.arango_user,
            arango_pass=args.arango_pass,
            arango_db=args.arango_db,
            data_dir=args.data_dir,
        )
        try:
            return await seed_store(store, args.fixtures)
        finally:
            await store.close()

    report = asyncio.run(run())
    print(json.dumps(report.__dict__, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

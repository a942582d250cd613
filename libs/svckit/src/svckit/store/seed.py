"""Seed a store from the JSON fixtures (dev, tests, first deploy). Idempotent.

What it writes (fixtures are the source of truth for reference data, never for live state):

* `instrument_registry/{symbol}`: every instrument, validated by `tradekit.instrument.Instrument`
  and stored as `model_dump(mode="json")` (Decimals as strings, defaults filled in); upserted.
* `factor_registry/{name}`: the features S3's rule DSL may reference (the whitelist); upserted.
* `strategy_rules/{rule_id}`: checked by `tradekit.rules` — the same schema, limits and
  cross-references (factor whitelist and ranges, symbols) S3 lints with — so a fixture S3 would
  refuse fails here, not at S3's start; stored as written; written **only when there is no
  `config_active`** (like the bundle below): once a bundle was activated, rules live in the
  revisioned bundles and a restart never overwrites what an operator edited or activated.
* `factor_registry` and `route_tables` are validated by `tradekit.rules.Factor` and
  `tradekit.routing.RouteBands` (the models S3 and S4 read them with) and stored as written.
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
import contextlib
import json
import os
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from operator import itemgetter
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from svckit.errors import DuplicateKey
from svckit.store._common import KEY_RE, body_of, content_rev
from svckit.store.base import Doc, DocumentStore
from tradekit.instrument import Instrument
from tradekit.routing import RouteBands
from tradekit.rules import RuleErrors, check_rules, factors_from_docs

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
    def bundle_rules(self) -> list[Doc]:
        """The bundle's full rule documents, by rule_id."""
        chosen = set(self.bundle_rule_ids)
        return sorted((r for r in self.rules if r["rule_id"] in chosen), key=itemgetter("rule_id"))


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


def _rows(
    path: Path, check: Callable[[list[Doc]], object] | None = None, what: str = "", **kw: Any
) -> list[Doc]:
    """The file's JSON array of objects, refused naming the file unless `check` accepts it."""
    rows = _read(path, **kw)
    if not isinstance(rows, list) or not all(isinstance(x, dict) for x in rows):
        raise FixtureError(f"{path}: expected a JSON array of objects")
    try:
        if check is not None:
            check(rows)
    except (RuleErrors, ValidationError) as exc:  # each names the bad entries
        raise FixtureError(f"{path}: {what}{exc}") from exc
    return rows


def instrument_from_doc(doc: Mapping[str, Any]) -> Instrument:
    """Parse a stored `instrument_registry` document (system fields dropped)."""
    return Instrument.model_validate(body_of(doc))


def load_instruments(path: Path) -> list[Instrument]:
    # parse_float=Decimal: 0.001 must reach the model as Decimal("0.001"), never via a float.
    rows = _rows(path, parse_float=Decimal)
    out: list[Instrument] = []
    for row in rows:
        try:
            out.append(Instrument.model_validate(row))
        except ValueError as exc:
            raise FixtureError(f"{path}: {row.get('symbol')!r}: {exc}") from exc
    for symbol, n in Counter(i.symbol for i in out).items():
        if n > 1:
            raise FixtureError(f"{path}: duplicate symbol {symbol!r}")
    return out


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
    symbols = frozenset(i.symbol for i in instruments)
    factors = _rows(fixtures_dir / FACTORS_FILE, factors_from_docs)
    whitelist = factors_from_docs(factors)
    # The fixtures carry no bundle yet: the default depth limit applies.
    rules = _rows(
        fixtures_dir / RULES_FILE, lambda r: check_rules(r, factors=whitelist, symbols=symbols)
    )
    # Bands ascending by `notional_usdt_max`; only the last may be null (= unbounded).
    bands = _rows(fixtures_dir / ROUTE_TABLE_FILE, RouteBands.model_validate, "route table: ")
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

    bundle_rev = content_rev({"params": fx.bundle.get("params", {}), "rules": fx.bundle_rules})
    active = await store.get("config_active", CONFIG_ACTIVE_KEY)
    seeded, created = active is None, False
    if seeded:
        await _seed_bundle(store, fx, bundle_rev)
        # A concurrent seeder (another replica) may have created it first: keep theirs.
        with contextlib.suppress(DuplicateKey):
            await store.insert(
                "config_active",
                {"_key": CONFIG_ACTIVE_KEY, "bundle_id": fx.bundle_id, "rev": bundle_rev},
            )
            created = True
        active = await store.get("config_active", CONFIG_ACTIVE_KEY)
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
    revisioned: Doc = {
        "_key": BUNDLE_PREFIX + bundle_rev,
        "kind": BUNDLE_KIND,
        "bundle_id": fx.bundle_id,
        "rev": bundle_rev,
        "params": fx.bundle.get("params", {}),
        "rules": fx.bundle_rules,
        "note": "seeded from fixtures",
        "created_by": "seed",
        "created_ts": 0,
        "lint_warnings": [],
    }
    with contextlib.suppress(DuplicateKey):  # content-addressed: the same rev, the same content
        await store.insert("config_bundles", revisioned)


def main(argv: Sequence[str] | None = None) -> int:
    from svckit.store.factory import make_store

    parser = argparse.ArgumentParser(description="Seed the document store from fixtures.")
    parser.add_argument("--fixtures", type=Path, default=Path("fixtures"))
    parser.add_argument("--data-dir", type=Path, default=Path("var/data"))
    parser.add_argument("--arango-uri", default=os.environ.get("S3_DB_ARANGO_URI"))
    parser.add_argument("--arango-user", default=os.environ.get("S3_DB_ARANGO_USER"))
    parser.add_argument("--arango-pass", default=os.environ.get("S3_DB_ARANGO_PASS"))
    # The same variable the services read (S3_DB_ARANGO_NAME), so it seeds their database.
    parser.add_argument("--arango-db", default=os.environ.get("S3_DB_ARANGO_NAME", "chimera"))
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

"""The L1 rule language (spec §G): its schema, its limits, and validation against the reference
data. The one definition the seed (svckit), S3 (lint before swap, admin API) and the JSON
Schema export share, so a rule one of them accepts the others accept too.

A rule::

    {"rule_id": "R-023", "priority": 50, "description": "optional",
     "applies": {"symbols": ["BTCUSDT"], "services": ["s3-strategy"], "markets": ["FUT"]},
     "when": {"allOf": [{"f": "rv_pctile_30d", "op": "<", "v": 0.25}, ...]},
     "action": {"type": "size_mult", "value": 1.2}, "status": "ENABLED"}

* `when` is a tree of `{"allOf": [c, ...]}`, `{"anyOf": [c, ...]}`, `{"not": c}` and leaves
  `{"f": feature, "op": op, "v": number}` (a union discriminated by its key); depth ≤ the
  bundle's `rules.max_depth` (a leaf alone is depth 1), at most 64 children per node.
* `f` must be a feature of `factor_registry` (the whitelist); `op` one of `< <= > >= == !=`;
  `v` a finite number within ±10¹⁵ (not a bool, not NaN/inf, not a 400-digit integer) inside
  the factor's declared [min, max] when it declares one (a threshold outside it is almost
  always a unit mistake: 25 for 0.25).
* `action` is `{"type": "skip_entry"}` or `{"type": "size_mult", "value": x}` with
  0 < x ≤ 10; nothing else.
* `applies.symbols` (absent ⇒ every symbol) must name known instruments; `applies.services`
  (absent ⇒ every service) is a subset of the closed set {`s3-strategy`} (a misspelled
  service would silently never run); `applies.markets` (absent ⇒ both) is a subset of
  FUT/SPOT. `status` is ENABLED or DISABLED; `priority` an int in [0, 10⁶]; `rule_id` unique,
  exactly `[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}` (no trailing newline). Unknown keys are errors.
* Size: at most 256 condition nodes and a 1000-character description per rule, 64 entries per
  `applies` list; at most 500 rules and 5 000 condition nodes per bundle. The size is counted
  before anything else, so an oversized rule is refused in microseconds instead of validated
  (a 9.7 MB rule once took 928 MB).

`check_rules` reports every problem of every rule at once, each starting with its path
(`R-023: when.allOf[1]: …`, `rules[3].rule_id: …`), so a bad bundle is fixed in one round trip.
The structure is checked by pydantic (Rust); only the budget walk before it and the
cross-references after it (features, ranges, symbols, depth) are Python.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Iterator, Mapping
from typing import Annotated, Any, Literal, NotRequired

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    TypeAdapter,
    ValidationError,
    model_validator,
    with_config,
)
from typing_extensions import TypedDict  # pydantic needs it before Python 3.12

OPS: tuple[str, ...] = ("<", "<=", ">", ">=", "==", "!=")
ACTIONS: tuple[str, ...] = ("size_mult", "skip_entry")
STATUSES: tuple[str, ...] = ("ENABLED", "DISABLED")
MARKETS: tuple[str, ...] = ("FUT", "SPOT")
SERVICE = "s3-strategy"
SERVICES: tuple[str, ...] = (SERVICE,)
MAX_CHILDREN = 64
MAX_ABS = 1e15  # thresholds and factor bounds: finite and within ±MAX_ABS
MAX_NODES_PER_RULE = 256
MAX_NODES_PER_BUNDLE = 5_000  # a max-size bundle builds in ≈ 0.6 s, +5 MB
MAX_RULES = 500
MAX_DESCRIPTION = 1000
MAX_LIST = 64
MAX_SIZE_MULT = 10.0
MAX_PRIORITY = 1_000_000
DEFAULT_MAX_DEPTH = 6
RULE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"  # Rust regex: `$` is the very end
FEATURE_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"
SYSTEM_FIELDS = frozenset({"_key", "_id", "_rev"})
# For Python callers (fullmatch: `$` in Python's re would accept a trailing newline).
RULE_ID_RE = re.compile(RULE_ID_PATTERN[1:-1])
FEATURE_RE = re.compile(FEATURE_PATTERN[1:-1])

Number = Annotated[float, Field(strict=True, allow_inf_nan=False, ge=-MAX_ABS, le=MAX_ABS)]
FeatureName = Annotated[str, Field(pattern=FEATURE_PATTERN)]


class _Schema(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


# ---- conditions ------------------------------------------------------------------------------
class Leaf(_Schema):
    f: FeatureName
    op: Literal["<", "<=", ">", ">=", "==", "!="]
    v: Number


class AllOf(_Schema):
    all_of: list[Cond] = Field(alias="allOf", min_length=1, max_length=MAX_CHILDREN)


class AnyOf(_Schema):
    any_of: list[Cond] = Field(alias="anyOf", min_length=1, max_length=MAX_CHILDREN)


class Not(_Schema):
    not_: Cond = Field(alias="not")


def _cond_tag(v: Any) -> str | None:
    # Tags start with '#' so that they can be told from field names in an error's location.
    if isinstance(v, dict):
        if "allOf" in v:
            return "#allOf"
        if "anyOf" in v:
            return "#anyOf"
        return "#not" if "not" in v else "#leaf"
    return _MODEL_TAGS.get(type(v))


Cond = Annotated[
    Annotated[Leaf, Tag("#leaf")]
    | Annotated[AllOf, Tag("#allOf")]
    | Annotated[AnyOf, Tag("#anyOf")]
    | Annotated[Not, Tag("#not")],
    Discriminator(
        _cond_tag,
        custom_error_type="condition_type",
        custom_error_message="condition must be an object",
    ),
]
_MODEL_TAGS: dict[type, str] = {Leaf: "#leaf", AllOf: "#allOf", AnyOf: "#anyOf", Not: "#not"}


# ---- actions ---------------------------------------------------------------------------------
class SizeMult(_Schema):
    type: Literal["size_mult"] = "size_mult"
    value: Annotated[float, Field(strict=True, allow_inf_nan=False, gt=0, le=MAX_SIZE_MULT)]


class SkipEntry(_Schema):
    type: Literal["skip_entry"] = "skip_entry"


def _action_tag(v: Any) -> str | None:
    kind = v.get("type") if isinstance(v, dict) else getattr(v, "type", None)
    return f"#{kind}" if kind in ACTIONS else None


Action = Annotated[
    Annotated[SizeMult, Tag("#size_mult")] | Annotated[SkipEntry, Tag("#skip_entry")],
    Discriminator(
        _action_tag,
        custom_error_type="action_type",
        custom_error_message=f"action.type must be one of {list(ACTIONS)}",
    ),
]


# ---- rules -----------------------------------------------------------------------------------
StrList = Annotated[list[str], Field(min_length=1, max_length=MAX_LIST)]
_Services = Annotated[list[Literal["s3-strategy"]], Field(min_length=1, max_length=MAX_LIST)]
_Markets = Annotated[list[Literal["FUT", "SPOT"]], Field(min_length=1, max_length=MAX_LIST)]


class Applies(_Schema):
    """Absent lists mean "every": every symbol, every service, both markets."""

    symbols: StrList | None = None
    services: _Services | None = None
    markets: _Markets | None = None


class StrategyRule(_Schema):
    """One `strategy_rules` document (system fields `_key/_id/_rev` removed)."""

    rule_id: Annotated[str, Field(pattern=RULE_ID_PATTERN)]
    priority: Annotated[int, Field(strict=True, ge=0, le=MAX_PRIORITY)]
    description: Annotated[str, Field(max_length=MAX_DESCRIPTION)] | None = None
    applies: Applies = Applies()
    when: Cond
    action: Action
    status: Literal["ENABLED", "DISABLED"]


# ---- the whitelist ---------------------------------------------------------------------------
class Factor(_Schema):
    """One `factor_registry` document: a feature the rules may read, with its declared range
    (a feature outside it is a feed error; a threshold outside it a unit mistake)."""

    name: FeatureName
    type: Literal["float"] = "float"
    unit: str | None = None
    description: str | None = None
    min: Number | None = None
    max: Number | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Factor:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} > max {self.max}")
        return self


class RuleErrors(ValueError):
    """Every problem of a set of rules (or factors), each a string starting with its path."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = errors
        shown = "; ".join(errors[:20]) + (
            f"; … {len(errors) - 20} more" if len(errors) > 20 else ""
        )
        super().__init__(f"{len(errors)} rule error(s): {shown}")


_FACTOR = TypeAdapter(Factor)


# ---- the same language as plain dicts (the fast yes) -------------------------------------------
# A valid bundle is the common case (every upload, every replica's reload): validating it into
# ~1,600 model instances costs twice what validating it into plain dicts does (issue 13: a
# 200-rule bundle is linted, compiled and diffed within 10 ms). These TypedDicts state the
# language above field for field, with the same annotated types and discriminators; they may
# only be stricter (a `type` the action's discriminator requires anyway, no field names in
# place of aliases), never looser: whatever they refuse goes through the models, which give the
# answer and the messages. tests/unit/s3/test_rules_lint.py checks the two agree on random
# documents.
_FORBID = ConfigDict(extra="forbid")


@with_config(_FORBID)
class LeafDoc(TypedDict):
    f: FeatureName
    op: Literal["<", "<=", ">", ">=", "==", "!="]
    v: Number


@with_config(_FORBID)
class AllOfDoc(TypedDict):
    allOf: Annotated[list[CondDoc], Field(min_length=1, max_length=MAX_CHILDREN)]


@with_config(_FORBID)
class AnyOfDoc(TypedDict):
    anyOf: Annotated[list[CondDoc], Field(min_length=1, max_length=MAX_CHILDREN)]


# "not" is a keyword: the functional form, its config set as with_config would.
NotDoc = TypedDict("NotDoc", {"not": "CondDoc"})
NotDoc.__pydantic_config__ = _FORBID  # type: ignore[attr-defined]
CondDoc = Annotated[
    Annotated[LeafDoc, Tag("#leaf")]
    | Annotated[AllOfDoc, Tag("#allOf")]
    | Annotated[AnyOfDoc, Tag("#anyOf")]
    | Annotated[NotDoc, Tag("#not")],
    Discriminator(_cond_tag),
]


@with_config(_FORBID)
class SizeMultDoc(TypedDict):
    type: Literal["size_mult"]
    value: Annotated[float, Field(strict=True, allow_inf_nan=False, gt=0, le=MAX_SIZE_MULT)]


@with_config(_FORBID)
class SkipEntryDoc(TypedDict):
    type: Literal["skip_entry"]


@with_config(_FORBID)
class AppliesDoc(TypedDict, total=False):
    symbols: StrList | None
    services: _Services | None
    markets: _Markets | None


@with_config(_FORBID)
class RuleDoc(TypedDict):
    """A `StrategyRule` as the validated plain document (system fields removed)."""

    rule_id: Annotated[str, Field(pattern=RULE_ID_PATTERN)]
    priority: Annotated[int, Field(strict=True, ge=0, le=MAX_PRIORITY)]
    description: NotRequired[Annotated[str, Field(max_length=MAX_DESCRIPTION)] | None]
    applies: NotRequired[AppliesDoc]
    when: CondDoc
    action: Annotated[
        Annotated[SizeMultDoc, Tag("#size_mult")] | Annotated[SkipEntryDoc, Tag("#skip_entry")],
        Discriminator(_action_tag),
    ]
    status: Literal["ENABLED", "DISABLED"]


_RULE_DOCS = TypeAdapter(list[RuleDoc])


def short(v: object, limit: int = 60) -> str:
    """repr for an error message, bounded (a 9.7 MB string or a 10**5000 int stays short)."""
    if isinstance(v, int) and not isinstance(v, bool) and v.bit_length() > 64:
        return f"an integer of {v.bit_length()} bits"
    if isinstance(v, str | list | dict | tuple) and len(v) > limit:
        return f"{type(v).__name__} of length {len(v)}"
    text = repr(v)
    return text if len(text) <= limit else text[:limit] + "…"


def factors_from_docs(docs: Iterable[Mapping[str, Any]]) -> dict[str, Factor]:
    """`factor_registry` documents → whitelist (name → Factor); RuleErrors naming each bad one."""
    out: dict[str, Factor] = {}
    errors: list[str] = []
    for doc in docs:
        body = {k: v for k, v in doc.items() if k not in SYSTEM_FIELDS}
        try:
            factor = _FACTOR.validate_python(body)
        except ValidationError as exc:
            name = body.get("name")
            if not isinstance(name, str) or not FEATURE_RE.fullmatch(name):
                errors.append(f"factor_registry: invalid factor name {short(name)}")
                continue
            for e in exc.errors():
                key = ".".join(str(p) for p in e["loc"])
                if key in ("min", "max"):
                    errors.append(
                        f"factor_registry: {name}: {key} must be a finite number within "
                        f"±{MAX_ABS:g}, got {short(e['input'])}"
                    )
                else:
                    where = f"{key}: " if key else ""
                    errors.append(f"factor_registry: {name}: {where}{_msg(e)}")
            continue
        if factor.name in out:
            errors.append(f"factor_registry: duplicate factor {factor.name!r}")
        out[factor.name] = factor
    if errors:
        raise RuleErrors(errors)
    return out


# ---- validation ------------------------------------------------------------------------------
def _msg(e: Any) -> str:
    msg = str(e["msg"])
    return msg.removeprefix("Value error, ")


def _nodes(node: object, depth: int, max_depth: int, count: list[int], leaves: list[Any]) -> bool:
    """The fast walk: count condition nodes and collect the leaf candidates; False as soon as
    a budget is exceeded (then `_budget` walks again to say where)."""
    count[0] += 1
    if count[0] > MAX_NODES_PER_RULE or depth > max_depth:
        return False
    if type(node) is dict:
        kids = node.get("allOf")
        if kids is None:
            kids = node.get("anyOf")
        if type(kids) is list:
            if len(kids) <= MAX_CHILDREN:  # longer: the schema refuses it without walking
                for kid in kids:
                    if not _nodes(kid, depth + 1, max_depth, count, leaves):
                        return False
            return True
        if "not" in node:
            return _nodes(node["not"], depth + 1, max_depth, count, leaves)
        leaves.append(node)
    return True


def _budget(
    node: object, where: str, depth: int, max_depth: int, count: list[int], errors: list[str]
) -> None:
    """Count condition nodes (stopping at the budget) and check the depth, before pydantic
    walks anything: shared sub-trees can make a small object a huge tree."""
    count[0] += 1
    if count[0] > MAX_NODES_PER_RULE:
        if count[0] == MAX_NODES_PER_RULE + 1:
            errors.append(f"{where}: more than {MAX_NODES_PER_RULE} condition nodes in one rule")
        return
    if depth > max_depth:
        errors.append(f"{where}: condition deeper than max_depth {max_depth}")
        count[0] = MAX_NODES_PER_RULE + 2  # one report per rule; the size is moot now
        return
    if type(node) is not dict:
        return
    for key in ("allOf", "anyOf"):
        kids = node.get(key)
        if type(kids) is list and len(kids) <= MAX_CHILDREN:
            for i, kid in enumerate(kids):
                _budget(kid, f"{where}.{key}[{i}]", depth + 1, max_depth, count, errors)
            return
    if "not" in node:
        _budget(node["not"], f"{where}.not", depth + 1, max_depth, count, errors)


def _path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not part.startswith("#"):  # a union tag, not a field
            out += f".{part}" if out else part
    return out


# A combinator's location carries its alias: the discriminator only routes aliases to them.
_COMBINATORS = ("allOf", "anyOf")


def _explain(rid: str, doc: Mapping[str, Any], e: Any) -> tuple[str, str]:
    """One pydantic error as (dedup key, the linter's message)."""
    loc: tuple[int | str, ...] = tuple(e["loc"])
    kind, inp = e["type"], e.get("input")
    fields = [p for p in loc if isinstance(p, str) and not p.startswith("#")]
    last = fields[-1] if fields else ""
    parent = loc[-2] if len(loc) >= 2 else None
    if kind == "missing" and len(loc) == 1:
        return last, f"{rid}: {last} is required"
    if loc[:1] == ("when",) or (fields and fields[0] == "when"):
        node_loc = loc
        # An error inside a leaf's field: the leaf is the node.
        if loc and loc[-1] in ("f", "op", "v") and parent == "#leaf":
            node_loc = loc[:-1]
        where = f"{rid}: {_path(node_loc)}"
        if kind == "condition_type":
            return where, f"{where}: condition must be an object, got {short(inp)}"
        if parent == "#leaf" and last == "f" and kind != "missing":
            return where + ".f", f"{where}: unknown feature {short(inp)} (not in factor_registry)"
        if parent == "#leaf" and last == "op" and kind != "missing":
            return where + ".op", (
                f"{where}: unknown operator {short(inp)} (allowed: {' '.join(OPS)})"
            )
        if parent == "#leaf" and last == "v" and kind != "missing":
            if kind == "float_type" and not (isinstance(inp, int) and not isinstance(inp, bool)):
                return where + ".v", f"{where}: v must be a number, got {short(inp)}"
            return where + ".v", (
                f"{where}: v must be finite and within ±{MAX_ABS:g}, got {short(inp)}"
            )
        if last in _COMBINATORS and kind in ("list_type", "too_short", "missing", "too_long"):
            key, where = last, f"{rid}: {_path(loc[:-1])}"
            if kind == "too_long":
                return where, f"{where}: {key} has more than {MAX_CHILDREN} children"
            return where, f"{where}: {key} needs a non-empty list"
        # extra or missing keys of a node
        node_loc = loc[:-1] if kind in ("extra_forbidden", "missing") else loc
        tag = node_loc[-1] if node_loc else None
        where = f"{rid}: {_path(node_loc)}"
        node = _at(doc, node_loc)
        keys = sorted(node) if isinstance(node, dict) else node
        if tag in ("#allOf", "#anyOf", "#not"):
            key = str(tag)[1:]
            return where, f"{where}: {key} takes no sibling keys, got {keys}"
        if tag == "#leaf":
            return where, f"{where}: a leaf is exactly {{f, op, v}}, got {keys}"
        return where, f"{where}: {_msg(e)}"
    if fields[:1] == ["action"]:
        if kind == "action_type":
            got = inp.get("type") if isinstance(inp, dict) else inp
            return "action", f"{rid}: action.type must be one of {list(ACTIONS)}, got {got!r}"
        if "#size_mult" in loc and kind == "extra_forbidden":
            return "action", f"{rid}: size_mult action is exactly {{type, value}}"
        if "#skip_entry" in loc:
            return "action", f"{rid}: skip_entry action takes no other keys"
        return "action.value", (
            f"{rid}: action.value: size_mult value must be a number in (0, {MAX_SIZE_MULT}], "
            f"got {short(inp if kind != 'missing' else None)}"
        )
    if fields[:1] == ["applies"]:
        if kind == "extra_forbidden":
            return "applies.extra", f"{rid}: applies has unknown keys {[loc[1]]}"
        if len(fields) == 1:
            return "applies", f"{rid}: applies must be an object"
        name = fields[1]
        where = f"{rid}: applies.{name}"
        if kind == "too_long":
            return where, f"{where}: more than {MAX_LIST} entries ({len(inp)})"
        if kind == "literal_error":  # a value outside a closed set: collected by the caller
            return where + "\0unknown", str(inp)
        return where, f"{where}: must be a non-empty list of strings"
    if last == "priority":
        return last, f"{rid}: priority must be an int in [0, {MAX_PRIORITY}], got {short(inp)}"
    if last == "status":
        return last, f"{rid}: status must be one of {list(STATUSES)}, got {short(inp)}"
    if last == "description":
        if kind == "string_too_long":
            return last, f"{rid}: description: longer than {MAX_DESCRIPTION} characters"
        return last, f"{rid}: description must be a string"
    if kind == "extra_forbidden":
        return "\0extra", str(loc[0])
    if kind == "missing":
        return last, f"{rid}: {last} is required"
    return _path(loc), f"{rid}: {_path(loc)}: {_msg(e)}"


def _at(doc: Any, loc: tuple[int | str, ...]) -> Any:
    node = doc
    for part in loc:
        if isinstance(part, str) and part.startswith("#"):
            continue
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return None
    return node


def _messages(rid: str, doc: Mapping[str, Any], exc: ValidationError) -> list[str]:
    out: list[str] = []
    seen: set[str] = set()
    extra: list[str] = []
    unknown: dict[str, list[str]] = {}
    for e in exc.errors():
        key, text = _explain(rid, doc, e)
        if key == "\0extra":
            extra.append(text)
        elif key.endswith("\0unknown"):
            where = key.removesuffix("\0unknown")
            if where not in unknown:
                unknown[where] = []
                out.append(where)  # placeholder, filled below
            unknown[where].append(text)
        elif key not in seen:
            seen.add(key)
            out.append(text)
    allowed = {"applies.markets": MARKETS, "applies.services": SERVICES}
    for i, text in enumerate(out):
        if text in unknown:
            name = text.split(": ", 1)[1]
            values = sorted(set(unknown[text]))
            shown = [short(u, 40) for u in values[:5]] if len(values) > 5 else values
            out[i] = f"{text}: unknown {shown} (allowed: {sorted(allowed[name])})"
    if extra:
        shown = [k if len(k) <= 40 else k[:40] + "…" for k in sorted(extra)[:10]]
        out.insert(0, f"{rid}: unknown keys {shown}")
    return out


def _leaves(node: Cond, where: str = "when") -> Iterator[tuple[Leaf, str]]:
    """Every leaf with its path below `when`, in document order (depth is bounded: linted)."""
    if isinstance(node, Leaf):
        yield node, where
    elif isinstance(node, Not):
        yield from _leaves(node.not_, f"{where}.not")
    else:
        key, kids = ("allOf", node.all_of) if isinstance(node, AllOf) else ("anyOf", node.any_of)
        for i, c in enumerate(kids):
            yield from _leaves(c, f"{where}.{key}[{i}]")


def check_references(
    rule: StrategyRule, *, factors: Mapping[str, Factor], symbols: Collection[str]
) -> list[str]:
    """Cross-reference checks of a schema-valid rule: features whitelisted and thresholds inside
    their declared range, symbols known."""
    errors: list[str] = []
    rid = rule.rule_id
    for leaf, where in _leaves(rule.when):
        factor = factors.get(leaf.f)
        if factor is None:
            errors.append(
                f"{rid}: {where}: unknown feature {short(leaf.f)} (not in factor_registry)"
            )
            continue
        v, lo, hi = leaf.v, factor.min, factor.max
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            errors.append(f"{rid}: {where}: threshold {v} outside {leaf.f}'s range [{lo}, {hi}]")
    syms = rule.applies.symbols
    if syms is not None:
        unknown = sorted(set(syms).difference(symbols))
        if unknown:
            shown = [short(u, 40) for u in unknown[:5]] if len(unknown) > 5 else unknown
            hint = f" (allowed: {sorted(symbols)})" if len(symbols) <= 8 else ""
            errors.append(f"{rid}: applies.symbols: unknown {shown}{hint}")
    return errors


def _references_ok(
    applies_symbols: Iterable[list[str] | None],
    leaves: list[Any],
    factors: Mapping[str, Factor],
    symbols: Collection[str],
) -> bool:
    """The fast yes of `check_references` for a whole bundle, on the raw leaves the schema has
    just accepted (no tree walk, no message): any doubt and the caller asks for the details.
    `applies_symbols`: each rule's `applies.symbols`."""
    for leaf in leaves:
        factor = factors.get(leaf["f"])
        if factor is None:
            return False
        v, lo, hi = leaf["v"], factor.min, factor.max
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            return False
    known = symbols if isinstance(symbols, set | frozenset | dict) else set(symbols)
    for syms in applies_symbols:
        if syms is not None and not all(s in known for s in syms):
            return False
    return True


def _prepare(
    docs: list[object], max_depth: int
) -> tuple[list[dict[str, Any] | list[str]], list[Any]]:
    """Per rule: its body to validate, or the errors that stop it before the schema (a list);
    every leaf's raw document (for the reference checks)."""
    bodies: list[dict[str, Any] | list[str]] = []
    leaves: list[Any] = []
    ids: set[str] = set()
    nodes = 0
    for i, doc in enumerate(docs):
        if not isinstance(doc, dict):
            bodies.append([f"rules[{i}]: rule must be an object, got {short(doc)}"])
            continue
        body = (
            doc
            if SYSTEM_FIELDS.isdisjoint(doc)
            else {k: v for k, v in doc.items() if k not in SYSTEM_FIELDS}
        )
        rid = body.get("rule_id")
        if not isinstance(rid, str) or not RULE_ID_RE.fullmatch(rid):
            bodies.append(
                [
                    f"rules[{i}].rule_id: invalid rule_id {short(rid)} "
                    "(exactly [A-Za-z0-9][A-Za-z0-9_.:-]{0,63})"
                ]
            )
            continue
        errors: list[str] = []
        count = [0]
        if "when" in body and not _nodes(body["when"], 1, max_depth, count, leaves):
            count = [0]
            _budget(body["when"], f"{rid}: when", 1, max_depth, count, errors)
        nodes += min(count[0], MAX_NODES_PER_RULE)
        if nodes > MAX_NODES_PER_BUNDLE:
            bodies.append(
                [
                    f"rules: more than {MAX_NODES_PER_BUNDLE} condition nodes in one bundle "
                    f"(reached at rules[{i}])"
                ]
            )
            break
        if rid in ids:
            errors.append(f"{rid}: duplicate rule_id")
        ids.add(rid)
        bodies.append(errors or body)
    return bodies, leaves


def check_rules(
    docs: Iterable[object],
    *,
    factors: Mapping[str, Factor],
    symbols: Collection[str],
    max_depth: int = DEFAULT_MAX_DEPTH,
) -> list[StrategyRule]:
    """Validate a bundle's rules against the size budgets, the schema and the reference data;
    RuleErrors listing every problem (rule by rule, in order), else the typed rules."""
    docs = list(docs)
    if len(docs) > MAX_RULES:
        raise RuleErrors([f"rules: more than {MAX_RULES} rules in one bundle ({len(docs)})"])
    rules: list[StrategyRule] = []
    out: list[str] = []
    for entry in _prepare(docs, max_depth)[0]:
        if isinstance(entry, list):
            out += entry
            continue
        try:
            rule = StrategyRule.model_validate(entry)
        except ValidationError as exc:
            out += _messages(str(entry["rule_id"]), entry, exc)
        else:
            rules.append(rule)
            out += check_references(rule, factors=factors, symbols=symbols)
    if out:
        raise RuleErrors(out)
    return rules


def check_rule_docs(
    docs: Iterable[object],
    *,
    factors: Mapping[str, Factor],
    symbols: Collection[str],
    max_depth: int = DEFAULT_MAX_DEPTH,
) -> list[RuleDoc] | list[StrategyRule]:
    """`check_rules` with a faster yes: a bundle the plain schema (`RuleDoc`) accepts and whose
    references hold comes back as validated plain documents; anything else is answered by
    `check_rules` itself (its typed rules, or RuleErrors with every message)."""
    docs = list(docs)
    if len(docs) <= MAX_RULES:
        bodies, leaves = _prepare(docs, max_depth)
        if not any(isinstance(b, list) for b in bodies):  # no rule stopped before the schema
            try:
                plain = _RULE_DOCS.validate_python(bodies)
            except ValidationError:
                pass
            else:
                applies = ((r.get("applies") or {}).get("symbols") for r in plain)
                if _references_ok(applies, leaves, factors, symbols):
                    return plain
    return check_rules(docs, factors=factors, symbols=symbols, max_depth=max_depth)

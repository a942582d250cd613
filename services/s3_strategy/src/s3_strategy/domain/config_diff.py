"""Semantic diff of two config bundles (issue 13): what an operator reviews before activating.

Rules are matched by `rule_id` (order in the upload does not matter); a changed rule lists the
field paths that differ (`when.allOf[0].v`, `action.value`, …) with old → new values. Params are
compared the same way, path by path. Pure; it runs on every upload and every audit record, so
both documents are walked together and only what differs is flattened.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from operator import itemgetter
from typing import Any

import orjson

_MISSING: Any = object()
_LEAF = (str, int, float, bool, type(None))
_SYSTEM = frozenset({"_key", "_id", "_rev"})


def _kind(value: Any) -> str:
    """'map' / 'list' for a non-empty container (walked into), 'leaf' otherwise (an empty
    container is a leaf: its path carries `{}` / `[]`)."""
    t = type(value)
    if t in _LEAF:
        return "leaf"
    if (t is dict or isinstance(value, Mapping)) and value:
        return "map"
    if t is list and value:
        return "list"
    return "leaf"


def _flatten(value: Any, prefix: str, out: dict[str, Any]) -> None:
    kind = _kind(value)
    if kind == "map":
        for key in sorted(value):
            _flatten(value[key], f"{prefix}.{key}" if prefix else str(key), out)
    elif kind == "list":
        for i, item in enumerate(value):
            _flatten(item, f"{prefix}[{i}]", out)
    elif prefix or not isinstance(value, Mapping | list):  # an empty root has no leaves
        out[prefix] = value


def _leaves_changes(old: Any, new: Any, prefix: str, changes: list[dict[str, Any]]) -> None:
    """The leaf-by-leaf comparison of two subtrees that are not walked together (a container
    on one side only, or two leaves)."""
    a: dict[str, Any] = {}
    b: dict[str, Any] = {}
    if old is not _MISSING:
        _flatten(old, prefix, a)
    if new is not _MISSING:
        _flatten(new, prefix, b)
    for path in a.keys() | b.keys():
        x, y = a.get(path, _MISSING), b.get(path, _MISSING)
        if x is _MISSING:
            changes.append({"path": path, "old": None, "new": y, "added": True})
        elif y is _MISSING:
            changes.append({"path": path, "old": x, "new": None, "removed": True})
        elif x != y or type(x) is not type(y):  # 1, 1.0 and true hash to different revs
            changes.append({"path": path, "old": x, "new": y})


_SCALAR = frozenset({str, int, float, bool, type(None)})
# Subclasses of str/int/dict/list, datetimes and dataclasses go to `default` (none: TypeError),
# so that only plain JSON types are compared through their serialisation.
_CANON = (
    orjson.OPT_PASSTHROUGH_SUBCLASS
    | orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_DATACLASS
)


def _same(x: Any, y: Any) -> bool:
    """Equal, with the same JSON types throughout (1, 1.0 and true are equal in Python but hash
    to different revs). The type check serialises both sides: orjson is an order of magnitude
    cheaper than repr, and this runs on every unchanged rule of every upload. Anything orjson
    does not take (a non-str key, an int beyond 64 bits, a subclass) is compared by repr. The
    documents are JSON (upload bodies, store documents); orjson would write an Enum member or a
    UUID as its value, which no JSON document holds."""
    if not bool(x == y):
        return False
    try:
        return orjson.dumps(x, option=_CANON) == orjson.dumps(y, option=_CANON)
    except TypeError:
        return repr(x) == repr(y)


def _pair(x: Any, y: Any, path: str, changes: list[dict[str, Any]]) -> None:
    """A pair of containers (or mixed kinds) that are not the same object."""
    tx = type(x)
    if tx is type(y):
        if _same(x, y):
            return
        if tx is dict and x and y:
            _walk_map(x, y, path, changes)
            return
        if tx is list and x and y:
            _walk_list(x, y, path, changes)
            return
    _leaves_changes(x, y, path, changes)


# `_walk_map` and `_walk_list` handle the common cases (two scalars of one type, two non-empty
# dicts or lists) inline rather than through a helper: a Python call per key is most of what a
# diff of 200 changed rules costs (the reload benchmark, issue 13).
def _walk_map(old: Any, new: Any, prefix: str, changes: list[dict[str, Any]]) -> None:
    keys = old.keys() if old.keys() == new.keys() else old.keys() | new.keys()
    dot = prefix + "." if prefix else ""
    for key in keys:
        x, y = old.get(key, _MISSING), new.get(key, _MISSING)
        if x is y:
            continue
        tx = type(x)
        if tx is type(y):
            if tx in _SCALAR:
                if x != y:
                    changes.append({"path": f"{dot}{key}", "old": x, "new": y})
                continue
            if tx is dict and x and y:
                if not _same(x, y):
                    _walk_map(x, y, f"{dot}{key}", changes)
                continue
            if tx is list and x and y:
                if not _same(x, y):
                    _walk_list(x, y, f"{dot}{key}", changes)
                continue
        _pair(x, y, f"{dot}{key}", changes)


def _walk_list(old: Any, new: Any, prefix: str, changes: list[dict[str, Any]]) -> None:
    n, m = len(old), len(new)
    for i in range(max(n, m)):
        x = old[i] if i < n else _MISSING
        y = new[i] if i < m else _MISSING
        if x is y:
            continue
        tx = type(x)
        if tx is type(y):
            if tx in _SCALAR:
                if x != y:
                    changes.append({"path": f"{prefix}[{i}]", "old": x, "new": y})
                continue
            if tx is dict and x and y:
                if not _same(x, y):
                    _walk_map(x, y, f"{prefix}[{i}]", changes)
                continue
            if tx is list and x and y:
                if not _same(x, y):
                    _walk_list(x, y, f"{prefix}[{i}]", changes)
                continue
        _pair(x, y, f"{prefix}[{i}]", changes)


def _walk(old: Any, new: Any, prefix: str, changes: list[dict[str, Any]]) -> None:
    """Both trees at once, descending only into containers present on both sides and not
    already equal: the cost is the size of what differs, not of the documents."""
    ka, kb = _kind(old), _kind(new)
    if ka == kb == "map":
        _walk_map(old, new, prefix, changes)
    elif ka == kb == "list":
        _walk_list(old, new, prefix, changes)
    elif ka == kb == "leaf" and type(old) is type(new) and old == new:
        return
    else:
        _leaves_changes(old, new, prefix, changes)


def field_changes(old: Any, new: Any) -> list[dict[str, Any]]:
    """[{path, old, new}] for every leaf that differs (a missing side is reported as None and
    flagged `added`/`removed`), sorted by path."""
    changes: list[dict[str, Any]] = []
    _walk(old, new, "", changes)
    changes.sort(key=itemgetter("path"))
    return changes


def _by_id(rules: Sequence[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    # System fields (`_key`, …) are the store's, not the rule's: dropped (with any other
    # `_` key), but a rule without them (an upload, a revisioned bundle) is not copied.
    return {
        str(r["rule_id"]): (
            {k: v for k, v in r.items() if not str(k).startswith("_")}
            if not _SYSTEM.isdisjoint(r)
            else r
        )
        for r in rules
    }


def diff_bundles(
    old: Mapping[str, Any] | None, new: Mapping[str, Any], *, from_rev: str | None = None
) -> dict[str, Any]:
    """Diff `new` against `old` (None: everything is added). Both are `{params, rules}`."""
    old_rules = _by_id(old.get("rules") or []) if old is not None else {}
    new_rules = _by_id(new.get("rules") or [])
    added = sorted(new_rules.keys() - old_rules.keys())
    removed = sorted(old_rules.keys() - new_rules.keys())
    changed = []
    for rid in sorted(old_rules.keys() & new_rules.keys()):
        a, b = old_rules[rid], new_rules[rid]
        if a is b or _same(a, b):
            continue
        if type(a) is dict and type(b) is dict and a and b:  # what uploads and the store give
            fields: list[dict[str, Any]] = []
            _walk_map(a, b, "", fields)
            if len(fields) > 1:
                fields.sort(key=itemgetter("path"))
        else:
            fields = field_changes(a, b)
        if fields:
            changed.append({"rule_id": rid, "fields": fields})
    params = field_changes((old or {}).get("params") or {}, new.get("params") or {})
    return {
        "from_rev": from_rev,
        "to_rev": new.get("rev"),
        "rules": {"added": added, "removed": removed, "changed": changed},
        "params": params,
        "summary": {
            "rules_added": len(added),
            "rules_removed": len(removed),
            "rules_changed": len(changed),
            "params_changed": [str(p["path"]) for p in params],
            "empty": not (added or removed or changed or params),
        },
    }

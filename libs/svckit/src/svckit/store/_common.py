"""Helpers shared by the store adapters, so that SQLite and ArangoDB accept and return exactly
the same documents (the contract tests hold them to it).

Conventions both adapters follow:

* `_key` must match ArangoDB's key alphabet (`KEY_RE`) and is generated as uuid4 hex when a
  caller does not pass one; `_id` and `_rev` (ArangoDB system attributes) are never stored nor
  returned, so a document reads back the same from either backend.
* Field names in filters, sorts and indexes match `FIELD_RE` (dotted = nested attribute); they
  are the only thing ever spliced into SQL/AQL text, values always travel as parameters.
* Filter values are scalars (str, int, float, bool, None) and compare without type coercion:
  `True` never matches `1`, `"5"` never matches `5`. `None` matches a JSON null *or* a missing
  field (AQL semantics, reproduced in SQLite).
* Decimals passed by mistake are stored as strings (never floats), like `model_dump(mode="json")`.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from svckit.store.base import COLLECTIONS, Doc

FIELD_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")
# ArangoDB's document-key alphabet (max 254 bytes); applied to SQLite too so keys port over.
KEY_RE = re.compile(r"^[A-Za-z0-9_\-:.@()+,=;$!*'%]{1,254}$")
SYSTEM_FIELDS = ("_key", "_id", "_rev")

Scalar = str | int | float | bool | None


def new_key() -> str:
    return uuid.uuid4().hex


def check_collection(collection: str) -> str:
    if collection not in COLLECTIONS:
        raise ValueError(f"unknown collection {collection!r}")
    return collection


def check_key(key: object) -> str:
    if not isinstance(key, str) or not KEY_RE.match(key):
        raise ValueError(f"invalid document key {key!r}")
    return key


def check_field(name: str) -> str:
    if not FIELD_RE.match(name) or ".." in name or name.endswith("."):
        raise ValueError(f"invalid field name {name!r}")
    return name


def check_scalar(field: str, value: object) -> Scalar:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise TypeError(f"filter on {field!r}: only scalar equality is supported, got {type(value)}")


def check_limit(limit: int | None) -> int | None:
    if limit is not None and (isinstance(limit, bool) or limit < 0):
        raise ValueError(f"invalid limit {limit!r}")
    return limit


def sort_terms(sort: Sequence[tuple[str, str]], expr: Callable[[str], str]) -> str:
    """`field ASC|DESC, ...` with `expr(field)` for each field, then `_key` (unless sorted on
    already): ties come back in the same stable order from either adapter."""
    terms: list[str] = []
    for field, direction in sort:
        if direction not in ("asc", "desc"):
            raise ValueError(f"invalid sort direction {direction!r}")
        terms.append(f"{expr(field)} {direction.upper()}")
    if not any(field == "_key" for field, _ in sort):
        terms.append(f"{expr('_key')} ASC")
    return ", ".join(terms)


def body_of(doc: Mapping[str, Any]) -> Doc:
    """The document without system attributes (the key lives beside it)."""
    return {k: v for k, v in doc.items() if k not in SYSTEM_FIELDS}


def json_default(value: object) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"value of type {type(value).__name__} is not JSON serialisable")


def content_rev(value: Any, length: int = 12) -> str:
    """Revision of a config artefact: the first `length` hex of sha256 over its canonical JSON
    (sorted keys, no whitespace, Decimals as strings: the same content hashes the same)."""
    text = json.dumps(
        value, default=json_default, ensure_ascii=False, sort_keys=True, separators=(",", ":")
    )
    return hashlib.sha256(text.encode()).hexdigest()[:length]

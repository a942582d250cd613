"""The store port: one document-store interface over the collections of DESIGN.md §4.

Two adapters implement it: :mod:`svckit.store.sqlite` (embedded default, a WAL file under a data
dir) and :mod:`svckit.store.arango` (python-arango, when `S*_DB_ARANGO_URI` is set). Documents
are JSON objects; `_key` is the primary key of a document inside its collection (generated when
absent). Values must be JSON-serialisable: callers pass `model_dump(mode="json")` output, so
Decimals travel as strings and are never rounded by the store.

Filters are equality on top-level (or dotted) fields; that is all the services need, and it
maps one-to-one onto both SQLite json_extract indexes and AQL.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from svckit.errors import StoreError

Doc = dict[str, Any]

COLLECTIONS: tuple[str, ...] = (
    "instrument_registry",
    "factor_registry",
    "strategy_rules",
    "config_active",
    "config_bundles",
    "config_audit",  # S3 config activations/rollbacks (who, when, rev → rev, diff summary)
    "route_tables",
    "signals",
    "orders",
    "fills",
    "positions_snapshots",
    "strategy_events",
)


@dataclass(frozen=True)
class IndexSpec:
    collection: str
    fields: tuple[str, ...]
    unique: bool = False

    @property
    def index_name(self) -> str:
        suffix = "_".join(f.replace(".", "_") for f in self.fields)
        return f"ix_{self.collection}_{suffix}"


INDEXES: tuple[IndexSpec, ...] = (
    IndexSpec("instrument_registry", ("symbol",), unique=True),
    IndexSpec("strategy_rules", ("rule_id",), unique=True),
    IndexSpec("orders", ("client_order_id",), unique=True),
    IndexSpec("orders", ("parent_client_order_id",)),
    IndexSpec("orders", ("symbol", "status")),
    IndexSpec("fills", ("venue", "order_id", "trade_id"), unique=True),
    IndexSpec("fills", ("client_order_id",)),
    IndexSpec("fills", ("parent_client_order_id",)),
    IndexSpec("signals", ("signal_id",), unique=True),
    IndexSpec("signals", ("symbol", "t0")),
    IndexSpec("strategy_events", ("kind", "ts")),
    IndexSpec("config_audit", ("ts",)),
)


@dataclass(frozen=True)
class Query:
    """Equality filter + optional sort and limit."""

    where: Mapping[str, Any] = field(default_factory=dict)
    sort: Sequence[tuple[str, Literal["asc", "desc"]]] = ()
    limit: int | None = None


class DocumentStore(abc.ABC):
    """Port. Methods are async and never block the event loop: the Arango adapter does its
    network I/O on threads, the SQLite adapter its transactions on a writer thread and reader
    threads."""

    name: str

    @abc.abstractmethod
    async def bootstrap(self) -> None:
        """Create collections and indexes (idempotent)."""

    async def insert(self, collection: str, doc: Doc) -> str:
        """Insert and return `_key`; raises DuplicateKey on any unique-index violation."""
        (result,) = await self.insert_many(collection, [doc])
        if isinstance(result, StoreError):
            raise result
        return result

    @abc.abstractmethod
    async def insert_many(self, collection: str, docs: Sequence[Doc]) -> list[str | StoreError]:
        """Insert several documents in one round trip / transaction where the backend allows
        (a group commit). Per document, in order: its `_key`, or the StoreError that document
        alone hit (DuplicateKey, InvalidDocument); the others are inserted regardless. A
        failure of the store itself (StoreUnavailable) raises for the whole call, nothing of it
        reported as done."""

    @abc.abstractmethod
    async def upsert(self, collection: str, key: str, doc: Doc) -> None:
        """Create or replace the whole document stored under `key`."""

    @abc.abstractmethod
    async def update(self, collection: str, key: str, patch: Doc) -> Doc:
        """Merge top-level fields of `patch` into the document; returns the new document.
        Raises NotFound; DuplicateKey if the patch violates a unique index."""

    @abc.abstractmethod
    async def get(self, collection: str, key: str) -> Doc | None: ...

    @abc.abstractmethod
    async def find(self, collection: str, query: Query | None = None) -> list[Doc]: ...

    @abc.abstractmethod
    async def count(self, collection: str, where: Mapping[str, Any] | None = None) -> int: ...

    @abc.abstractmethod
    async def delete(self, collection: str, key: str) -> bool:
        """Delete by key; returns whether a document was removed."""

    @abc.abstractmethod
    async def ping(self) -> bool:
        """Cheap liveness probe for /health (never raises)."""

    @abc.abstractmethod
    async def close(self) -> None: ...

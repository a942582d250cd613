"""Store port and its adapters.

`make_store(...)` picks the adapter (ArangoDB when a URI is configured, else SQLite);
`seed_store(store, fixtures_dir)` bootstraps and seeds reference data; `content_rev(x)` is the
revision hash used for route tables and config bundles. Adapters import their drivers lazily.
"""

from svckit.store._common import KEY_RE, body_of, content_rev
from svckit.store.base import COLLECTIONS, INDEXES, Doc, DocumentStore, IndexSpec, Query
from svckit.store.factory import make_store

__all__ = [
    "COLLECTIONS",
    "INDEXES",
    "KEY_RE",
    "Doc",
    "DocumentStore",
    "IndexSpec",
    "Query",
    "body_of",
    "content_rev",
    "make_store",
]

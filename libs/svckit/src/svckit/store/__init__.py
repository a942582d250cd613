"""Store port (`base`) and its adapters (`sqlite`, `arango`; drivers imported lazily).

`factory.make_store(...)` picks the adapter (ArangoDB when a URI is configured, else SQLite);
`seed.seed_store(store, fixtures_dir)` bootstraps and seeds reference data; `content_rev(x)` is
the revision hash used for route tables and config bundles.
"""

from svckit.store._common import KEY_RE, body_of, content_rev

__all__ = ["KEY_RE", "body_of", "content_rev"]

"""Choose the store adapter from configuration (DESIGN.md §2: embedded first).

ArangoDB when an URI is configured (`S3_DB_ARANGO_URI` / `S4_DB_ARANGO_URI`), otherwise the
embedded SQLite file `data_dir/store.sqlite3`. Nothing connects here: adapters open lazily, and
the composition root calls `bootstrap()`.
"""

from __future__ import annotations

from pathlib import Path

from svckit.store.base import DocumentStore

SQLITE_FILENAME = "store.sqlite3"


def make_store(
    *,
    arango_uri: str | None,
    arango_user: str | None,
    arango_pass: str | None,
    arango_db: str = "chimera",
    data_dir: Path,
) -> DocumentStore:
    if arango_uri and arango_uri.strip():
        # Imported lazily: the embedded path does not need python-arango loaded.
        from svckit.store.arango import ArangoStore

        return ArangoStore(
            arango_uri,
            user=arango_user or "root",
            password=arango_pass or "",
            database=arango_db,
        )
    from svckit.store.sqlite import SqliteStore

    return SqliteStore(Path(data_dir) / SQLITE_FILENAME)

"""SQLite adapter of the store port: the embedded default (one WAL file under a data dir).

Layout: one table per collection, `(_key TEXT PRIMARY KEY, doc TEXT NOT NULL)`, where `doc` is
the JSON body without `_key`. Every `IndexSpec` of `base.INDEXES` becomes an expression index on
`json_extract(doc, '$.field')`, so equality filters on indexed fields are index lookups and
unique specs are enforced by SQLite itself (NULL/missing fields never collide, like ArangoDB's
sparse unique indexes the Arango adapter creates).

Threads: no call blocks the event loop. Writes run on the store's one writer thread, in the
order they were submitted, on its own connection; reads on a small pool of reader threads
(`READERS`), each with its own read-only connection, which WAL lets run beside the writer and
see every write committed before they start. So a write waiting for the lock of another
connection — another replica or service on the same file, up to `busy_timeout_ms` — holds only
that thread: other coroutines run and reads are answered meanwhile. A write, once submitted, is
carried out even if its caller is cancelled meanwhile. What amortises the thread hop and the WAL
write is `insert_many`: one multi-row statement, one transaction, one hop for a batch (S3's
group commit of `signals`). A store object can be shared by several event loops and threads.
A lock held beyond `busy_timeout_ms` makes the call raise `StoreUnavailable` (retryable), as
does a file that cannot be opened; `close()` finishes the submitted writes, then refuses calls.

Errors (the tree of `svckit.errors`): `sqlite3.IntegrityError` on a unique index or the primary
key → `DuplicateKey` naming the index; a missing row on `update` → `NotFound`;
`OperationalError` / `DatabaseError` (cannot open, locked beyond the timeout, no such table
before `bootstrap()`, disk I/O) → `StoreUnavailable`.
"""

from __future__ import annotations

import asyncio
import functools
import re
import sqlite3
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from svckit import jsonutil
from svckit.errors import DuplicateKey, InvalidDocument, NotFound, StoreError, StoreUnavailable
from svckit.store._common import (
    body_of,
    check_collection,
    check_field,
    check_key,
    check_limit,
    check_scalar,
    new_key,
    sort_terms,
)
from svckit.store.base import COLLECTIONS, INDEXES, Doc, DocumentStore, Query

_UNIQUE_INDEX_RE = re.compile(r"UNIQUE constraint failed: index '([^']+)'")
_UNIQUE_COLUMN_RE = re.compile(r"UNIQUE constraint failed: ([A-Za-z0-9_]+)\._key")
T = TypeVar("T")
# Rows per INSERT statement of a group commit (2 bound parameters each; SQLite allows 32766).
MAX_ROWS_PER_STATEMENT = 64
READERS = 2
_INDEX_FIELDS = {i.index_name: i.fields for i in INDEXES}  # for DuplicateKey's message


def _path(field: str) -> str:
    # field is validated by check_field (identifier chars and dots only): safe as a literal.
    return f"'$.{check_field(field)}'"


def _expr(field: str) -> str:
    """SQL expression for a document field; it must be textually identical to the index
    expression for SQLite to use the expression index."""
    if field == "_key":
        return "_key"
    return f"json_extract(doc, {_path(field)})"


def _where_sql(where: Mapping[str, Any] | None) -> tuple[str, list[Any]]:
    if not where:
        return "", []
    clauses: list[str] = []
    params: list[Any] = []
    for field, raw in where.items():
        value = check_scalar(field, raw)
        if field == "_key":
            if not isinstance(value, str):
                raise TypeError("filter on '_key' needs a string")
            clauses.append("_key = ?")
            params.append(value)
            continue
        expr, path = _expr(field), _path(field)
        # json_extract maps JSON true/false to 1/0 and drops the type; json_type restores it so
        # that True never matches 1 and "5" never matches 5 (AQL compares without coercion).
        if value is None:
            clauses.append(f"{expr} IS NULL")
        elif isinstance(value, bool):
            clauses.append(f"{expr} = ? AND json_type(doc, {path}) = ?")
            params += [int(value), "true" if value else "false"]
        elif isinstance(value, int | float):
            clauses.append(f"{expr} = ? AND json_type(doc, {path}) IN ('integer', 'real')")
            params.append(value)
        else:
            clauses.append(f"{expr} = ? AND json_type(doc, {path}) = 'text'")
            params.append(value)
    return " WHERE " + " AND ".join(clauses), params


def _row_doc(key: str, body: str) -> Doc:
    return {"_key": key, **jsonutil.loads(body)}


class SqliteStore(DocumentStore):
    """Document store on one SQLite file (WAL, synchronous=NORMAL), run off the event loop:
    one writer thread, `READERS` reader threads (see the module docstring)."""

    name = "sqlite"

    def __init__(
        self,
        path: Path | str,
        *,
        busy_timeout_ms: int = 5000,
        checkpoint_every_s: float = 1.0,
    ) -> None:
        self.path = Path(path)
        self._busy_timeout_ms = busy_timeout_ms
        self._memory = str(self.path) == ":memory:"
        # Executors start their threads on first use: nothing opens before a call.
        self._writer = ThreadPoolExecutor(1, thread_name_prefix=f"sqlite-w:{self.path.name}")
        # An in-memory database exists per connection: there the reads use the writer's.
        self._readers = (
            self._writer
            if self._memory
            else ThreadPoolExecutor(READERS, thread_name_prefix=f"sqlite-r:{self.path.name}")
        )
        self._local = threading.local()  # each store thread's own connection
        self._conns: list[sqlite3.Connection] = []  # every thread's, closed by close()
        self._conns_lock = threading.Lock()
        self._closed = False
        self._checkpoint_every_s = checkpoint_every_s
        self._stop_checkpoints = threading.Event()
        self._checkpointer: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"SqliteStore({str(self.path)!r})"

    # ---- threads, connections and error translation ------------------------------------------
    async def _read(self, where: str, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await self._submit(self._readers, where, fn, write=False)

    async def _write(self, where: str, fn: Callable[[sqlite3.Connection], T]) -> T:
        fut = self._submit(self._writer, where, fn, write=True)
        # Once submitted, a write is carried out whether or not its caller is still waiting.
        fut.add_done_callback(_retrieve)
        return await asyncio.shield(fut)

    def _submit(
        self,
        pool: ThreadPoolExecutor,
        where: str,
        fn: Callable[[sqlite3.Connection], T],
        *,
        write: bool,
    ) -> asyncio.Future[T]:
        if self._closed:
            raise StoreUnavailable(f"{self!r} is closed")
        loop = asyncio.get_running_loop()
        try:
            return loop.run_in_executor(pool, self._call, where, fn, write)
        except RuntimeError as exc:  # shut down by a close() on another thread meanwhile
            raise StoreUnavailable(f"{self!r} is closed") from exc

    def _call(self, where: str, fn: Callable[[sqlite3.Connection], T], write: bool) -> T:
        """On a store thread: that thread's connection; sqlite3 errors → the store's tree."""
        try:
            conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
            if conn is None:
                conn = self._local.conn = self._open(write or self._memory)
            try:
                return fn(conn)
            finally:
                if conn.in_transaction:
                    conn.rollback()
        except sqlite3.IntegrityError as exc:
            raise self._duplicate(where, exc) from exc
        except sqlite3.OperationalError as exc:
            raise StoreUnavailable(f"{where}: {exc}") from exc
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"{where}: {type(exc).__name__}: {exc}") from exc

    def _open(self, write: bool) -> sqlite3.Connection:
        try:
            if not self._memory:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                str(self.path),
                timeout=self._busy_timeout_ms / 1000,
                isolation_level=None,  # autocommit; write transactions are explicit
                check_same_thread=False,  # used by its own thread; closed by close()
            )
        except (OSError, sqlite3.Error) as exc:
            raise StoreUnavailable(f"cannot open {self.path}: {exc}") from exc
        try:
            conn.execute(f"PRAGMA busy_timeout={int(self._busy_timeout_ms)}")
            if not write:
                conn.execute("PRAGMA query_only=ON")
            else:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                if not self._memory and self._checkpoint_every_s > 0:
                    # A commit appends to the WAL without fsync (synchronous=NORMAL); the fsync
                    # happens at checkpoints. SQLite's automatic checkpoint would run inside
                    # whichever commit crosses 1000 pages, stalling that write for milliseconds;
                    # a background thread checkpoints instead.
                    conn.execute("PRAGMA wal_autocheckpoint=0")
                    self._start_checkpointer()
        except sqlite3.Error as exc:
            conn.close()
            raise StoreUnavailable(f"cannot open {self.path}: {exc}") from exc
        with self._conns_lock:
            self._conns.append(conn)
        return conn

    def _start_checkpointer(self) -> None:
        if self._checkpointer is not None:
            return

        def loop() -> None:
            try:
                cp = sqlite3.connect(str(self.path), timeout=self._busy_timeout_ms / 1000)
            except sqlite3.Error:
                return
            try:
                while not self._stop_checkpoints.wait(self._checkpoint_every_s):
                    try:
                        cp.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                    except sqlite3.Error:
                        continue  # busy or transient: the next round catches up
                cp.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            except sqlite3.Error:
                pass
            finally:
                cp.close()

        self._checkpointer = threading.Thread(
            target=loop, name=f"sqlite-checkpoint:{self.path.name}", daemon=True
        )
        self._checkpointer.start()

    def _duplicate(self, collection: str, exc: sqlite3.IntegrityError) -> StoreError:
        msg = str(exc)
        if m := _UNIQUE_INDEX_RE.search(msg):
            name = m.group(1)
            fields = ", ".join(_INDEX_FIELDS.get(name, ()))
            return DuplicateKey(collection, f"unique index {name} ({fields})")
        if _UNIQUE_COLUMN_RE.search(msg):
            return DuplicateKey(collection, "primary key _key")
        return StoreError(f"{collection}: integrity error: {msg}")

    def _table(self, collection: str) -> str:
        return f'"{check_collection(collection)}"'

    # ---- port ---------------------------------------------------------------------------------
    async def bootstrap(self) -> None:
        def run(conn: sqlite3.Connection) -> None:
            conn.execute("BEGIN IMMEDIATE")
            for name in COLLECTIONS:
                conn.execute(
                    f"CREATE TABLE IF NOT EXISTS {self._table(name)} "
                    "(_key TEXT PRIMARY KEY, doc TEXT NOT NULL)"
                )
            for spec in INDEXES:
                cols = ", ".join(_expr(f) for f in spec.fields)
                unique = "UNIQUE " if spec.unique else ""
                conn.execute(
                    f'CREATE {unique}INDEX IF NOT EXISTS "{spec.index_name}" '
                    f"ON {self._table(spec.collection)} ({cols})"
                )
            conn.execute("COMMIT")

        await self._write(str(self.path), run)

    async def insert_many(self, collection: str, docs: Sequence[Doc]) -> list[str | StoreError]:
        table = self._table(collection)
        rows: list[tuple[str, str]] = []
        invalid: dict[int, StoreError] = {}  # position → that document's own error
        for i, doc in enumerate(docs):
            raw_key = doc.get("_key")
            key = new_key() if raw_key is None else check_key(raw_key)  # a caller's bug: raises
            try:
                rows.append((key, jsonutil.dumps(body_of(doc))))
            except TypeError as exc:  # orjson: an int beyond 64 bits, a type JSON cannot carry
                invalid[i] = InvalidDocument(f"{collection}/{key}: {exc}")
        done: list[str | StoreError] = []
        if rows:
            done = await self._write(
                collection, lambda conn: self._insert_rows(conn, collection, table, rows)
            )
        if not invalid:
            return done
        stored = iter(done)
        return [invalid[i] if i in invalid else next(stored) for i in range(len(docs))]

    def _insert_rows(
        self, conn: sqlite3.Connection, collection: str, table: str, rows: list[tuple[str, str]]
    ) -> list[str | StoreError]:
        """Each chunk is one multi-row INSERT (one call into SQLite) and, for a batch of one
        chunk, one implicit transaction: one WAL append for the whole batch. A chunk
        that hits a unique index is redone row by row inside a transaction (a failed statement
        rolls back alone), so only the colliding documents report DuplicateKey."""
        out: list[str | StoreError] = []
        step = MAX_ROWS_PER_STATEMENT
        chunks = [rows[i : i + step] for i in range(0, len(rows), step)]
        explicit = len(chunks) > 1
        if explicit:
            conn.execute("BEGIN IMMEDIATE")
        for chunk in chunks:
            try:
                conn.execute(
                    _multi_insert_sql(table, len(chunk)), [v for row in chunk for v in row]
                )
                out.extend(key for key, _ in chunk)
                continue
            except sqlite3.IntegrityError as exc:
                if len(chunk) == 1:  # nothing to tell apart: that row is the duplicate
                    out.append(self._duplicate(collection, exc))
                    continue
            if not explicit:
                conn.execute("BEGIN IMMEDIATE")
                explicit = True
            for key, body in chunk:
                try:
                    conn.execute(f"INSERT INTO {table} (_key, doc) VALUES (?, ?)", (key, body))
                    out.append(key)
                except sqlite3.IntegrityError as exc:
                    out.append(self._duplicate(collection, exc))
        if explicit:
            conn.execute("COMMIT")
        return out

    async def upsert(self, collection: str, key: str, doc: Doc) -> None:
        table = self._table(collection)
        params = (check_key(key), jsonutil.dumps(body_of(doc)))
        sql = (
            f"INSERT INTO {table} (_key, doc) VALUES (?, ?) "
            "ON CONFLICT (_key) DO UPDATE SET doc = excluded.doc"
        )
        await self._write(collection, lambda conn: conn.execute(sql, params))

    async def update(self, collection: str, key: str, patch: Doc) -> Doc:
        table = self._table(collection)
        check_key(key)
        changes = body_of(patch)

        def run(conn: sqlite3.Connection) -> Doc:
            # IMMEDIATE takes the write lock up front: the read-merge-write cannot interleave
            # with another writer (another connection or process on the same file).
            conn.execute("BEGIN IMMEDIATE")
            row = conn.execute(f"SELECT doc FROM {table} WHERE _key = ?", (key,)).fetchone()
            if row is None:
                raise NotFound(f"{collection}/{key}")
            merged: Doc = jsonutil.loads(row[0])
            merged.update(changes)
            body = jsonutil.dumps(merged)
            conn.execute(f"UPDATE {table} SET doc = ? WHERE _key = ?", (body, key))
            conn.execute("COMMIT")
            return merged

        merged = await self._write(collection, run)
        return {"_key": key, **merged}

    async def get(self, collection: str, key: str) -> Doc | None:
        table = self._table(collection)
        params = (check_key(key),)
        sql = f"SELECT doc FROM {table} WHERE _key = ?"
        rows = await self._read(collection, lambda conn: conn.execute(sql, params).fetchall())
        return _row_doc(key, rows[0][0]) if rows else None

    async def find(self, collection: str, query: Query | None = None) -> list[Doc]:
        table = self._table(collection)
        q = query or Query()
        where, params = _where_sql(q.where)
        sql = f"SELECT _key, doc FROM {table}{where} ORDER BY {sort_terms(q.sort, _expr)}"
        limit = check_limit(q.limit)
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        rows = await self._read(collection, lambda conn: conn.execute(sql, params).fetchall())
        return [_row_doc(k, body) for k, body in rows]

    async def count(self, collection: str, where: Mapping[str, Any] | None = None) -> int:
        table = self._table(collection)
        clause, params = _where_sql(where)
        sql = f"SELECT count(*) FROM {table}{clause}"
        rows = await self._read(collection, lambda conn: conn.execute(sql, params).fetchall())
        return int(rows[0][0])

    async def delete(self, collection: str, key: str) -> bool:
        table = self._table(collection)
        params = (check_key(key),)
        sql = f"DELETE FROM {table} WHERE _key = ?"
        return await self._write(collection, lambda conn: conn.execute(sql, params).rowcount > 0)

    async def ping(self) -> bool:
        try:
            await self._read(str(self.path), lambda conn: conn.execute("SELECT 1").fetchall())
        except Exception:
            return False
        return True

    async def close(self) -> None:
        """Finish the submitted calls, then close every connection; later calls are refused."""
        self._closed = True
        await asyncio.to_thread(self._shutdown)

    def _shutdown(self) -> None:
        self._writer.shutdown(wait=True)
        self._readers.shutdown(wait=True)
        self._stop_checkpoints.set()
        if self._checkpointer is not None:
            self._checkpointer.join(timeout=5)
            self._checkpointer = None
        with self._conns_lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            conn.close()


@functools.lru_cache(maxsize=len(COLLECTIONS) * MAX_ROWS_PER_STATEMENT)
def _multi_insert_sql(table: str, n: int) -> str:
    return f"INSERT INTO {table} (_key, doc) VALUES {', '.join(['(?, ?)'] * n)}"


def _retrieve(fut: asyncio.Future[Any]) -> None:
    """Marks the outcome of a write nobody waits for any more (a cancelled caller) as seen:
    its error, if any, was the caller's to handle, not the loop's to log."""
    if not fut.cancelled():
        fut.exception()

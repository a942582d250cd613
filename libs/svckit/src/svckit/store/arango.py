"""ArangoDB adapter of the store port (python-arango 8, sync client run off the event loop).

`uri` may list several coordinators separated by commas; python-arango then fails over between
them ("fallback" host resolver). Every call runs in `asyncio.to_thread`, so a slow server never
blocks the event loop; `request_timeout` bounds each HTTP request.

`bootstrap()` is idempotent and safe to run from several replicas at once: it creates the
database when missing (if the user may; otherwise it assumes an operator created it), every
collection of `base.COLLECTIONS`, and one persistent index per `base.INDEXES` entry. Unique
indexes are *sparse*: a document whose indexed field is null or missing is not indexed, which is
exactly SQLite's rule for NULLs in unique indexes, so both adapters accept the same documents.

Errors (the tree of `svckit.errors`): error 1210 (unique constraint violated, including a
duplicate `_key`) → `DuplicateKey` with the server's message naming the index; 1202 (document
not found) on update → `NotFound`; connection failures, timeouts, HTTP 401/403/503 and a
missing database/collection → `StoreUnavailable`; anything else → `StoreError`.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from arango.client import ArangoClient
from arango.cursor import Cursor
from arango.database import StandardDatabase
from arango.errno import (
    DATA_SOURCE_NOT_FOUND,
    DATABASE_NOT_FOUND,
    DOCUMENT_NOT_FOUND,
    DUPLICATE_NAME,
    FORBIDDEN,
    UNIQUE_CONSTRAINT_VIOLATED,
)
from arango.exceptions import ArangoClientError, ArangoError, ArangoServerError
from arango.exceptions import ServerConnectionError as ArangoConnectionError
from arango.http import DefaultHTTPClient

from svckit.errors import DuplicateKey, NotFound, StoreError, StoreUnavailable
from svckit.store._common import (
    body_of,
    check_collection,
    check_field,
    check_key,
    check_limit,
    check_scalar,
    json_default,
    new_key,
    sort_terms,
)
from svckit.store.base import COLLECTIONS, INDEXES, Doc, DocumentStore, IndexSpec, Query

log = logging.getLogger(__name__)

T = TypeVar("T")

_UNAVAILABLE_HTTP = {401, 403, 502, 503, 504}
_UNAVAILABLE_CODES = {DATABASE_NOT_FOUND, DATA_SOURCE_NOT_FOUND}


def translate_error(exc: BaseException, where: str) -> StoreError:
    """Map a python-arango / transport exception onto the store's exception tree."""
    if isinstance(exc, ArangoServerError):
        code, http = exc.error_code, exc.http_code
        detail = exc.error_message or str(exc)
        if code == UNIQUE_CONSTRAINT_VIOLATED:
            return DuplicateKey(where, detail)
        if code == DOCUMENT_NOT_FOUND:
            return NotFound(f"{where}: {detail}")
        if (
            isinstance(exc, ArangoConnectionError)
            or http in _UNAVAILABLE_HTTP
            or code in _UNAVAILABLE_CODES
        ):
            return StoreUnavailable(f"{where}: {exc}")
        return StoreError(f"{where}: {exc}")
    # python-arango raises ConnectionAbortedError once every host failed; requests' errors
    # (timeouts, refused connections) are OSErrors too.
    if isinstance(exc, OSError):
        return StoreUnavailable(f"{where}: {type(exc).__name__}: {exc}")
    if isinstance(exc, ArangoClientError):
        return StoreError(f"{where}: {exc}")
    return StoreError(f"{where}: {type(exc).__name__}: {exc}")


def _attr(field: str) -> str:
    """AQL attribute access for a validated (dotted) field name."""
    if field == "_key":
        return "d._key"
    return "d." + ".".join(f"`{part}`" for part in check_field(field).split("."))


def _filter_aql(where: Mapping[str, Any] | None, bind: dict[str, Any]) -> str:
    clauses: list[str] = []
    for i, (field, raw) in enumerate((where or {}).items()):
        value = check_scalar(field, raw)
        if field == "_key" and not isinstance(value, str):
            raise TypeError("filter on '_key' needs a string")
        # AQL == never coerces types (true != 1, "5" != 5); null matches a missing attribute.
        clauses.append(f"FILTER {_attr(field)} == @v{i}")
        bind[f"v{i}"] = value
    return " ".join(clauses)


def index_definition(spec: IndexSpec) -> dict[str, Any]:
    return {
        "type": "persistent",
        "name": spec.index_name,
        "fields": [check_field(f) for f in spec.fields],
        "unique": spec.unique,
        "sparse": spec.unique,
    }


def _cursor(db: StandardDatabase, aql: str, bind: dict[str, Any]) -> Cursor:
    cursor = db.aql.execute(aql, bind_vars=bind, batch_size=1000)
    if not isinstance(cursor, Cursor):  # only async/batch API wrappers return jobs
        raise StoreError(f"unexpected AQL result {type(cursor).__name__}")
    return cursor


class ArangoStore(DocumentStore):
    """Document store on ArangoDB (single server or cluster coordinators)."""

    name = "arango"

    def __init__(
        self,
        uri: str,
        user: str = "root",
        password: str = "",
        database: str = "chimera",
        *,
        request_timeout: float = 10.0,
        retry_attempts: int = 1,
    ) -> None:
        self.hosts = [h.strip().rstrip("/") for h in uri.split(",") if h.strip()]
        if not self.hosts:
            raise ValueError("ArangoStore needs at least one host URI")
        self.database = database
        self._user = user
        self._password = password
        self._request_timeout = request_timeout
        self._retry_attempts = retry_attempts
        self._client: ArangoClient | None = None
        self._db: StandardDatabase | None = None
        self._closed = False

    def __repr__(self) -> str:
        return f"ArangoStore({','.join(self.hosts)!r}, database={self.database!r})"

    # ---- plumbing -----------------------------------------------------------------------------
    def _get_client(self) -> ArangoClient:
        if self._closed:
            raise StoreUnavailable(f"{self!r} is closed")
        if self._client is None:
            self._client = ArangoClient(
                hosts=self.hosts,
                http_client=DefaultHTTPClient(
                    request_timeout=self._request_timeout,
                    retry_attempts=self._retry_attempts,
                    backoff_factor=0.1,
                ),
                serializer=functools.partial(json.dumps, default=json_default),
            )
        return self._client

    def _get_db(self) -> StandardDatabase:
        if self._db is None:
            self._db = self._get_client().db(
                self.database, username=self._user, password=self._password
            )
        return self._db

    async def _run(self, where: str, fn: Callable[[], T]) -> T:
        def call() -> T:
            try:
                return fn()
            except (ArangoError, OSError) as exc:
                raise translate_error(exc, where) from exc

        return await asyncio.to_thread(call)

    def _col(self, collection: str) -> Any:
        return self._get_db().collection(check_collection(collection))

    # ---- port ---------------------------------------------------------------------------------
    async def bootstrap(self) -> None:
        await self._run(self.database, self._bootstrap_sync)

    def _bootstrap_sync(self) -> None:
        self._ensure_database()
        db = self._get_db()
        for name in COLLECTIONS:
            if not db.has_collection(name):
                try:
                    db.create_collection(name)
                except ArangoServerError as exc:
                    if exc.error_code != DUPLICATE_NAME:  # a concurrent bootstrap won the race
                        raise
        for spec in INDEXES:
            # Server-side idempotent: an identical definition returns the existing index.
            db.collection(spec.collection).add_index(index_definition(spec))

    def _ensure_database(self) -> None:
        sys_db = self._get_client().db("_system", username=self._user, password=self._password)
        try:
            if not sys_db.has_database(self.database):
                sys_db.create_database(self.database)
        except ArangoServerError as exc:
            if exc.error_code == DUPLICATE_NAME:
                return
            if exc.http_code in (401, 403) or exc.error_code == FORBIDDEN:
                # A least-privilege user cannot list/create databases: use the existing one.
                log.info("arango: may not create database %s (%s)", self.database, exc)
                return
            raise

    async def insert(self, collection: str, doc: Doc) -> str:
        col = self._col(collection)
        raw_key = doc.get("_key")
        key = new_key() if raw_key is None else check_key(raw_key)
        body = {**body_of(doc), "_key": key}
        await self._run(collection, lambda: col.insert(body, silent=True))
        return key

    async def insert_many(self, collection: str, docs: Sequence[Doc]) -> list[str | StoreError]:
        col = self._col(collection)
        keys: list[str] = []
        bodies: list[Doc] = []
        for doc in docs:
            raw_key = doc.get("_key")
            key = new_key() if raw_key is None else check_key(raw_key)
            keys.append(key)
            bodies.append({**body_of(doc), "_key": key})
        if not bodies:
            return []
        # One HTTP request; python-arango answers per document: metadata or the error object.
        results = await self._run(collection, lambda: col.insert_many(bodies))
        out: list[str | StoreError] = []
        for key, res in zip(keys, results, strict=True):
            if isinstance(res, BaseException):
                err = translate_error(res, collection)
                if not isinstance(err, DuplicateKey | NotFound):
                    raise err  # the store itself failed: the caller retries the whole batch
                out.append(err)
            else:
                out.append(key)
        return out

    async def upsert(self, collection: str, key: str, doc: Doc) -> None:
        col = self._col(collection)
        body = {**body_of(doc), "_key": check_key(key)}
        await self._run(collection, lambda: col.insert(body, overwrite_mode="replace", silent=True))

    async def update(self, collection: str, key: str, patch: Doc) -> Doc:
        col = self._col(collection)
        body = {**body_of(patch), "_key": check_key(key)}
        # merge=False: top-level fields replace whole values (nested objects are not merged),
        # keep_none=True: a None in the patch is stored as null, as in SQLite.
        result = await self._run(
            collection,
            lambda: col.update(body, check_rev=False, merge=False, keep_none=True, return_new=True),
        )
        new: Doc = result["new"]
        return {"_key": key, **body_of(new)}

    async def get(self, collection: str, key: str) -> Doc | None:
        col = self._col(collection)
        check_key(key)
        doc: Doc | None = await self._run(collection, lambda: col.get(key))
        return None if doc is None else {"_key": key, **body_of(doc)}

    async def find(self, collection: str, query: Query | None = None) -> list[Doc]:
        check_collection(collection)
        q = query or Query()
        bind: dict[str, Any] = {"@col": collection}
        aql = f"FOR d IN @@col {_filter_aql(q.where, bind)} SORT {sort_terms(q.sort, _attr)}"
        limit = check_limit(q.limit)
        if limit is not None:
            aql += " LIMIT @limit"
            bind["limit"] = limit
        aql += ' RETURN UNSET(d, "_id", "_rev")'
        db = self._get_db()

        def run() -> list[Doc]:
            return [{"_key": d["_key"], **body_of(d)} for d in _cursor(db, aql, bind)]

        return await self._run(collection, run)

    async def count(self, collection: str, where: Mapping[str, Any] | None = None) -> int:
        check_collection(collection)
        bind: dict[str, Any] = {"@col": collection}
        aql = f"FOR d IN @@col {_filter_aql(where, bind)} COLLECT WITH COUNT INTO n RETURN n"
        db = self._get_db()

        def run() -> int:
            rows = list(_cursor(db, aql, bind))
            return int(rows[0]) if rows else 0

        return await self._run(collection, run)

    async def delete(self, collection: str, key: str) -> bool:
        col = self._col(collection)
        check_key(key)
        removed = await self._run(collection, lambda: col.delete(key, ignore_missing=True))
        return bool(removed)

    async def ping(self) -> bool:
        try:
            await self._run(self.database, lambda: self._get_db().version())
        except Exception:
            return False
        return True

    async def close(self) -> None:
        self._closed = True
        client, self._client, self._db = self._client, None, None
        if client is not None:
            await asyncio.to_thread(client.close)

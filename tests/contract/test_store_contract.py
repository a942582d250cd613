"""Contract of the store port (svckit.store.base.DocumentStore), held against every adapter.

SQLite always runs. ArangoDB runs when `ARANGO_URL` is set (`ARANGO_USER`/`ARANGO_PASS`,
default root/"") or when a Docker daemon answers (testcontainers starts `arangodb:3.12`);
otherwise its cases skip with the reason (`pytest -rs` shows it). Each Arango session uses a
throw-away database that is dropped at the end.
"""

from __future__ import annotations

import asyncio
import gc
import importlib
import json
import os
import socket
import sqlite3
import threading
import uuid
import warnings
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from arango.client import ArangoClient
from arango.http import DefaultHTTPClient
from arango.request import Request
from arango.response import Response

from svckit.errors import DuplicateKey, NotFound, StoreError, StoreUnavailable
from svckit.store._common import content_rev
from svckit.store.arango import ArangoStore, translate_error
from svckit.store.base import COLLECTIONS, DocumentStore, Query
from svckit.store.factory import make_store
from svckit.store.seed import (
    CONFIG_ACTIVE_KEY,
    FixtureError,
    instrument_from_doc,
    load_fixtures,
    seed_store,
)
from svckit.store.sqlite import SqliteStore
from tradekit.instrument import Instrument

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"

StoreFactory = Callable[[], DocumentStore]


# ---- backends ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class ArangoTarget:
    url: str
    user: str
    password: str
    database: str

    def client(self) -> ArangoClient:
        # No urllib3 retries/backoff: an unreachable server must fail in seconds, not minutes.
        return ArangoClient(
            hosts=self.url, http_client=DefaultHTTPClient(request_timeout=10, retry_attempts=0)
        )

    def check(self) -> None:
        client = self.client()
        try:
            client.db("_system", username=self.user, password=self.password).version()
        except Exception as exc:
            pytest.fail(f"ArangoDB at {self.url} (from ARANGO_URL) is not usable: {exc}")
        finally:
            client.close()

    def truncate(self) -> None:
        client = self.client()
        try:
            sys_db = client.db("_system", username=self.user, password=self.password)
            if not sys_db.has_database(self.database):
                return
            db = client.db(self.database, username=self.user, password=self.password)
            for name in COLLECTIONS:
                if db.has_collection(name):
                    db.collection(name).truncate()
        finally:
            client.close()

    def drop(self) -> None:
        client = self.client()
        try:
            sys_db = client.db("_system", username=self.user, password=self.password)
            sys_db.delete_database(self.database, ignore_missing=True)
        finally:
            client.close()


def _docker_unavailable_reason() -> str | None:
    """None when a Docker daemon answers a ping within ~2 s, else why not."""
    host = os.environ.get("DOCKER_HOST")
    if not host and not Path("/var/run/docker.sock").exists():
        return "DOCKER_HOST unset and /var/run/docker.sock missing"
    # docker-py leaks its socket when the daemon does not answer; with warnings as errors that
    # ResourceWarning would fail an unrelated test later, so collect it here, silenced.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            docker = importlib.import_module("docker")  # untyped (no stubs installed)
            client = docker.from_env(timeout=2)
            try:
                client.ping()
            finally:
                client.close()
        except Exception as exc:
            return f"{host or 'unix:///var/run/docker.sock'}: {type(exc).__name__}: {exc}"[:240]
        finally:
            gc.collect()
    return None


@pytest.fixture(scope="session")
def arango_target() -> Iterator[ArangoTarget]:
    database = f"chimera_test_{uuid.uuid4().hex[:10]}"
    url = os.environ.get("ARANGO_URL")
    if url:
        target = ArangoTarget(
            url, os.environ.get("ARANGO_USER", "root"), os.environ.get("ARANGO_PASS", ""), database
        )
        target.check()
        yield target
        target.drop()
        return
    reason = _docker_unavailable_reason()
    if reason is not None:
        pytest.skip(f"ArangoDB not reachable: ARANGO_URL unset and no Docker daemon ({reason})")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # testcontainers' own deprecation noise
        from testcontainers.community.arangodb import ArangoDbContainer

        container = ArangoDbContainer("arangodb:3.12", arango_root_password="chimera-test")
        container.start()
    try:
        yield ArangoTarget(container.get_connection_url(), "root", "chimera-test", database)
    finally:
        container.stop()


@pytest.fixture(params=["sqlite", pytest.param("arango", marks=pytest.mark.arango)])
def make(request: pytest.FixtureRequest, tmp_path: Path) -> StoreFactory:
    """A factory of store objects on one fresh backend (several objects share its data)."""
    if request.param == "sqlite":
        path = tmp_path / "data" / "store.sqlite3"
        return lambda: SqliteStore(path)
    target: ArangoTarget = request.getfixturevalue("arango_target")
    target.truncate()
    return lambda: ArangoStore(target.url, target.user, target.password, target.database)


@pytest.fixture
async def store(make: StoreFactory) -> AsyncIterator[DocumentStore]:
    s = make()
    await s.bootstrap()
    yield s
    await s.close()


def order(coid: str, **extra: Any) -> dict[str, Any]:
    return {
        "client_order_id": coid,
        "symbol": "BTCUSDT",
        "side": "BUY",
        "status": "NEW",
        "qty": "0.002",
        **extra,
    }


def fill(venue: str, order_id: str, trade_id: str, **extra: Any) -> dict[str, Any]:
    return {"venue": venue, "order_id": order_id, "trade_id": trade_id, "qty": "0.001", **extra}


# ---- bootstrap --------------------------------------------------------------------------------
async def test_bootstrap_with_existing_schema_is_idempotent(make: StoreFactory) -> None:
    first = make()
    await first.bootstrap()
    await first.insert("orders", order("s3-btc-1"))
    await first.bootstrap()
    await first.close()
    second = make()  # another replica starting against the same backend
    await second.bootstrap()
    assert await second.count("orders") == 1
    with pytest.raises(DuplicateKey):
        await second.insert("orders", order("s3-btc-1"))
    await second.close()


# ---- insert / get -----------------------------------------------------------------------------
async def test_insert_with_mixed_value_types_roundtrips_exactly(store: DocumentStore) -> None:
    doc = {
        "_key": "sig-1",
        "price": "65000.10",
        "qty": "0.00100000",
        "tiny": "1E-8",
        "features": {"spread_bps": 1.25, "depth": {"top1": 250.5, "levels": [1, 2, 3]}},
        "dry_run": False,
        "reduce_only": True,
        "sl": None,
        "n": 7,
        "ratio": 0.1,
        "note": "漲 ✓",
        "tags": ["a", "b"],
    }
    key = await store.insert("signals", doc)
    got = await store.get("signals", key)
    assert got == doc
    assert got is not None
    assert Decimal(got["price"]) == Decimal("65000.10")
    assert got["qty"] == "0.00100000"  # the store never normalises decimal strings


async def test_insert_with_decimal_values_stores_strings(store: DocumentStore) -> None:
    key = await store.insert("signals", {"price": Decimal("65000.10")})
    assert await store.get("signals", key) == {"_key": key, "price": "65000.10"}


async def test_insert_without_key_generates_unique_key(store: DocumentStore) -> None:
    k1 = await store.insert("strategy_events", {"kind": "X", "ts": 1})
    k2 = await store.insert("strategy_events", {"kind": "X", "ts": 1})
    assert k1 != k2
    assert len(k1) == 32
    int(k1, 16)
    assert await store.get("strategy_events", k1) == {"_key": k1, "kind": "X", "ts": 1}


async def test_insert_with_explicit_key_keeps_key(store: DocumentStore) -> None:
    key = await store.insert("orders", {"_key": "s3-BTCUSDT-1700000000-ab12", **order("c-1")})
    assert key == "s3-BTCUSDT-1700000000-ab12"
    got = await store.get("orders", key)
    assert got is not None
    assert got["_key"] == key
    assert set(got) == {"_key", *order("c-1")}  # no _id/_rev leak from either backend


async def test_insert_with_existing_key_raises_duplicate_key(store: DocumentStore) -> None:
    await store.insert("signals", {"_key": "k1", "signal_id": "a"})
    with pytest.raises(DuplicateKey):
        await store.insert("signals", {"_key": "k1", "signal_id": "b"})


async def test_get_with_missing_key_returns_none(store: DocumentStore) -> None:
    assert await store.get("orders", "nope") is None


async def test_insert_with_duplicate_client_order_id_raises_duplicate_key(
    store: DocumentStore,
) -> None:
    await store.insert("orders", order("s3-btc-dup"))
    with pytest.raises(DuplicateKey) as info:
        await store.insert("orders", order("s3-btc-dup", side="SELL"))
    assert info.value.collection == "orders"
    assert "ix_orders_client_order_id" in str(info.value)
    assert await store.count("orders") == 1


async def test_insert_with_duplicate_fill_triple_raises_duplicate_key(
    store: DocumentStore,
) -> None:
    await store.insert("fills", fill("sim", "o-1", "t-1"))
    with pytest.raises(DuplicateKey) as info:
        await store.insert("fills", fill("sim", "o-1", "t-1", qty="0.002"))
    assert "ix_fills_venue_order_id_trade_id" in str(info.value)
    assert await store.count("fills") == 1


async def test_insert_with_distinct_fill_triples_succeeds(store: DocumentStore) -> None:
    await store.insert("fills", fill("sim", "o-1", "t-1"))
    await store.insert("fills", fill("sim", "o-1", "t-2"))  # differing trade_id
    await store.insert("fills", fill("binance", "o-1", "t-1"))  # differing venue
    await store.insert("fills", fill("sim", "o-2", "t-1"))  # differing order_id
    assert await store.count("fills") == 4


async def test_insert_with_missing_unique_field_does_not_collide(store: DocumentStore) -> None:
    # NULL/missing values are outside unique indexes (SQLite NULL rule = Arango sparse index).
    await store.insert("orders", {"symbol": "BTCUSDT"})
    await store.insert("orders", {"symbol": "BTCUSDT"})
    assert await store.count("orders") == 2


# ---- insert_many (group commit) ---------------------------------------------------------------
async def test_insert_many_with_explicit_keys_returns_keys_in_order_and_stores_docs(
    store: DocumentStore,
) -> None:
    docs = [{"_key": f"sig-{i}", "signal_id": f"s-{i}", "n": i, "px": "65000.10"} for i in range(5)]
    assert await store.insert_many("signals", docs) == [f"sig-{i}" for i in range(5)]
    for doc in docs:
        assert await store.get("signals", doc["_key"]) == doc
    assert await store.count("signals") == 5


async def test_insert_many_without_keys_generates_distinct_keys(store: DocumentStore) -> None:
    docs = [{"kind": "X", "ts": i} for i in range(3)]
    keys = await store.insert_many("strategy_events", docs)
    assert len(keys) == 3
    assert all(isinstance(k, str) and len(k) == 32 for k in keys)
    assert len(set(keys)) == 3
    for i, key in enumerate(keys):
        assert isinstance(key, str)
        int(key, 16)
        assert await store.get("strategy_events", key) == {"_key": key, "kind": "X", "ts": i}
    assert docs == [{"kind": "X", "ts": i} for i in range(3)]  # the caller's docs are untouched


async def test_insert_many_with_empty_list_returns_empty_list(store: DocumentStore) -> None:
    assert await store.insert_many("signals", []) == []
    assert await store.count("signals") == 0


async def test_insert_many_with_existing_key_reports_duplicate_in_its_slot_only(
    store: DocumentStore,
) -> None:
    await store.insert("signals", {"_key": "k1", "signal_id": "old"})
    out = await store.insert_many(
        "signals",
        [
            {"_key": "k0", "signal_id": "a"},
            {"_key": "k1", "signal_id": "b"},
            {"_key": "k2", "signal_id": "c"},
        ],
    )
    assert out[0] == "k0" and out[2] == "k2"
    assert isinstance(out[1], DuplicateKey)
    assert out[1].collection == "signals"
    assert await store.get("signals", "k1") == {"_key": "k1", "signal_id": "old"}  # unchanged
    assert await store.get("signals", "k0") == {"_key": "k0", "signal_id": "a"}
    assert await store.get("signals", "k2") == {"_key": "k2", "signal_id": "c"}
    assert await store.count("signals") == 3


async def test_insert_many_with_unique_index_collision_reports_duplicate_in_its_slot_only(
    store: DocumentStore,
) -> None:
    await store.insert("orders", order("c-taken"))
    out = await store.insert_many(
        "orders", [order("c-1"), order("c-taken", side="SELL"), order("c-2")]
    )
    assert isinstance(out[0], str) and isinstance(out[2], str)
    assert isinstance(out[1], DuplicateKey)
    assert "ix_orders_client_order_id" in str(out[1])
    assert await store.count("orders") == 3
    taken = await store.find("orders", Query(where={"client_order_id": "c-taken"}))
    assert [d["side"] for d in taken] == ["BUY"]  # the stored one, not the colliding one
    assert (await store.get("orders", out[0]) or {}).get("client_order_id") == "c-1"
    assert (await store.get("orders", out[2]) or {}).get("client_order_id") == "c-2"


async def test_insert_many_with_same_key_twice_in_batch_stores_first_only(
    store: DocumentStore,
) -> None:
    out = await store.insert_many(
        "signals",
        [
            {"_key": "dup", "signal_id": "first"},
            {"_key": "other", "signal_id": "other"},
            {"_key": "dup", "signal_id": "second"},
        ],
    )
    assert out[:2] == ["dup", "other"]
    assert isinstance(out[2], DuplicateKey)
    assert await store.get("signals", "dup") == {"_key": "dup", "signal_id": "first"}
    assert await store.count("signals") == 2


async def test_insert_many_with_same_unique_field_twice_in_batch_stores_first_only(
    store: DocumentStore,
) -> None:
    out = await store.insert_many("orders", [order("c-1"), order("c-1", side="SELL")])
    assert isinstance(out[0], str)
    assert isinstance(out[1], DuplicateKey)
    assert [d["side"] for d in await store.find("orders")] == ["BUY"]


async def test_insert_many_with_several_chunks_and_one_duplicate_stores_all_others(
    store: DocumentStore,
) -> None:
    # 150 documents: more than two SQLite statements' worth (64 rows each); the collision sits
    # in the middle chunk.
    await store.insert("signals", {"_key": "k-0100", "signal_id": "existing"})
    docs = [{"_key": f"k-{i:04d}", "signal_id": f"s-{i}", "i": i} for i in range(150)]
    out = await store.insert_many("signals", docs)
    assert len(out) == 150
    assert isinstance(out[100], DuplicateKey)
    assert [k for i, k in enumerate(out) if i != 100] == [
        f"k-{i:04d}" for i in range(150) if i != 100
    ]
    assert await store.count("signals") == 150  # 149 new + the existing one
    assert await store.get("signals", "k-0100") == {"_key": "k-0100", "signal_id": "existing"}
    assert await store.get("signals", "k-0149") == {
        "_key": "k-0149",
        "signal_id": "s-149",
        "i": 149,
    }
    assert await store.get("signals", "k-0000") == {"_key": "k-0000", "signal_id": "s-0", "i": 0}


async def test_insert_many_with_several_chunks_and_unique_index_duplicate_in_first_chunk(
    store: DocumentStore,
) -> None:
    # the collision in the first chunk, later chunks clean: later chunks still go in one piece
    docs = [{"_key": f"k-{i:04d}", "signal_id": f"s-{i}"} for i in range(130)]
    docs[10]["signal_id"] = "s-3"  # collides with docs[3] on ix_signals_signal_id
    out = await store.insert_many("signals", docs)
    assert isinstance(out[10], DuplicateKey)
    assert "ix_signals_signal_id" in str(out[10])
    assert sum(isinstance(k, str) for k in out) == 129
    assert await store.count("signals") == 129
    assert await store.get("signals", "k-0010") is None


async def test_insert_many_with_unknown_collection_raises(store: DocumentStore) -> None:
    with pytest.raises(ValueError, match="unknown collection"):
        await store.insert_many("nope", [{"a": 1}])


# ---- upsert / update --------------------------------------------------------------------------
async def test_upsert_with_new_key_creates_document(store: DocumentStore) -> None:
    await store.upsert("route_tables", "default", {"rev": "r1", "bands": []})
    assert await store.get("route_tables", "default") == {
        "_key": "default",
        "rev": "r1",
        "bands": [],
    }


async def test_upsert_with_existing_key_replaces_whole_document(store: DocumentStore) -> None:
    await store.upsert("config_bundles", "b1", {"rev": "r1", "params": {"a": 1, "b": 2}})
    await store.upsert("config_bundles", "b1", {"rev": "r2", "params": {"a": 3}})
    assert await store.get("config_bundles", "b1") == {
        "_key": "b1",
        "rev": "r2",
        "params": {"a": 3},
    }
    assert await store.count("config_bundles") == 1


async def test_upsert_with_conflicting_unique_field_raises_duplicate_key(
    store: DocumentStore,
) -> None:
    await store.upsert("orders", "a", order("c-1"))
    with pytest.raises(DuplicateKey):
        await store.upsert("orders", "b", order("c-1"))


async def test_update_with_patch_merges_top_level_fields(store: DocumentStore) -> None:
    key = await store.insert(
        "orders", order("c-1", meta={"x": 1, "y": 2}, venue_order_id=None, fills=0)
    )
    new = await store.update(
        "orders", key, {"status": "FILLED", "meta": {"z": 3}, "fills": 2, "sl": None}
    )
    expected = {
        "_key": key,
        **order("c-1"),
        "status": "FILLED",
        "meta": {"z": 3},  # top-level merge: nested objects are replaced, not merged
        "venue_order_id": None,
        "fills": 2,
        "sl": None,
    }
    assert new == expected
    assert await store.get("orders", key) == expected


async def test_update_with_missing_key_raises_not_found(store: DocumentStore) -> None:
    with pytest.raises(NotFound):
        await store.update("orders", "missing", {"status": "FILLED"})


async def test_update_with_conflicting_unique_field_raises_duplicate_key(
    store: DocumentStore,
) -> None:
    await store.insert("orders", order("c-1"))
    key = await store.insert("orders", order("c-2"))
    with pytest.raises(DuplicateKey):
        await store.update("orders", key, {"client_order_id": "c-1"})
    got = await store.get("orders", key)
    assert got is not None
    assert got["client_order_id"] == "c-2"


# ---- find / count / delete --------------------------------------------------------------------
@pytest.fixture
async def typed_docs(store: DocumentStore) -> DocumentStore:
    docs = [
        {"_key": "s", "v": "1", "flag": True, "nested": {"a": {"b": "x"}}, "opt": None},
        {"_key": "i", "v": 1, "flag": 1, "nested": {"a": {"b": "y"}}},
        {"_key": "b", "v": True, "flag": False, "nested": {"a": {"b": "x"}}, "opt": "set"},
        {"_key": "f", "v": 1.5, "flag": 0},
        {"_key": "z", "v": 0, "flag": None},
    ]
    for d in docs:
        await store.insert("strategy_events", d)
    return store


async def _keys(store: DocumentStore, where: dict[str, Any]) -> set[str]:
    return {d["_key"] for d in await store.find("strategy_events", Query(where=where))}


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ({"v": "1"}, {"s"}),  # string never matches the number 1 or true
        ({"v": 1}, {"i"}),  # number never matches "1" or true
        ({"v": True}, {"b"}),  # true never matches 1
        ({"v": 0}, {"z"}),
        ({"v": 1.5}, {"f"}),
        ({"flag": True}, {"s"}),
        ({"flag": False}, {"b"}),
        ({"flag": 0}, {"f"}),
        ({"flag": None}, {"z"}),
        ({"opt": None}, {"s", "i", "f", "z"}),  # null or missing, like AQL
        ({"nested.a.b": "x"}, {"s", "b"}),
        ({"nested.a.b": "x", "flag": True}, {"s"}),
        ({"_key": "i"}, {"i"}),
        ({"v": "nope"}, set()),
    ],
)
async def test_find_with_equality_filter_matches_same_type_only(
    typed_docs: DocumentStore, where: dict[str, Any], expected: set[str]
) -> None:
    assert await _keys(typed_docs, where) == expected
    assert await typed_docs.count("strategy_events", where) == len(expected)


async def test_find_with_indexed_fields_returns_matching_orders(store: DocumentStore) -> None:
    await store.insert("orders", order("c-1", status="NEW"))
    await store.insert("orders", order("c-2", status="FILLED"))
    await store.insert("orders", order("c-3", status="NEW", symbol="ETHUSDT"))
    rows = await store.find("orders", Query(where={"symbol": "BTCUSDT", "status": "NEW"}))
    assert [r["client_order_id"] for r in rows] == ["c-1"]
    [one] = await store.find("orders", Query(where={"client_order_id": "c-3"}, limit=1))
    assert one["symbol"] == "ETHUSDT"
    assert await store.find("orders", Query(where={"client_order_id": "c-9"})) == []


async def test_find_with_sort_and_limit_returns_ordered_page(store: DocumentStore) -> None:
    for i, (sym, t0) in enumerate([("BTC", 3), ("ETH", 1), ("BTC", 2), ("BTC", 5), ("ETH", 4)]):
        await store.insert("signals", {"_key": f"k{i}", "signal_id": f"s{i}", "sym": sym, "t0": t0})
    asc = await store.find("signals", Query(sort=[("t0", "asc")]))
    assert [d["t0"] for d in asc] == [1, 2, 3, 4, 5]
    top2 = await store.find("signals", Query(where={"sym": "BTC"}, sort=[("t0", "desc")], limit=2))
    assert [d["t0"] for d in top2] == [5, 3]
    multi = await store.find("signals", Query(sort=[("sym", "desc"), ("t0", "asc")]))
    assert [(d["sym"], d["t0"]) for d in multi] == [
        ("ETH", 1),
        ("ETH", 4),
        ("BTC", 2),
        ("BTC", 3),
        ("BTC", 5),
    ]
    assert await store.find("signals", Query(limit=0)) == []
    assert len(await store.find("signals", Query(limit=3))) == 3


async def test_find_with_equal_sort_values_breaks_ties_by_key(store: DocumentStore) -> None:
    for key in ["c", "a", "b"]:
        await store.insert("strategy_events", {"_key": key, "kind": "K", "ts": 1})
    rows = await store.find("strategy_events", Query(sort=[("ts", "desc")]))
    assert [r["_key"] for r in rows] == ["a", "b", "c"]


async def test_find_without_query_returns_all_documents(store: DocumentStore) -> None:
    assert await store.find("positions_snapshots") == []
    for i in range(3):
        await store.insert("positions_snapshots", {"i": i})
    assert sorted(d["i"] for d in await store.find("positions_snapshots")) == [0, 1, 2]
    assert await store.count("positions_snapshots") == 3


async def test_count_with_filter_counts_matching_documents(store: DocumentStore) -> None:
    for i in range(5):
        await store.insert("orders", order(f"c-{i}", status="NEW" if i % 2 else "FILLED"))
    assert await store.count("orders") == 5
    assert await store.count("orders", {"status": "NEW"}) == 2
    assert await store.count("orders", {"status": "CANCELED"}) == 0


async def test_delete_with_existing_and_missing_key_reports_removal(
    store: DocumentStore,
) -> None:
    key = await store.insert("orders", order("c-1"))
    assert await store.delete("orders", key) is True
    assert await store.get("orders", key) is None
    assert await store.delete("orders", key) is False
    await store.insert("orders", order("c-1"))  # the unique value is free again


@pytest.mark.parametrize(
    "where",
    [
        {"a') OR 1=1 --": 1},
        {"a` == 1 || true //": 1},
        {"a..b": 1},
        {"1abc": 1},
    ],
)
async def test_find_with_invalid_field_name_raises_value_error(
    store: DocumentStore, where: dict[str, Any]
) -> None:
    with pytest.raises(ValueError):
        await store.find("orders", Query(where=where))


async def test_find_with_injection_like_value_matches_literally(store: DocumentStore) -> None:
    evil = "x' OR '1'='1"
    await store.insert("orders", order("c-1"))
    assert await store.find("orders", Query(where={"client_order_id": evil})) == []
    await store.insert("orders", order(evil))
    rows = await store.find("orders", Query(where={"client_order_id": evil}))
    assert [d["client_order_id"] for d in rows] == [evil]


async def test_find_with_non_scalar_value_raises_type_error(store: DocumentStore) -> None:
    with pytest.raises(TypeError):
        await store.find("orders", Query(where={"meta": {"a": 1}}))


async def test_insert_with_unknown_collection_raises_value_error(store: DocumentStore) -> None:
    with pytest.raises(ValueError):
        await store.insert("orders; DROP TABLE orders", {"a": 1})


async def test_insert_with_invalid_key_raises_value_error(store: DocumentStore) -> None:
    with pytest.raises(ValueError):
        await store.insert("orders", {"_key": "has space", **order("c-1")})


async def test_ping_with_open_store_returns_true_and_false_after_close(
    make: StoreFactory,
) -> None:
    s = make()
    await s.bootstrap()
    assert await s.ping() is True
    await s.close()
    assert await s.ping() is False
    with pytest.raises(StoreUnavailable):
        await s.get("orders", "x")


# ---- seeding ----------------------------------------------------------------------------------
async def test_seed_with_repeated_runs_keeps_counts_stable(store: DocumentStore) -> None:
    first = await seed_store(store, FIXTURES)
    counts = {c: await store.count(c) for c in COLLECTIONS}
    second = await seed_store(store, FIXTURES)
    assert {c: await store.count(c) for c in COLLECTIONS} == counts
    assert first.config_active_created is True
    assert second.config_active_created is False
    assert (first.bundle_rev, first.route_table_rev) == (second.bundle_rev, second.route_table_rev)
    assert counts["instrument_registry"] == 3
    assert counts["factor_registry"] == len(first.factors) >= 14
    assert counts["strategy_rules"] == len(first.rules)
    assert counts["route_tables"] == counts["config_active"] == 1
    # the bundle document and its immutable revisioned copy (bundle-{rev})
    assert counts["config_bundles"] == 2
    assert counts["orders"] == counts["fills"] == counts["signals"] == 0
    assert second.warnings == ()


async def test_seed_with_operator_active_config_keeps_it(store: DocumentStore) -> None:
    await store.bootstrap()
    operator = {"bundle_id": "ops-2024-07", "rev": "abc123abc123", "by": "operator"}
    await store.upsert("config_active", CONFIG_ACTIVE_KEY, operator)
    report = await seed_store(store, FIXTURES)
    assert report.config_active_created is False
    assert (report.active_bundle_id, report.active_rev) == ("ops-2024-07", "abc123abc123")
    assert await store.get("config_active", CONFIG_ACTIVE_KEY) == {
        "_key": CONFIG_ACTIVE_KEY,
        **operator,
    }


async def test_seed_with_stale_active_rev_warns_without_clobbering(store: DocumentStore) -> None:
    await store.bootstrap()
    stale = {"bundle_id": "default", "rev": "000000000000"}
    await store.upsert("config_active", CONFIG_ACTIVE_KEY, stale)
    report = await seed_store(store, FIXTURES)
    assert report.active_rev == "000000000000"
    assert len(report.warnings) == 1
    assert await store.get("config_active", CONFIG_ACTIVE_KEY) == {"_key": "s3-strategy", **stale}


async def test_seed_with_fixtures_stores_spec_btcusdt(store: DocumentStore) -> None:
    await seed_store(store, FIXTURES)
    doc = await store.get("instrument_registry", "BTCUSDT")
    assert doc is not None
    assert await store.find("instrument_registry", Query(where={"symbol": "BTCUSDT"})) == [doc]
    # spec 004 §G, exactly
    spec = {
        "tickSize": "1",
        "stepSize": "0.001",
        "minNotional": "5",
        "spread_bp_limit": "3",
        "depth_top1_usdt_min": "200",
    }
    for name, value in spec.items():
        assert Decimal(doc[name]) == Decimal(value), name
        assert isinstance(doc[name], str), name  # Decimals travel as strings
    inst = instrument_from_doc(doc)
    assert isinstance(inst, Instrument)
    assert inst.symbol == "BTCUSDT"
    assert inst.base_asset == "BTC"
    assert inst.stepSize == Decimal("0.001")
    assert inst.tickSize == Decimal("1")
    assert (inst.maker_fee, inst.taker_fee) == (Decimal("0.0002"), Decimal("0.0004"))
    for sym in ("ETHUSDT", "QRLUSDT"):
        other = await store.get("instrument_registry", sym)
        assert other is not None
        instrument_from_doc(other)


async def test_seed_with_fixtures_stores_spec_rule_and_route_table(store: DocumentStore) -> None:
    report = await seed_store(store, FIXTURES)
    [rule] = await store.find("strategy_rules", Query(where={"rule_id": "R-023"}))
    assert {k: v for k, v in rule.items() if k != "_key"} == {
        "rule_id": "R-023",
        "priority": 50,
        "applies": {"symbols": ["BTCUSDT"], "services": ["s3-strategy"]},
        "when": {
            "allOf": [
                {"f": "rv_pctile_30d", "op": "<", "v": 0.25},
                {"f": "rho_usdttwd_14", "op": "<", "v": -0.3},
            ]
        },
        "action": {"type": "size_mult", "value": 1.2},
        "status": "ENABLED",
    }
    assert await store.count("strategy_rules", {"status": "DISABLED"}) >= 1
    table = await store.get("route_tables", "default")
    assert table is not None
    bands = json.loads((FIXTURES / "route_table.json").read_text())
    assert table["bands"] == bands
    assert table["rev"] == report.route_table_rev == content_rev(bands)
    assert len(table["rev"]) == 12
    assert bands[:2] == [
        {"notional_usdt_max": 200, "maker_wait_ms": 1500, "twap": {"slices": 1, "gap_ms": 0}},
        {"notional_usdt_max": 500, "maker_wait_ms": 2000, "twap": {"slices": 2, "gap_ms": 600}},
    ]
    assert bands[2]["notional_usdt_max"] is None
    bundle = await store.get("config_bundles", report.bundle_id)
    active = await store.get("config_active", CONFIG_ACTIVE_KEY)
    assert bundle is not None
    assert active is not None
    assert bundle["rev"] == active["rev"] == report.bundle_rev
    assert active["bundle_id"] == bundle["bundle_id"] == "default"
    assert set(bundle["rules"]) == set(report.rules)
    assert bundle["params"]["size_mult_clamp"] == [0.5, 1.5]


# ---- SQLite-specific: concurrency and unavailability ------------------------------------------
async def test_insert_with_concurrent_same_client_order_id_admits_exactly_one(
    tmp_path: Path,
) -> None:
    path = tmp_path / "store.sqlite3"
    store = SqliteStore(path)
    await store.bootstrap()
    results = await asyncio.gather(
        store.insert("orders", order("s3-race")),
        store.insert("orders", order("s3-race")),
        return_exceptions=True,
    )
    assert sum(isinstance(r, str) for r in results) == 1
    assert sum(isinstance(r, DuplicateKey) for r in results) == 1

    # Two connections (two replicas on one file) in two threads, released together.
    other = SqliteStore(path)
    barrier = threading.Barrier(2)
    outcomes: list[object] = []

    def racer(s: SqliteStore) -> None:
        barrier.wait()
        try:
            outcomes.append(asyncio.run(s.insert("orders", order("s3-race-2"))))
        except StoreError as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=racer, args=(s,)) for s in (store, other)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(isinstance(o, str) for o in outcomes) == 1
    assert sum(isinstance(o, DuplicateKey) for o in outcomes) == 1
    assert await store.count("orders", {"client_order_id": "s3-race-2"}) == 1
    await store.close()
    await other.close()


async def test_insert_with_write_lock_held_beyond_timeout_raises_store_unavailable(
    tmp_path: Path,
) -> None:
    path = tmp_path / "store.sqlite3"
    store = SqliteStore(path, busy_timeout_ms=50)
    await store.bootstrap()
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(StoreUnavailable):
            await store.insert("orders", order("c-1"))
    finally:
        blocker.rollback()
        blocker.close()
    await store.insert("orders", order("c-1"))  # usable again once the lock is gone
    await store.close()


async def test_bootstrap_with_unopenable_path_raises_store_unavailable(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    store = SqliteStore(blocker / "store.sqlite3")
    with pytest.raises(StoreUnavailable):
        await store.bootstrap()
    assert await store.ping() is False


async def test_get_with_unbootstrapped_store_raises_store_unavailable(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "store.sqlite3")
    with pytest.raises(StoreUnavailable):
        await store.get("orders", "x")
    await store.close()


async def test_bootstrap_with_sqlite_enables_wal_and_indexes(tmp_path: Path) -> None:
    path = tmp_path / "d" / "store.sqlite3"
    store = SqliteStore(path)
    await store.bootstrap()
    await store.close()
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        plan = conn.execute(
            "EXPLAIN QUERY PLAN SELECT doc FROM orders "
            "WHERE json_extract(doc, '$.client_order_id') = ?",
            ("x",),
        ).fetchall()
        assert "ix_orders_client_order_id" in str(plan)
    finally:
        conn.close()


# ---- Arango adapter without a server ----------------------------------------------------------
def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


async def test_ping_with_unreachable_arango_returns_false() -> None:
    store = ArangoStore(f"http://127.0.0.1:{_closed_port()}", request_timeout=2, retry_attempts=0)
    assert await store.ping() is False
    await store.close()


async def test_bootstrap_with_unreachable_arango_raises_store_unavailable() -> None:
    uri = f"http://127.0.0.1:{_closed_port()},http://127.0.0.1:{_closed_port()}"
    store = ArangoStore(uri, request_timeout=2, retry_attempts=0)
    assert len(store.hosts) == 2
    with pytest.raises(StoreUnavailable):
        await store.bootstrap()
    with pytest.raises(StoreUnavailable):
        await store.get("orders", "x")
    await store.close()


def _server_error(status: int, code: int, message: str) -> Exception:
    from arango.exceptions import DocumentInsertError

    resp = Response("post", "http://x/_api/document/orders", {}, status, "status", "{}")
    resp.error_code = code
    resp.error_message = message
    return DocumentInsertError(resp, Request("post", "/_api/document/orders"))


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (_server_error(409, 1210, "unique constraint violated - in index ix_o"), DuplicateKey),
        (_server_error(404, 1202, "document not found"), NotFound),
        (_server_error(404, 1228, "database not found"), StoreUnavailable),
        (_server_error(503, 503, "service unavailable"), StoreUnavailable),
        (_server_error(401, 401, "not authorized"), StoreUnavailable),
        (_server_error(400, 600, "bad json"), StoreError),
        (ConnectionAbortedError("Can't connect to host(s)"), StoreUnavailable),
    ],
)
def test_translate_error_with_arango_failure_maps_to_store_error(
    exc: Exception, expected: type[StoreError]
) -> None:
    mapped = translate_error(exc, "orders")
    assert type(mapped) is expected


# ---- factory and fixture linting --------------------------------------------------------------
def test_make_store_with_uri_selects_arango_else_sqlite(tmp_path: Path) -> None:
    arango = make_store(
        arango_uri="http://a:8529, http://b:8529",
        arango_user="svc",
        arango_pass="pw",
        arango_db="chimera_x",
        data_dir=tmp_path,
    )
    assert isinstance(arango, ArangoStore)
    assert arango.hosts == ["http://a:8529", "http://b:8529"]
    assert arango.database == "chimera_x"
    sqlite = make_store(arango_uri=None, arango_user=None, arango_pass=None, data_dir=tmp_path)
    assert isinstance(sqlite, SqliteStore)
    assert sqlite.path == tmp_path / "store.sqlite3"
    assert not sqlite.path.exists()  # nothing opens before bootstrap()


def test_load_fixtures_with_unknown_factor_raises_fixture_error(tmp_path: Path) -> None:
    for f in FIXTURES.glob("*.json"):
        (tmp_path / f.name).write_text(f.read_text())
    rules = json.loads((tmp_path / "strategy_rules.json").read_text())
    rules[0]["when"]["allOf"][0]["f"] = "not_a_factor"
    (tmp_path / "strategy_rules.json").write_text(json.dumps(rules))
    with pytest.raises(FixtureError, match="not_a_factor"):
        load_fixtures(tmp_path)


async def test_sqlite_wal_with_many_commits_is_checkpointed_off_the_write_path(
    tmp_path: Path,
) -> None:
    db = tmp_path / "wal.sqlite3"
    store = SqliteStore(db, checkpoint_every_s=0.05)
    await store.bootstrap()
    for i in range(1500):
        await store.insert("signals", {"signal_id": f"s{i}", "t0": i, "symbol": "BTCUSDT"})
    # No commit checkpoints by itself (that would stall the request that crosses the limit)...
    autocheckpoint = await store._write(
        "signals", lambda c: c.execute("PRAGMA wal_autocheckpoint").fetchone()[0]
    )
    assert autocheckpoint == 0  # on the writer thread's connection
    # ...the background thread copies the WAL into the main file (we run no checkpoint here).
    for _ in range(200):
        if db.stat().st_size > 200_000:
            break
        await asyncio.sleep(0.01)
    assert db.stat().st_size > 200_000
    assert await store.count("signals") == 1500
    await store.close()
    wal = tmp_path / "wal.sqlite3-wal"
    assert not wal.exists() or wal.stat().st_size == 0  # checkpointed and removed at close

"""`python -m svckit.store.seed` (README: pointing it at real infrastructure) reads the store
settings the services declare, so it seeds the database the services use."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import svckit.store.factory as factory
from svckit.store.base import DocumentStore
from svckit.store.seed import main
from tests.conftest import FIXTURES


def test_seed_cli_with_s3_db_arango_name_seeds_that_database(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # The database name only matters for ArangoDB: record what the CLI asks the factory for,
    # and let it build the real (SQLite) store, since no ArangoDB URI is set.
    asked: dict[str, Any] = {}
    real = factory.make_store

    def recording(**kwargs: Any) -> DocumentStore:
        asked.update(kwargs)
        return real(**{**kwargs, "arango_uri": None})

    monkeypatch.setattr(factory, "make_store", recording)
    for var in ("S3_DB_ARANGO_URI", "S3_DB_ARANGO_USER", "S3_DB_ARANGO_PASS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("S3_DB_ARANGO_NAME", "desk_prod")
    rc = main(["--fixtures", str(FIXTURES), "--data-dir", str(tmp_path)])
    assert rc == 0
    assert asked["arango_db"] == "desk_prod"
    assert (tmp_path / "store.sqlite3").is_file()

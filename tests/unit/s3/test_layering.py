"""Dependencies point inward: S3's domain/ imports no infrastructure (DESIGN.md §5.1)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3] / "services/s3_strategy/src/s3_strategy"
BANNED = ("fastapi", "redis", "arango", "ccxt", "httpx", "svckit", "starlette", "orjson",
          "s3_strategy.adapters", "s3_strategy.service_layer", "s3_strategy.entrypoints",
          "s3_strategy.bootstrap", "asyncio", "time")  # fmt: skip
FILES = sorted((ROOT / "domain").rglob("*.py"))


def imported(path: Path) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
    return out


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_domain_module_with_any_import_imports_no_infrastructure(path: Path) -> None:
    bad = {m for m in imported(path) for b in BANNED if m == b or m.startswith(b + ".")}
    assert not bad, f"{path.name} imports {sorted(bad)}"


def test_domain_layer_with_files_is_not_empty() -> None:
    assert len(FILES) >= 10

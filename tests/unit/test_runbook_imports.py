"""The runbooks' Python snippets import names that exist: an operator pasting one mid-incident
must not meet an ImportError (names move when the code is reshaped)."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

RUNBOOKS = Path(__file__).resolve().parents[2] / "runbooks"
OURS = "s3_strategy|s4_router|md_feeder|svckit|tradekit|venue"
IMPORT = re.compile(rf"^\s*from ((?:{OURS})[\w.]*) import ([\w, ]+)$", re.M)

IMPORTS = [
    (path.name, found[1], name.strip())
    for path in sorted(RUNBOOKS.glob("*.md"))
    for found in IMPORT.finditer(path.read_text(encoding="utf-8"))
    for name in found[2].split(",")
]


def test_runbooks_carry_python_snippets() -> None:
    assert IMPORTS, "no `from <our package> import ...` line found in runbooks/*.md"


@pytest.mark.parametrize(("runbook", "module", "name"), IMPORTS)
def test_runbook_snippet_imports_exist(runbook: str, module: str, name: str) -> None:
    assert hasattr(importlib.import_module(module), name), f"{runbook}: from {module} import {name}"

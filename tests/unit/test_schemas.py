"""The JSON Schemas in deploy/schemas/ match the models (run `make schemas` after a change)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[2]


def _exporter() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "export_schemas", REPO / "scripts/export_schemas.py"
    )
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules["export_schemas"] = mod
    spec.loader.exec_module(mod)
    return mod


def test_checked_in_schemas_with_current_models_are_identical() -> None:
    rendered = _exporter().render()
    for fname, text in rendered.items():
        path = REPO / "deploy" / "schemas" / fname
        assert path.exists(), f"{path} missing: run `make schemas`"
        assert path.read_text() == text, f"{fname} is stale: run `make schemas`"


def test_order_intent_schema_with_exec_policy_lists_every_policy_type() -> None:
    schema = json.loads((REPO / "deploy/schemas/order_intent.json").read_text())
    defs = schema["$defs"]
    kinds = {
        defs[name]["properties"]["type"]["const"]
        for name in ("MakerTakerPolicy", "TwapPolicy", "MarketPolicy", "OcoPolicy")
    }
    assert kinds == {"MAKER_TAKER", "TWAP", "MARKET", "OCO"}
    assert set(schema["required"]) >= {
        "intent_id",
        "market",
        "symbol",
        "side",
        "qty",
        "client_order_id",
    }

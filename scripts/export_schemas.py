"""Export JSON Schemas of the wire contracts to deploy/schemas/ (`make schemas`).

`tests/unit/test_schemas.py` fails when the checked-in files differ from the models, so a
contract change is always visible in review.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from tradekit.events import Alert, OrderExecuted, RouterEvent
from tradekit.instrument import Instrument
from tradekit.intents import OrderIntent
from tradekit.market import DepthSnapshot, FeatureSnapshot, MarketStep, Tick
from tradekit.orders import FillRecord, OrderRecord, OrderResponse
from tradekit.routing import RouteBands
from tradekit.rules import Factor, StrategyRule

OUT = Path(__file__).resolve().parents[1] / "deploy" / "schemas"

MODELS: dict[str, tuple[type[BaseModel], str]] = {
    "order_intent": (OrderIntent, "validation"),
    "order_response": (OrderResponse, "serialization"),
    "order_record": (OrderRecord, "serialization"),
    "fill_record": (FillRecord, "serialization"),
    "instrument": (Instrument, "validation"),
    "order_executed_event": (OrderExecuted, "serialization"),
    "router_event": (RouterEvent, "serialization"),
    "alert_event": (Alert, "serialization"),
    "tick": (Tick, "serialization"),
    "depth_snapshot": (DepthSnapshot, "serialization"),
    "market_step": (MarketStep, "serialization"),
    "feature_snapshot": (FeatureSnapshot, "serialization"),
    "strategy_rule": (StrategyRule, "validation"),
    "factor": (Factor, "validation"),
    "route_table": (RouteBands, "validation"),
}


def render() -> dict[str, str]:
    out: dict[str, str] = {}
    for name, (model, mode) in MODELS.items():
        schema: dict[str, Any] = model.model_json_schema(mode=mode)  # type: ignore[arg-type]
        schema["$id"] = f"https://chimera.local/schemas/{name}.json"
        out[f"{name}.json"] = json.dumps(schema, indent=2, sort_keys=True) + "\n"
    return out


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    for fname, text in render().items():
        (OUT / fname).write_text(text)
    print(f"wrote {len(MODELS)} schemas to {OUT}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

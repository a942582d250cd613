"""A decision's record and its replay: the `signals` document a decision writes, the decision
context and recorded inputs a replay reads back, the comparison.

A signal records everything its decision read (features with their ts, the ledger state, the
scorer's answer) and the `ctx_rev` of the compiled decision context it ran on; the context is
stored content-addressed (`config_bundles/s3ctx-{ctx_rev}`), so a replay rebuilds the very
engine and re-runs the pipeline (`DecisionService.replay`). Nothing is written or emitted.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import fields
from typing import Any

import orjson

from s3_strategy.adapters.configstore import CTX_PREFIX, ConfigStore, build_engine, context_rev
from s3_strategy.adapters.state import MarketState
from s3_strategy.domain.engine import ENGINE_VERSION, ContextError, Engine, Outcome
from s3_strategy.domain.ml import MlInput
from tradekit.enums import Market, Side

# The fields a replay must reproduce byte for byte (timestamps are inputs, so they match too):
# the pipeline's outcome and the head every answer carries (decide._answer).
DECISION_FIELDS = (*(f.name for f in fields(Outcome)), "config_rev", "ctx_rev", "signal_id")
CACHE_SIZE = 32  # engines kept by ctx_rev: hot reloads must not grow it without bound


class SignalNotFound(Exception):
    pass


class ReplayUnavailable(Exception):
    def __init__(self, signal_id: str, missing: list[str]) -> None:
        super().__init__(f"{signal_id}: cannot replay, missing {missing}")
        self.signal_id = signal_id
        self.missing = missing


class EngineCache:
    """Engines by `ctx_rev`: those installed by hot reloads, and those rebuilt for replays."""

    def __init__(self, configs: ConfigStore) -> None:
        self._configs = configs
        self._engines: dict[str, Engine] = {}

    def put(self, engine: Engine) -> None:
        self._engines[engine.ctx_rev] = engine
        while len(self._engines) > CACHE_SIZE:
            self._engines.pop(next(iter(self._engines)))

    async def for_signal(self, signal_id: str, doc: Mapping[str, Any]) -> Engine:
        """The engine `doc` was decided by; ReplayUnavailable naming whatever is gone."""
        missing: list[str] = []
        ctx_rev = doc.get("ctx_rev")
        engine = None
        if not isinstance(ctx_rev, str):
            missing.append(f"ctx_rev (signal written by a pre-{ENGINE_VERSION} engine)")
        else:
            engine = await self._load(ctx_rev, missing)
        for name in ("features", "t0", "symbol", "market", "state"):
            if name not in doc:
                missing.append(f"signal field {name}")
        if missing or engine is None:
            raise ReplayUnavailable(signal_id, missing)
        return engine

    async def _load(self, ctx_rev: str, missing: list[str]) -> Engine | None:
        cached = self._engines.get(ctx_rev)
        if cached is not None:
            return cached
        doc = await self._configs.store.get("config_bundles", CTX_PREFIX + ctx_rev)
        if doc is None:
            missing.append(f"decision context config_bundles/s3ctx-{ctx_rev} (deleted?)")
            return None
        content = doc["content"]
        if context_rev(content) != ctx_rev:
            missing.append(f"decision context s3ctx-{ctx_rev}: content does not hash to its rev")
            return None
        try:
            engine = build_engine(content)
        except ContextError as exc:
            missing.append(f"decision context s3ctx-{ctx_rev} no longer builds: {exc}")
            return None
        self.put(engine)
        return engine


def signal_doc(
    result: Mapping[str, Any],
    now: int,
    symbol: str,
    market: Market,
    side_hint: Side | None,
    state: MarketState,
) -> dict[str, Any]:
    """The `signals` document of a decision: its answer and every input it read."""
    return {
        "_key": result["signal_id"],
        **result,
        "t0": now,
        "symbol": symbol,
        "market": market.value,
        "side_hint": side_hint.value if side_hint else None,
        "features": {**state.features, "ts": state.ts},
        "feature_sources": state.sources,
        "features_overridden": state.overridden,  # what-if names (dry runs only)
        "state": {
            "open_entries": state.open_entries,
            "margin_in_flight_usdt": state.margin_in_flight,
            "open_positions": state.open_positions,
            "margin_positions_usdt": state.margin_positions,
            "error": state.error,
        },
        "engine_version": ENGINE_VERSION,
    }


def recorded_inputs(
    signal_id: str, doc: Mapping[str, Any]
) -> tuple[MarketState, Callable[[], Awaitable[MlInput]]]:
    """The market state a signal recorded, and its scorer answer as the replay's scorer."""
    ts = doc["features"].get("ts")
    recorded_state = doc["state"]
    state = MarketState(
        {k: float(v) for k, v in doc["features"].items() if k != "ts"},
        int(ts) if ts is not None else None,
        int(recorded_state["open_entries"]),
        float(recorded_state["margin_in_flight_usdt"]),
        error=recorded_state.get("error"),
        open_positions=int(recorded_state.get("open_positions", 0)),
        margin_positions=float(recorded_state.get("margin_positions_usdt", 0.0)),
    )
    recorded_ml = doc.get("ml")

    async def recorded() -> MlInput:
        if not isinstance(recorded_ml, dict):
            raise ReplayUnavailable(signal_id, ["ml (the recorded scorer answer)"])
        return MlInput(
            recorded_ml.get("p"),
            str(recorded_ml.get("model_version")),
            bool(recorded_ml.get("fallback")),
            recorded_ml.get("error"),
        )

    return state, recorded


def _canonical(result: Mapping[str, Any]) -> dict[str, bytes]:
    return {k: orjson.dumps(result.get(k), option=orjson.OPT_SORT_KEYS) for k in DECISION_FIELDS}


def compare(
    signal_id: str,
    doc: Mapping[str, Any],
    result: dict[str, Any],
    engine: Engine,
    *,
    model_version: str,
    now_ms: int,
) -> dict[str, Any]:
    """The replay's answer: which decision fields differ from the recorded ones."""
    before, after = _canonical(doc), _canonical(result)
    differences = [k for k in DECISION_FIELDS if before[k] != after[k]]
    recorded_ml = doc.get("ml")
    return {
        "signal_id": signal_id,
        "identical": not differences,
        "differences": differences,
        "config_rev": engine.config_rev,
        "ctx_rev": engine.ctx_rev,
        "engine_version": {"recorded": doc.get("engine_version"), "running": ENGINE_VERSION},
        "model_version": {
            "recorded": recorded_ml.get("model_version") if isinstance(recorded_ml, dict) else None,
            "running": model_version,
        },
        "replayed_at": now_ms,
        "result": {**result, "dry_run": bool(doc.get("dry_run"))},
    }

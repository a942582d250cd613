"""What a decision reads from Redis, in one pipelined round trip (two when it falls back to
the tick):

* `feat:last:{symbol}` — the flat feature snapshot `{"symbol", "ts", name: number, ...}`
  (tradekit.market.FeatureSnapshot), the primary source;
* `mkt:tick:{symbol}` — fallback for the top-of-book features: when the snapshot lacks `mid`
  (feeder down, or a symbol it does not cover) `mid`, `spread_bps`, `depth_top1_usdt` and
  `price` are derived from the tick and the snapshot's `ts` becomes the older of the two;
* `s3:entries` — the ledger of entries in flight and open positions (see `entries.py`), for
  the `concurrent_entries` and `risk_budget` gates.

Derivation (`derive`, after `context.features` are merged): `funding_next_abs =
|funding_rate|` when only the rate is known.
Non-numeric values are ignored; JSON cannot carry NaN/inf. A snapshot that is not valid JSON is
reported (`error`) and the decision skips `FEATURE_INVALID`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson

from s3_strategy.adapters.entries import ENTRIES_KEY, tally
from svckit import keys
from svckit.redisio import RedisClient

_TS_LIMIT = 2**53  # beyond it a float ts is not an exact integer (and 1e30 no 64-bit one)


@dataclass(slots=True)
class MarketState:
    features: dict[str, float]
    ts: int | None
    open_entries: int
    margin_in_flight: float
    sources: list[str] = field(default_factory=list)
    error: str | None = None
    overridden: list[str] = field(default_factory=list)  # context.features names (dry run)
    open_positions: int = 0  # filled, protection still active (adapters/entries.py)
    margin_positions: float = 0.0


def parse_snapshot(raw: str | bytes | None, tick_raw: str | bytes | None) -> MarketState:
    state = MarketState({}, None, 0, 0.0)
    feats = state.features
    if raw is not None:
        try:
            data = orjson.loads(raw)
            if not isinstance(data, dict):
                raise ValueError("not an object")
            for k, v in data.items():
                t = type(v)
                if (t is float or t is int) and k != "ts":
                    feats[k] = float(v)
            ts = data.get("ts")
            if (type(ts) is int or type(ts) is float) and 0 < ts < _TS_LIMIT:
                state.ts = int(ts)
            elif ts is not None:
                raise ValueError(f"ts {ts!r} is not epoch milliseconds")
            state.sources.append("feat:last")
        except ValueError as exc:
            state.error = f"feat:last is invalid: {exc}"
            return state
    if "mid" not in feats and tick_raw is not None:
        try:
            tick = orjson.loads(tick_raw)
            bid, ask = float(tick["bid"]), float(tick["ask"])
            mid = (bid + ask) / 2
            if bid > 0 and ask >= bid:
                feats["mid"] = mid
                feats["spread_bps"] = (ask - bid) / mid * 10_000
                feats["depth_top1_usdt"] = min(
                    bid * float(tick["bid_qty"]), ask * float(tick["ask_qty"])
                )
                feats.setdefault("price", float(tick.get("last") or mid))
                tts = int(tick["ts"])
                state.ts = tts if state.ts is None else min(state.ts, tts)
                state.sources.append("mkt:tick")
        except (ValueError, KeyError, TypeError) as exc:
            state.error = f"mkt:tick is malformed: {exc}"
    return state


def derive(features: dict[str, float]) -> None:
    """Derived features, applied after `context.features` are merged (idempotent)."""
    if "funding_next_abs" not in features and "funding_rate" in features:
        features["funding_next_abs"] = abs(features["funding_rate"])


@dataclass(eq=False)
class StateReader:
    """redis-py's pipeline (hiredis parses the replies): one round trip on a single node; on a
    Redis Cluster, where the two keys live on different nodes, the cluster pipeline routes each
    command to its slot's node."""

    redis: RedisClient

    async def read(self, symbol: str, market: str) -> MarketState:
        pipe = self.redis.pipeline(transaction=False)
        pipe.get(keys.feat_last(symbol))
        pipe.hgetall(ENTRIES_KEY)
        feat_raw, ledger = await pipe.execute()
        tick_raw = None
        if feat_raw is None or ('"mid"' if isinstance(feat_raw, str) else b'"mid"') not in feat_raw:
            # Fallback only: a second round trip when the snapshot lacks the top of book.
            tick_raw = await self.redis.get(keys.mkt_tick(symbol))
        state = parse_snapshot(feat_raw, tick_raw)
        t = tally(ledger, symbol, market)
        state.open_entries, state.margin_in_flight = t.entries, t.margin_entries
        state.open_positions, state.margin_positions = t.positions, t.margin_positions
        return state

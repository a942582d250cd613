"""The closed list of decision reasons. Every skip carries exactly one of these codes.

Codes are part of the API (`reason` in `/decide` responses, `s3_gate_skips_total{reason}`,
`signals.reason`); add to the list, never rename.
"""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    OK = "OK"
    # features (step 1)
    FEATURE_MISSING = "FEATURE_MISSING"  # a needed feature is absent (gates, rules, SL, side)
    FEATURE_STALE = "FEATURE_STALE"  # snapshot older than feature_max_age_ms
    FEATURE_INVALID = "FEATURE_INVALID"  # NaN/inf, or a price/ATR that is not > 0
    FEATURE_OUT_OF_RANGE = "FEATURE_OUT_OF_RANGE"  # outside factor_registry's [min, max]
    MARKET_NOT_TRADED = "MARKET_NOT_TRADED"  # the instrument has no such market
    SIDE_NOT_ALLOWED = "SIDE_NOT_ALLOWED"  # a SELL entry on SPOT (no shorting)
    # L0 gates (step 2), in gate order
    FUNDING_TOO_HIGH = "FUNDING_TOO_HIGH"
    SPREAD_TOO_WIDE = "SPREAD_TOO_WIDE"
    DEPTH_TOO_THIN = "DEPTH_TOO_THIN"
    RISK_BUDGET = "RISK_BUDGET"
    CONCURRENT_ENTRIES = "CONCURRENT_ENTRIES"  # entries in flight fill the per-market limit
    POSITION_OPEN = "POSITION_OPEN"  # an open position (filled, protection active) is among them
    # L1 rules (step 3)
    NO_RULES = "NO_RULES"  # no ENABLED rule applies to the symbol/market (skip + alert)
    RULE_SKIP = "RULE_SKIP"  # a skip_entry rule fired
    # L2 ML (step 4)
    ML_LOW_SCORE = "ML_LOW_SCORE"  # p below every row of ml_table
    ML_UNAVAILABLE = "ML_UNAVAILABLE"  # scorer timed out / failed and the fallback is "skip"
    # sizing and brackets (steps 5-6)
    MIN_NOTIONAL = "MIN_NOTIONAL"  # qty rounds to zero or notional < minNotional / qty < minQty
    QTY_ABOVE_MAX = "QTY_ABOVE_MAX"  # qty > the instrument's maxQty (never silently cut)
    BRACKETS_INVALID = "BRACKETS_INVALID"  # no valid SL/TP (e.g. a short TP at or below zero)
    # no stop on the tick keeps the loss at the stop, fees included, within S3_MAX_LOSS_USDT
    MAX_LOSS_UNREACHABLE = "MAX_LOSS_UNREACHABLE"
    # emission (step 8; set by the service layer, not by the pure pipeline)
    LOCK_BUSY = "LOCK_BUSY"  # lock:pos:{symbol} held by another decision beyond the wait
    DUPLICATE_DECISION = "DUPLICATE_DECISION"  # idem:order:{client_order_id} already claimed

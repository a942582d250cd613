"""L0 gates: five checks in a fixed order; the first failure short-circuits. They never raise.

Each gate reports `{gate, passed, observed, threshold}`:

* `funding_abs`: observed `funding_next_abs` ≤ S3_MAX_FUNDING_ABS, else FUNDING_TOO_HIGH
  (FUT only; on SPOT it passes with observed `null`);
* `spread_bps`: ≤ the instrument's `spread_bp_limit` (else S3_SPREAD_BP_LIMIT_DEFAULT), else
  SPREAD_TOO_WIDE;
* `depth_top1_usdt`: ≥ the instrument's `depth_top1_usdt_min` (else
  S3_DEPTH_TOP1_USDT_MIN_DEFAULT), else DEPTH_TOO_THIN;
* `risk_budget`: margin (FUT) / quote (SPOT) of the entries in flight and the open positions on
  all symbols plus the largest margin this entry may take (base · clamp max) ≤
  `risk.budget.max_margin_in_flight_usdt`, else RISK_BUDGET;
* `concurrent_entries`: entries in flight plus open positions (filled, protection not yet
  resolved) on this symbol and market (FUT and SPOT count apart) <
  S3_CONCURRENT_ENTRIES_PER_MARKET, else POSITION_OPEN when an open position is among them,
  CONCURRENT_ENTRIES otherwise.

Floats on purpose: these are comparisons of market data against limits, no money is computed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from s3_strategy.domain.reasons import Reason

GATE_NAMES = ("funding_abs", "spread_bps", "depth_top1_usdt", "risk_budget", "concurrent_entries")


@dataclass(frozen=True, slots=True)
class GateLimits:
    max_funding_abs: float
    spread_bp_limit: float
    depth_top1_usdt_min: float
    risk_budget_usdt: float
    max_entry_margin_usdt: float  # the largest margin/quote one entry may commit
    concurrent_entries: int
    check_funding: bool  # FUT only


def run_gates(
    x: Mapping[str, float],
    lim: GateLimits,
    open_entries: int,
    margin_in_flight: float,
    open_positions: int = 0,
    margin_positions: float = 0.0,
) -> tuple[list[dict[str, Any]], Reason]:
    out: list[dict[str, Any]] = []
    funding: float | None = None
    ok = True
    if lim.check_funding:
        f = x["funding_next_abs"]
        funding, ok = f, f <= lim.max_funding_abs
    out.append(
        {"gate": "funding_abs", "passed": ok, "observed": funding, "threshold": lim.max_funding_abs}
    )
    if not ok:
        return out, Reason.FUNDING_TOO_HIGH
    spread = x["spread_bps"]
    ok = spread <= lim.spread_bp_limit
    out.append(
        {"gate": "spread_bps", "passed": ok, "observed": spread, "threshold": lim.spread_bp_limit}
    )
    if not ok:
        return out, Reason.SPREAD_TOO_WIDE
    depth = x["depth_top1_usdt"]
    ok = depth >= lim.depth_top1_usdt_min
    out.append(
        {
            "gate": "depth_top1_usdt",
            "passed": ok,
            "observed": depth,
            "threshold": lim.depth_top1_usdt_min,
        }
    )
    if not ok:
        return out, Reason.DEPTH_TOO_THIN
    committed = margin_in_flight + margin_positions + lim.max_entry_margin_usdt
    ok = committed <= lim.risk_budget_usdt
    out.append(
        {
            "gate": "risk_budget",
            "passed": ok,
            "observed": committed,
            "threshold": lim.risk_budget_usdt,
        }
    )
    if not ok:
        return out, Reason.RISK_BUDGET
    held = open_entries + open_positions
    ok = held < lim.concurrent_entries
    out.append(
        {
            "gate": "concurrent_entries",
            "passed": ok,
            "observed": float(held),
            "threshold": float(lim.concurrent_entries),
        }
    )
    if not ok:
        return out, Reason.POSITION_OPEN if open_positions else Reason.CONCURRENT_ENTRIES
    return out, Reason.OK

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
from typing import Any, Literal

from s3_strategy.domain.reasons import Reason

GateName = Literal[
    "funding_abs", "spread_bps", "depth_top1_usdt", "risk_budget", "concurrent_entries"
]


@dataclass(frozen=True, slots=True)
class GateLimits:
    max_funding_abs: float
    spread_bp_limit: float
    depth_top1_usdt_min: float
    risk_budget_usdt: float
    max_entry_margin_usdt: float  # the largest margin/quote one entry may commit
    concurrent_entries: int
    check_funding: bool  # FUT only


def _gate(
    out: list[dict[str, Any]], gate: GateName, ok: bool, observed: float | None, threshold: float
) -> bool:
    out.append({"gate": gate, "passed": ok, "observed": observed, "threshold": threshold})
    return ok


def run_gates(
    x: Mapping[str, float],
    lim: GateLimits,
    open_entries: int,
    margin_in_flight: float,
    open_positions: int = 0,
    margin_positions: float = 0.0,
) -> tuple[list[dict[str, Any]], Reason]:
    out: list[dict[str, Any]] = []
    funding = x["funding_next_abs"] if lim.check_funding else None
    ok = funding is None or funding <= lim.max_funding_abs
    if not _gate(out, "funding_abs", ok, funding, lim.max_funding_abs):
        return out, Reason.FUNDING_TOO_HIGH
    spread = x["spread_bps"]
    if not _gate(out, "spread_bps", spread <= lim.spread_bp_limit, spread, lim.spread_bp_limit):
        return out, Reason.SPREAD_TOO_WIDE
    depth, floor = x["depth_top1_usdt"], lim.depth_top1_usdt_min
    if not _gate(out, "depth_top1_usdt", depth >= floor, depth, floor):
        return out, Reason.DEPTH_TOO_THIN
    committed = margin_in_flight + margin_positions + lim.max_entry_margin_usdt
    budget = lim.risk_budget_usdt
    if not _gate(out, "risk_budget", committed <= budget, committed, budget):
        return out, Reason.RISK_BUDGET
    held, cap = open_entries + open_positions, lim.concurrent_entries
    if not _gate(out, "concurrent_entries", held < cap, float(held), float(cap)):
        return out, Reason.POSITION_OPEN if open_positions else Reason.CONCURRENT_ENTRIES
    return out, Reason.OK

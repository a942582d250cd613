"""From an intent's `exec_policy` to the execution the router runs (pure).

| exec_policy                     | runs as                                                     |
|---------------------------------|-------------------------------------------------------------|
| MARKET                          | one taker child (split by the liquidity probe if needed)    |
| MAKER_TAKER (no fields)         | route table band by notional: maker_wait_ms and twap        |
| MAKER_TAKER + maker_wait_ms     | that wait (capped by S4_MAKER_MAX_WAIT_MS)                  |
| MAKER_TAKER + twap              | TWAP slices, each Maker→Taker                               |
| TWAP (+ maker_wait_ms)          | TWAP slices, each market (or Maker→Taker with a wait)       |
| OCO (SPOT)                      | the router resolves the entry as MAKER_TAKER; the exit legs |
|                                 | belong to the protection service (never reach this table)   |

An intent asking for more slices than S4_TWAP_MAX_SLICES is refused (the caller asked for
smaller slices than we would send); a route-table band asking for more is clamped (config).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from s4_router.policies.liquidity import LiquidityConfig
from s4_router.policies.maker_taker import MakerTakerConfig
from s4_router.policies.parent_machine import ExecutionConfig, PolicyName
from s4_router.policies.route_table import RouteTable
from s4_router.policies.twap import TwapPlan
from tradekit.instrument import Instrument
from tradekit.intents import ExecPolicy, MakerTakerPolicy, MarketPolicy, TwapPolicy
from tradekit.orders import Adjustment


class PolicyRefused(ValueError):
    """The intent asks for an execution this router does not do; refuse it, send nothing."""


@dataclass(frozen=True, slots=True)
class PolicyLimits:
    maker_max_wait_ms: int = 3000
    twap_max_slices: int = 4
    max_reprices: int = 3
    taker_max_failures: int = 3
    cancel_retry_ms: int = 2000
    split_gap_ms: int = 250
    balance_downsize_factor: Decimal = Decimal("0.5")
    probe_max_child_fraction: Decimal = Decimal("0.5")
    probe_retry_ms: int = 250
    probe_max_delay_ms: int = 2000


@dataclass(frozen=True, slots=True)
class Resolved:
    config: ExecutionConfig
    notes: tuple[str, ...] = ()
    # Values the intent asked for and the router changed (reported in the answer, issue 11).
    adjustments: tuple[Adjustment, ...] = ()


def resolve_policy(
    policy: ExecPolicy,
    *,
    notional: Decimal,
    table: RouteTable,
    limits: PolicyLimits,
    inst: Instrument,
) -> Resolved:
    notes: list[str] = []
    adjustments: list[Adjustment] = []
    band_index: int | None = None
    twap: TwapPlan | None = None
    chase = False
    name: PolicyName
    if isinstance(policy, MarketPolicy):
        name = "MARKET"
        wait = 0
    elif isinstance(policy, MakerTakerPolicy):
        name = "MAKER_TAKER"
        band_index, band = table.band_for(notional)
        wait = policy.maker_wait_ms if policy.maker_wait_ms is not None else band.maker_wait_ms
        chase = policy.chase_one_tick
        if policy.twap is not None:
            _check_slices(policy.twap.slices, limits)
            twap = TwapPlan(**policy.twap.model_dump())
        elif band.twap.slices > 1:
            twap = band.twap
            if twap.slices > limits.twap_max_slices:
                notes.append(
                    f"route band twap slices {twap.slices} clamped to {limits.twap_max_slices}"
                )
                twap = twap.model_copy(update={"slices": limits.twap_max_slices})
    elif isinstance(policy, TwapPolicy):
        name = "TWAP"
        _check_slices(policy.slices, limits)
        twap = TwapPlan(slices=policy.slices, gap_ms=policy.gap_ms, jitter_pct=policy.jitter_pct)
        wait = policy.maker_wait_ms or 0
    else:
        raise PolicyRefused(
            f"exec_policy: {policy.type} is not supported by this router version; "
            "intent refused rather than executed without it"
        )
    if wait > limits.maker_max_wait_ms:
        notes.append(f"maker_wait_ms {wait} capped to {limits.maker_max_wait_ms}")
        if getattr(policy, "maker_wait_ms", None) is not None:
            adjustments.append(
                Adjustment(
                    field="exec_policy.maker_wait_ms",
                    requested=str(wait),
                    applied=str(limits.maker_max_wait_ms),
                    reason="S4_MAKER_MAX_WAIT_MS",
                )
            )
        wait = limits.maker_max_wait_ms
    if twap is not None and twap.slices <= 1:
        twap = None
    if twap is not None and name == "MAKER_TAKER":
        name = "TWAP" if wait == 0 else name
    maker = MakerTakerConfig(
        maker_wait_ms=wait,
        chase_one_tick=chase,
        max_reprices=limits.max_reprices,
        taker_max_failures=limits.taker_max_failures,
        cancel_retry_ms=limits.cancel_retry_ms,
        split_gap_ms=limits.split_gap_ms,
        downsize_factor=limits.balance_downsize_factor,
        probe=LiquidityConfig(
            spread_bps_max=inst.spread_bp_limit,
            depth_top1_usdt_min=inst.depth_top1_usdt_min,
            max_child_fraction=limits.probe_max_child_fraction,
            retry_ms=limits.probe_retry_ms,
            max_delay_ms=limits.probe_max_delay_ms,
        ),
    )
    config = ExecutionConfig(policy=name, maker=maker, twap=twap, route_band=band_index)
    return Resolved(config=config, notes=tuple(notes), adjustments=tuple(adjustments))


def _check_slices(slices: int, limits: PolicyLimits) -> None:
    if slices > limits.twap_max_slices:
        raise PolicyRefused(
            f"exec_policy: twap slices {slices} exceeds S4_TWAP_MAX_SLICES={limits.twap_max_slices}"
        )

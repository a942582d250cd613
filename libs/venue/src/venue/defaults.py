"""The default venue of tests and ``make run``: BTCUSDT, ETHUSDT, QRLUSDT, funded accounts.

* BTCUSDT trades around 65,000 — replayed recorded Binance data rescaled to that level when the
  fixtures are available, a calm synthetic process otherwise;
* ETHUSDT around 3,400 (synthetic, calm);
* QRLUSDT around 0.5: a small-cap token, so its book is thin-ish (about 1,500 USDT per level)
  but a few hundred USDT still fills within the top levels.

Spot: 100,000 USDT + 1 BTC + 10 ETH + 20,000 QRL. Futures: 100,000 USDT.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from svckit.clock import Clock, ManualClock
from tradekit.instrument import Instrument
from venue.faults import FaultInjector, FaultPlan
from venue.market import (
    MarketSimulator,
    ReplayProcess,
    SyntheticProcess,
    load_recorded_btcusdt,
)
from venue.venue import Venue

D = Decimal

# symbol, base asset, tick, step, spread_bp_limit, depth_top1_usdt_min; the price it trades
# around; the normal notional per book level of its synthetic process (USDT).
_MARKETS = (
    ("BTCUSDT", "BTC", "0.1", "0.001", "5", "5000", "65000", "150000"),
    ("ETHUSDT", "ETH", "0.01", "0.001", "5", "5000", "3400", "80000"),
    ("QRLUSDT", "QRL", "0.0001", "0.1", "30", "300", "0.5", "1500"),
)
DEFAULT_INSTRUMENTS: tuple[Instrument, ...] = tuple(
    Instrument(
        symbol=sym,
        base_asset=base,
        tickSize=D(tick),
        stepSize=D(step),
        minNotional=D("5"),
        spread_bp_limit=D(spread),
        depth_top1_usdt_min=D(depth),
    )
    for sym, base, tick, step, spread, depth, _, _ in _MARKETS
)
TARGET_PRICES: dict[str, Decimal] = {m[0]: D(m[6]) for m in _MARKETS}
LEVEL_NOTIONAL: dict[str, Decimal] = {m[0]: D(m[7]) for m in _MARKETS}
SPOT_BALANCES: dict[str, Decimal] = {
    "USDT": D("100000"),
    "BTC": D("1"),
    "ETH": D("10"),
    "QRL": D("20000"),
}
FUTURES_WALLET = D("100000")


def default_venue(
    *,
    clock: Clock | None = None,
    seed: int = 0,
    replay: bool = True,
    step_ms: int = 1_000,
    faults: FaultPlan | FaultInjector | None = None,
    server_time_skew_ms: int = 0,
    instruments: Sequence[Instrument] = DEFAULT_INSTRUMENTS,
    history_max: int | None = None,
    report_buffer: int = 200_000,
) -> Venue:
    """The venue of tests and `make run` (a ManualClock when none is given): one price process
    per instrument, BTCUSDT replaying the recorded data when `replay` and the fixtures exist."""
    clock = clock or ManualClock()
    market = MarketSimulator(step_ms=step_ms, seed=seed)
    for inst in instruments:
        target = TARGET_PRICES.get(inst.symbol, D("100"))
        if inst.symbol == "BTCUSDT" and replay:
            try:
                recorded = load_recorded_btcusdt()
            except FileNotFoundError:
                pass  # no fixtures beside the package: a synthetic BTCUSDT instead
            else:
                market.add(
                    ReplayProcess(inst, recorded, target_price=target, start_ts=clock.now_ms())
                )
                continue
        notional = LEVEL_NOTIONAL.get(inst.symbol, D("20000"))
        market.add(SyntheticProcess(inst, start_price=target, level_notional=notional, seed=seed))
    return Venue(
        clock=clock,
        instruments=instruments,
        market=market,
        spot_balances=dict(SPOT_BALANCES),
        futures_wallet=FUTURES_WALLET,
        seed=seed,
        faults=faults,
        server_time_skew_ms=server_time_skew_ms,
        history_max=history_max,
        report_buffer=report_buffer,
    )

"""Execution quality: the rolling ratios behind `router_maker_fill_ratio`, `router_taker_rate`
and `router_twap_slice_fill_ratio`, and the alerts on them (maker fill ratio low,
insufficient-balance rate high)."""

from __future__ import annotations

from decimal import Decimal

from s4_router.metrics import RouterMetrics
from s4_router.policies.quality_alarms import LowRatioAlarm, RateAlarm, RollingRatio
from s4_router.service_layer.publisher import Publisher
from tradekit.enums import Liquidity


class QualityTracker:
    def __init__(
        self,
        *,
        metrics: RouterMetrics,
        publisher: Publisher,
        window: int = 200,
        min_samples: int = 20,
        maker_ratio_alert: float = 0.3,
        balance_alert_count: int = 3,
        balance_window_ms: int = 600_000,
        cooldown_ms: int = 600_000,
    ) -> None:
        self.metrics = metrics
        self.publisher = publisher
        self.maker = RollingRatio(window)
        self.taker = RollingRatio(window)
        self.slices = RollingRatio(window)
        self.maker_alarm = LowRatioAlarm(
            threshold=maker_ratio_alert, min_samples=min_samples, cooldown_ms=cooldown_ms
        )
        self.balance_alarm = RateAlarm(
            count=balance_alert_count, window_ms=balance_window_ms, cooldown_ms=cooldown_ms
        )

    async def maker_child_done(self, now: int, *, qty: Decimal, filled: Decimal) -> None:
        self.maker.add(filled, qty)
        ratio = self.maker.ratio
        if ratio is not None:
            self.metrics.maker_fill_ratio.set(ratio)
        if self.maker_alarm.check(now, ratio, self.maker.samples):
            await self.publisher.alert(
                "MAKER_FILL_RATIO_LOW",
                f"maker fill ratio {ratio:.0%} over the last {self.maker.samples} maker orders",
                data={"ratio": ratio, "samples": self.maker.samples},
            )

    def fill(self, *, liquidity: Liquidity, qty: Decimal) -> None:
        self.taker.add(qty if liquidity is Liquidity.TAKER else Decimal(0), qty)
        ratio = self.taker.ratio
        if ratio is not None:
            self.metrics.taker_rate.set(ratio)

    def slice_done(self, *, target: Decimal, filled: Decimal) -> None:
        self.slices.add(filled, target)
        ratio = self.slices.ratio
        if ratio is not None:
            self.metrics.twap_slice_fill_ratio.set(ratio)

    async def insufficient_balance(self, now: int, *, symbol: str, repeated: bool) -> None:
        if repeated:
            await self.publisher.alert(
                "INSUFFICIENT_BALANCE",
                f"{symbol}: insufficient balance again after downsizing; order not completed",
                severity="critical",
                data={"symbol": symbol},
            )
        if self.balance_alarm.hit(now):
            await self.publisher.alert(
                "INSUFFICIENT_BALANCE_RATE_HIGH",
                f"{self.balance_alarm.count}+ insufficient-balance rejects within "
                f"{self.balance_alarm.window_ms // 1000}s",
                data={"symbol": symbol},
            )

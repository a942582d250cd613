"""What a decision does once it is stored: an `open` is published (stream and REST, see
adapters/intent_publisher.py) and its publish report recorded on the signal; a refusal or a
terminal answer from S4 clears the ledger entry; a live decision's reason may raise an alert.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from s3_strategy.adapters.alerts import AlertSink
from s3_strategy.adapters.entries import TERMINAL, EntriesLedger, filled_positive
from s3_strategy.adapters.intent_publisher import IntentPublisher
from s3_strategy.domain.reasons import Reason
from s3_strategy.metrics import StrategyMetrics
from svckit.store.base import DocumentStore
from tradekit.enums import Market

log = logging.getLogger(__name__)


@dataclass(kw_only=True, eq=False)
class Emission:
    publisher: IntentPublisher
    ledger: EntriesLedger
    alerts: AlertSink
    store: DocumentStore
    metrics: StrategyMetrics

    async def publish(self, result: dict[str, Any], signal_id: str) -> None:
        intent = result["intent"]
        report = await self.publisher.publish(intent)
        result["publish"] = asdict(report)
        log.info(
            "intent %s published: stream %s, rest %s",
            intent["client_order_id"],
            report.stream,
            report.rest,
        )
        s4 = report.s4 or {}
        refused = s4.get("result") == "FAIL" and s4.get("status") != "AMBIGUOUS"
        if refused or s4.get("status") in TERMINAL:
            # A protected entry that filled stays as an open position until S4's protection
            # closes it (adapters/entries.py); anything else leaves the ledger.
            filled = not refused and filled_positive(s4.get("filled_qty"))
            with contextlib.suppress(Exception):
                await self.ledger.finished(intent["client_order_id"], filled)
        if refused:
            await self.alerts.emit(
                "INTENT_REFUSED",
                f"S4 refused {intent['client_order_id']}: "
                f"{s4.get('message') or s4.get('status') or 'FAIL without a message'}",
                symbol=str(intent["symbol"]),
                data={"client_order_id": intent["client_order_id"]},
            )
        try:
            await self.store.update("signals", signal_id, {"publish": asdict(report)})
        except Exception:  # the intent is out: the answer must say so, whatever failed here
            log.exception("signal %s: could not record the publish report", signal_id)
        for path, st in (("stream", report.stream), ("rest", report.rest)):
            if st == "failed":
                self.metrics.publish_failures.labels(path).inc()
        if not report.delivered:
            self.metrics.publish_undelivered.inc()
        if report.stream == "failed" or report.rest == "failed":
            await self.alerts.emit(
                "PUBLISH_FAILED" if not report.delivered else "PUBLISH_DEGRADED",
                f"{intent['client_order_id']}: {'; '.join(report.errors)}",
                severity="critical" if not report.delivered else "warning",
                symbol=str(intent["symbol"]),
                data={"client_order_id": intent["client_order_id"]},
                rate_limit=False,
            )

    async def alert_on(self, result: Mapping[str, Any], symbol: str, market: Market) -> None:
        reason = result["reason"]
        if reason == Reason.NO_RULES:
            await self.alerts.emit(
                "NO_RULES",
                f"no ENABLED rule for {symbol}/{market.value}: every decision skips",
                severity="critical",
                symbol=symbol,
            )
        elif reason == Reason.FEATURE_MISSING:
            await self.alerts.emit("FEATURE_MISSING", str(result.get("message")), symbol=symbol)
        elif reason == Reason.FEATURE_OUT_OF_RANGE:
            await self.alerts.emit(
                "FEATURE_OUT_OF_RANGE", f"{symbol}: {result.get('message')}", symbol=symbol
            )
        elif result.get("ml", {}).get("fallback"):
            await self.alerts.emit("ML_FALLBACK", str(result["ml"].get("error")), symbol=symbol)

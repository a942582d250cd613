"""Faults on demand, reproducible from a seed.

A :class:`FaultPlan` says which faults to inject: per-operation probabilities and/or explicit
scripted faults ("the 3rd place fails with a dropped ack"). A :class:`FaultInjector` applies it
with its own ``random.Random(seed)``; it draws exactly one number per request (and per report),
whatever the outcome, so the same seed and the same call sequence yield the same faults.

Request faults (operations: the keys of :data:`DEFAULT_WEIGHTS`; ``*`` matches all):

* ``RATE_LIMIT`` — HTTP 429 with Retry-After, nothing done;
* ``SERVER_ERROR`` — HTTP 5xx, nothing done;
* ``CONNECT_TIMEOUT`` — the request never reached the venue (a client can know this);
* ``TIMEOUT_BEFORE_ACCEPT`` — reached the venue, timed out before it was processed (not created);
* ``TIMEOUT_AFTER_ACCEPT`` — processed (the order exists), the caller still gets a timeout;
* ``DROPPED_ACK`` — processed, the acknowledgement was lost (same effect, distinct kind).

Report faults (operation ``report``, on the execution-report feed): ``DELAYED_REPORT`` (held
back ``delay_ms`` of clock time) and ``DUPLICATE_REPORT`` (delivered twice).

:class:`WeightLimiter` is the real rate limit: request weight per clock minute like Binance's
``X-MBX-USED-WEIGHT-1M``; exceeding it answers 429 with the seconds to the next minute.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from venue import errors


class FaultKind(StrEnum):
    RATE_LIMIT = "rate_limit"
    SERVER_ERROR = "server_error"
    CONNECT_TIMEOUT = "connect_timeout"
    TIMEOUT_BEFORE_ACCEPT = "timeout_before_accept"
    TIMEOUT_AFTER_ACCEPT = "timeout_after_accept"
    DROPPED_ACK = "dropped_ack"
    DELAYED_REPORT = "delayed_report"
    DUPLICATE_REPORT = "duplicate_report"

    @property
    def is_report_fault(self) -> bool:
        return self in (FaultKind.DELAYED_REPORT, FaultKind.DUPLICATE_REPORT)


REPORT_OP = "report"


@dataclass(frozen=True, slots=True)
class ScriptedFault:
    """One explicit fault: on the `nth` call (1-based) of `op`, or on the next call if None."""

    op: str
    kind: FaultKind
    nth: int | None = None


@dataclass(frozen=True, slots=True)
class Fault:
    """A fault the injector decided on for one call."""

    op: str
    call: int
    kind: FaultKind
    retry_after_s: float
    delay_ms: int
    http_status: int


@dataclass
class FaultPlan:
    """What to inject. `probabilities[op][kind]` (op ``*`` applies to every request op)."""

    probabilities: dict[str, dict[FaultKind, float]] = field(default_factory=dict)
    scripted: list[ScriptedFault] = field(default_factory=list)
    retry_after_s: float = 1.0
    report_delay_ms: int = 2_000
    server_error_status: int = 503

    def __post_init__(self) -> None:
        for op, kinds in self.probabilities.items():
            total = sum(kinds.values())
            if total > 1 or any(p < 0 for p in kinds.values()):
                raise ValueError(f"fault probabilities for {op!r} must be >= 0 and sum to <= 1")
            for kind in kinds:
                if kind.is_report_fault != (op == REPORT_OP):
                    raise ValueError(f"{kind} cannot be injected on operation {op!r}")


class FaultInjector:
    def __init__(self, plan: FaultPlan | None = None, *, seed: int = 0) -> None:
        self.plan = plan or FaultPlan()
        self._rng = random.Random(f"faults:{seed}")
        self._calls: Counter[str] = Counter()
        self._scripted = list(self.plan.scripted)
        self.history: list[Fault] = []

    def script(self, op: str, kind: FaultKind, nth: int | None = None) -> None:
        """Add a scripted fault at run time (`nth` counts all calls of `op` so far, 1-based)."""
        if kind.is_report_fault != (op == REPORT_OP):
            raise ValueError(f"{kind} cannot be injected on operation {op!r}")
        self._scripted.append(ScriptedFault(op, kind, nth))

    def calls(self, op: str) -> int:
        return self._calls[op]

    def next_fault(self, op: str) -> Fault | None:
        """Decide the fault (if any) for the next call of `op` and record it in `history`."""
        self._calls[op] += 1
        n = self._calls[op]
        kind: FaultKind | None = None
        for i, sf in enumerate(self._scripted):
            if (
                sf.op in (op, "*")
                and (sf.nth is None or sf.nth == n)
                and (sf.op != "*" or op != REPORT_OP)
            ):
                kind = sf.kind
                del self._scripted[i]
                break
        table: dict[FaultKind, float] = {}
        if op != REPORT_OP:
            table.update(self.plan.probabilities.get("*", {}))
        table.update(self.plan.probabilities.get(op, {}))
        x = self._rng.random()  # always drawn, even when scripted: keeps the stream aligned
        acc = 0.0
        for drawn, p in table.items():  # a plain loop: this runs on every simulated request
            acc += p
            if x < acc:
                kind = kind or drawn
                break
        if kind is None:
            return None
        fault = Fault(
            op=op,
            call=n,
            kind=kind,
            retry_after_s=self.plan.retry_after_s,
            delay_ms=self.plan.report_delay_ms,
            http_status=self.plan.server_error_status,
        )
        self.history.append(fault)
        return fault


def raise_before(fault: Fault) -> None:
    """Raise the exception of a fault that stops the request before processing (rate limit,
    server error, connect timeout, timeout before acceptance); other faults pass."""
    if fault.kind is FaultKind.RATE_LIMIT:
        raise errors.RateLimitExceeded(
            "Too many requests (injected).", retry_after_s=fault.retry_after_s
        )
    if fault.kind is FaultKind.SERVER_ERROR:
        raise errors.VenueServerError(http_status=fault.http_status)
    if fault.kind is FaultKind.CONNECT_TIMEOUT:
        raise errors.VenueTimeout("connect timeout", reached_venue=False, accepted=False)
    if fault.kind is FaultKind.TIMEOUT_BEFORE_ACCEPT:
        raise errors.VenueTimeout(
            "timeout before the venue processed the request", reached_venue=True, accepted=False
        )


def raise_after(fault: Fault) -> None:
    """Raise the exception of a fault that hides a processed request's answer (timeout after
    acceptance, dropped acknowledgement); other faults pass."""
    if fault.kind is FaultKind.TIMEOUT_AFTER_ACCEPT:
        raise errors.VenueTimeout(
            "timeout after the venue processed the request", reached_venue=True, accepted=True
        )
    if fault.kind is FaultKind.DROPPED_ACK:
        raise errors.AckDropped()


# Binance REST weights (spot /api/v3 figures; close enough for futures too).
DEFAULT_WEIGHTS: dict[str, int] = {
    "place": 1,
    "cancel": 1,
    "query": 4,
    "open_orders": 6,
    "trades": 20,
    "book": 5,
    "ticker": 2,
    "klines": 2,
    "account": 20,
    "time": 1,
    "leverage": 1,
    "margin_type": 1,
    "algo_place": 1,
    "algo_cancel": 1,
    "algo_query": 1,
    "oco_place": 1,
    "oco_cancel": 1,
}


# USD-M futures weigh their requests differently from spot (Binance's futures API docs: GET
# order 1, userTrades 5, depth up to 50 levels 2, positionRisk/account 5, openOrders with a
# symbol 1). A new order weighs 0 on the futures IP limit (it counts on the order-rate limits,
# not simulated); it is charged 1 here so that an exhausted budget still refuses it.
FUTURES_WEIGHTS: dict[str, int] = {
    "place": 1,
    "cancel": 1,
    "query": 1,
    "open_orders": 1,
    "trades": 5,
    "book": 2,
    "ticker": 1,
    "account": 5,
}


class WeightLimiter:
    """Request weight per fixed clock minute (Binance's REQUEST_WEIGHT, interval MINUTE), spot
    and futures requests in one pool, each at its own market's weight."""

    def __init__(self, limit_per_minute: int = 6_000) -> None:
        self.limit = limit_per_minute
        self._window = -1
        self._used = 0

    def used(self, now_ms: int) -> int:
        return self._used if now_ms // 60_000 == self._window else 0

    def charge(self, op: str, now_ms: int, *, futures: bool = False) -> None:
        """Add the weight of `op` (a futures request's with `futures`); raises 429 (and does
        not count it) when over the limit."""
        window = now_ms // 60_000
        if window != self._window:
            self._window, self._used = window, 0
        weight = DEFAULT_WEIGHTS.get(op, 1)
        if futures:
            weight = FUTURES_WEIGHTS.get(op, weight)
        if self._used + weight > self.limit:
            retry = math.ceil(((window + 1) * 60_000 - now_ms) / 1000)
            raise errors.RateLimitExceeded(
                errors.MSG_TOO_MANY.format(limit=self.limit),
                retry_after_s=float(max(retry, 1)),
                used_weight=self._used,
            )
        self._used += weight


# ---- fault profiles from configuration ------------------------------------------------------
# The knob names shared by S4's settings (`S4_SIM_FAULT_<KNOB>`) and the facade process
# (`--fault-<knob>` / `VENUE_FAULT_<KNOB>`): one per fault kind.
FAULT_KNOBS: dict[str, FaultKind] = {kind.value: kind for kind in FaultKind}


def profile_plan(
    rate: float = 0.0,
    per_kind: Mapping[FaultKind, float | None] | None = None,
    *,
    retry_after_s: float = 1.0,
    report_delay_ms: int = 2_000,
) -> FaultPlan | None:
    """A seeded fault profile as a :class:`FaultPlan`, or None when it injects nothing.

    `rate` (0..1) is the probability that a request (and, separately, an execution report)
    meets *some* fault, shared evenly by the kinds that apply to it; a kind given in
    `per_kind` (not None) uses its own probability instead of its share. Requests and reports
    draw separately, so each side's probabilities must sum to <= 1.
    """
    if not 0 <= rate <= 1:
        raise ValueError(f"fault rate must be within 0..1, got {rate}")
    per_kind = per_kind or {}
    for kind, p in per_kind.items():
        if p is not None and not 0 <= p <= 1:
            raise ValueError(f"fault probability of {kind} must be within 0..1, got {p}")

    def table(reports: bool) -> dict[FaultKind, float]:
        out: dict[FaultKind, float] = {}
        kinds = [k for k in FaultKind if k.is_report_fault == reports]
        for kind in kinds:
            own = per_kind.get(kind)
            p = own if own is not None else rate / len(kinds)
            if p > 0:
                out[kind] = p
        return out

    probabilities = {
        op: t for op, t in (("*", table(reports=False)), (REPORT_OP, table(reports=True))) if t
    }
    if not probabilities:
        return None
    return FaultPlan(
        probabilities=probabilities,
        retry_after_s=retry_after_s,
        report_delay_ms=report_delay_ms,
    )

"""The user-data feed: execution reports (order updates, trades, algo and list updates).

Consumers either drain it (`drain()`) or subscribe a callback; both see every delivered report.
Report faults from the :class:`~venue.faults.FaultInjector` apply here: a delayed report is held
until the clock passes its release time, a duplicated one is delivered twice (same ``seq``), as
a websocket reconnect replay would.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from svckit.clock import Clock
from venue.faults import REPORT_OP, FaultInjector, FaultKind
from venue.models import ExecutionReport

Subscriber = Callable[[ExecutionReport], None]


class EventFeed:
    def __init__(self, clock: Clock, faults: FaultInjector, *, max_buffer: int = 200_000) -> None:
        self._clock = clock
        self._faults = faults
        # Bounded: a venue nobody drains (make run with only subscribers) must not grow forever.
        self._ready: deque[ExecutionReport] = deque(maxlen=max_buffer)
        self._held: list[tuple[int, int, ExecutionReport]] = []  # (release_ts, order, report)
        self._subscribers: list[Subscriber] = []
        self._n = 0

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call `callback` with every delivered report; returns an unsubscribe function."""
        self._subscribers.append(callback)
        return lambda: self._subscribers.remove(callback)

    def publish(self, report: ExecutionReport) -> None:
        fault = self._faults.next_fault(REPORT_OP)
        if fault is not None and fault.kind is FaultKind.DELAYED_REPORT:
            self._n += 1
            self._held.append((self._clock.now_ms() + fault.delay_ms, self._n, report))
            return
        self._deliver(report)
        if fault is not None and fault.kind is FaultKind.DUPLICATE_REPORT:
            self._deliver(report)

    def _deliver(self, report: ExecutionReport) -> None:
        self._ready.append(report)
        for cb in list(self._subscribers):
            cb(report)

    def release_due(self) -> None:
        """Deliver held (delayed) reports whose time has come, in release order."""
        if not self._held:
            return
        now = self._clock.now_ms()
        due = sorted(h for h in self._held if h[0] <= now)
        self._held = [h for h in self._held if h[0] > now]
        for _, _, report in due:
            self._deliver(report)

    def drain(self) -> list[ExecutionReport]:
        """Execution reports delivered since the last drain (subject to report faults)."""
        self.release_due()
        out = list(self._ready)
        self._ready.clear()
        return out

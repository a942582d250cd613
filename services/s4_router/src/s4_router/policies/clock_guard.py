"""Clock skew guard (spec 004 §H): venue server time vs ours beyond `max_skew_ms` ⇒ no new
entries until it recovers (signed requests outside recvWindow would be refused anyway, and
timestamps on our records would lie). Pure: the caller measures, the guard decides."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SkewChange:
    ok: bool
    skew_ms: int


class ClockSkewGuard:
    def __init__(self, max_skew_ms: int = 1000, *, max_rtt_ms: int | None = None) -> None:
        """`max_rtt_ms`: samples with a longer round trip are discarded. The server stamped its
        time somewhere inside the round trip, so the midpoint estimate can be off by half of
        it: a request held 15 s in a throttle queue is not 7.5 s of skew."""
        self.max_skew_ms = max_skew_ms
        self.max_rtt_ms = max_rtt_ms
        self.skew_ms: int | None = None
        self.ok = True
        self.discarded = 0

    def usable(self, *, sent_ms: int, received_ms: int) -> bool:
        """Whether a sample with this round trip can say anything about the skew."""
        return self.max_rtt_ms is None or received_ms - sent_ms <= self.max_rtt_ms

    def observe(self, *, sent_ms: int, server_ms: int, received_ms: int) -> SkewChange | None:
        """One server-time sample; the local reference is the request's midpoint. A sample
        whose round trip exceeds `max_rtt_ms` is discarded (counted, state unchanged)."""
        if not self.usable(sent_ms=sent_ms, received_ms=received_ms):
            self.discarded += 1
            return None
        skew = server_ms - (sent_ms + received_ms) // 2
        self.skew_ms = skew
        ok = abs(skew) <= self.max_skew_ms
        if ok == self.ok:
            return None
        self.ok = ok
        return SkewChange(ok=ok, skew_ms=skew)

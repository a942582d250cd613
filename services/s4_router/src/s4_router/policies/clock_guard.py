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
    def __init__(self, max_skew_ms: int = 1000) -> None:
        self.max_skew_ms = max_skew_ms
        self.skew_ms: int | None = None
        self.ok = True

    def observe(self, *, sent_ms: int, server_ms: int, received_ms: int) -> SkewChange | None:
        """One server-time sample; the local reference is the request's midpoint."""
        skew = server_ms - (sent_ms + received_ms) // 2
        self.skew_ms = skew
        ok = abs(skew) <= self.max_skew_ms
        if ok == self.ok:
            return None
        self.ok = ok
        return SkewChange(ok=ok, skew_ms=skew)

"""The one place a service-layer :class:`~s4_router.domain.outcomes.Disposition` becomes an
HTTP status (spec §D1: 200 finished, 202 still running, 4xx refused, 503 try again later)."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from s4_router.domain.outcomes import Disposition, Outcome

HTTP_STATUS: Mapping[Disposition, int] = MappingProxyType(
    {
        Disposition.DONE: 200,
        Disposition.RUNNING: 202,
        Disposition.UNKNOWN: 404,
        Disposition.CONFLICT: 409,
        Disposition.INVALID: 422,
        Disposition.UNAVAILABLE: 503,
    }
)


def http_status(outcome: Outcome) -> int:
    return HTTP_STATUS[outcome.kind]

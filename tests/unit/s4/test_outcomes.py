"""Issue 12 point 5: the service layer answers in dispositions; only entrypoints speak HTTP."""

from __future__ import annotations

import dataclasses

from s4_router.domain.outcomes import Disposition, Outcome
from s4_router.entrypoints.statuses import HTTP_STATUS, http_status
from tradekit.enums import RequestResult
from tradekit.orders import OrderResponse


def test_outcome_with_any_disposition_carries_no_transport_field() -> None:
    assert [f.name for f in dataclasses.fields(Outcome)] == ["response", "kind"]


def test_http_status_with_every_disposition_is_the_spec_code() -> None:
    assert dict(HTTP_STATUS) == {
        Disposition.DONE: 200,
        Disposition.RUNNING: 202,
        Disposition.UNKNOWN: 404,
        Disposition.CONFLICT: 409,
        Disposition.INVALID: 422,
        Disposition.UNAVAILABLE: 503,
    }
    reply = OrderResponse(result=RequestResult.FAIL, message="x")
    assert http_status(Outcome(reply)) == 200  # the default: finished
    assert http_status(Outcome(reply, Disposition.INVALID)) == 422


def test_refused_for_content_with_each_disposition_is_exactly_the_4xx_ones() -> None:
    refused = {d for d in Disposition if d.refused_for_content}
    assert refused == {d for d, code in HTTP_STATUS.items() if 400 <= code < 500}

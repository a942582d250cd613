"""S3's service layer reports how a task run or a batch item ended; only `entrypoints/` turns
that into an HTTP status (issue 12 point 5)."""

from __future__ import annotations

import pytest

from s3_strategy.entrypoints.statuses import TASK_STATUS, batch_item
from s3_strategy.service_layer.decide import DecideRefused, ItemFailed, UnknownSymbol
from s3_strategy.service_layer.task_runs import RunDisposition
from svckit.errors import InfraError


def test_every_task_run_disposition_has_one_http_status() -> None:
    assert dict(TASK_STATUS) == {
        RunDisposition.DONE: 200,
        RunDisposition.REPLAYED: 200,
        RunDisposition.IN_PROGRESS: 409,
        RunDisposition.FAILED: 503,
    }


@pytest.mark.parametrize(
    ("error", "status", "message"),
    [
        (UnknownSymbol("NOPEUSDT"), 422, "unknown symbol 'NOPEUSDT'"),
        (DecideRefused("ts", "must be epoch ms"), 422, "ts: must be epoch ms"),
        (InfraError("redis down"), 503, "service unavailable: redis down"),
        (KeyError("x"), 500, "internal error: KeyError: 'x'"),
    ],
)
def test_failed_batch_item_maps_its_cause_to_a_status(
    error: Exception, status: int, message: str
) -> None:
    out = batch_item(ItemFailed("NOPEUSDT", error))
    assert out == {"symbol": "NOPEUSDT", "status": status, "error": message}


def test_decided_batch_item_passes_through_unchanged() -> None:
    decision = {"decision": "skip", "reason": "SPREAD_TOO_WIDE"}
    assert batch_item(decision) is decision

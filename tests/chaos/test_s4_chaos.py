"""1,000 consecutive intents with 5 % injected venue faults: no duplicate order, no overfill,
no lost intent, ≥ 99.9 % filled. Marked slow (a few seconds; well under a minute)."""

from __future__ import annotations

from pathlib import Path

import pytest

from svckit.redisio import RedisClient
from tests.chaos.fault_run import run_campaign


@pytest.mark.slow
async def test_thousand_intents_with_five_percent_faults_lose_duplicate_and_overfill_nothing(
    redis: RedisClient, tmp_path: Path
) -> None:
    res = await run_campaign(redis, tmp_path, n=1000, fault_rate=0.05)
    assert sum(res.faults.values()) > 100, res.faults  # the faults really happened
    assert res.duplicate_orders == []
    assert res.overfills == []
    assert res.fill_mismatches == []
    assert res.lost == []
    assert res.ok_ratio >= 0.999, res.statuses
    assert res.wall_s < 60

"""The fixed-seed subset of `make chaos` inside `make test`: real processes (Redis, the venue
behind its Binance facade, two S4 replicas trading through ccxt), venue and process faults, and
0 violations of the exactly-once checks against the venue's own records.

`CHAOS_TEST_SEED` / `CHAOS_TEST_SCENARIOS` change the subset (default: seed 20261204, 50
scenarios); the campaign's own output (one line per scenario, the summary) is printed with -s.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.chaos.campaign import Config, run_campaign

SEED = int(os.environ.get("CHAOS_TEST_SEED") or 20261204)
SCENARIOS = int(os.environ.get("CHAOS_TEST_SCENARIOS") or 50)


@pytest.mark.timeout(600)
async def test_fixed_seed_campaign_of_real_processes_keeps_exactly_once_against_the_venue(
    tmp_path: Path,
) -> None:
    cfg = Config(
        seed=SEED,
        scenarios=SCENARIOS,
        concurrency=25,
        fault_every_s=1.5,
        scenario_timeout_s=150.0,
        run_dir=tmp_path,
        quiet=True,
    )
    stats, text = await run_campaign(cfg)
    print(text)
    assert stats.done == SCENARIOS, text
    assert sum(stats.process_faults.values()) >= 2, text  # the faults really happened
    assert stats.intents >= SCENARIOS, text
    assert stats.violations == [], text

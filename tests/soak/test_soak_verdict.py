"""The soak driver's verdict and process bookkeeping (the soak itself is `make soak`, minutes
long, not part of `make test`)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.soak.run import (
    descendants,
    is_weight_refusal,
    memory_findings,
    names_weight,
    parse,
    pct,
    process_name,
    rss_mb,
)


def test_memory_bound_judges_growth_after_warm_up_of_service_processes_only() -> None:
    start = {"s3-strategy": 160.0, "s4-router": 95.5, "md-feeder": 71.0, "redis": 6.0}
    end = {"s3-strategy": 170.0, "s4-router": 137.3, "md-feeder": 71.4, "redis": 90.0}
    found = memory_findings(start, end, bound_mb=24)
    assert found == ["s4-router RSS grew 41.8 MB (95.5 → 137.3), bound 24 MB"]
    assert memory_findings(start, end, bound_mb=50) == []


def test_weight_refusals_are_told_by_their_reason_not_by_digits_in_the_order_id() -> None:
    stale = '{"message":"STALE_INTENT: created_ts: intent is 10057 ms old","client_order_id":'
    assert not names_weight(stale + '"soak1-0000429"}', "soak1-0000429")
    assert names_weight('{"message":"venue answered 429 Too Many Requests"}', "c-1")
    assert names_weight('{"reason":"WEIGHT_BUDGET: 5900/6000 used"}')
    ev = {
        "event": "ENTRY_REFUSED",
        "client_order_id": "x-429",
        "data": {"reason": "PRICE_COLLAR", "coid": "x-429"},
    }
    assert not is_weight_refusal(ev)
    assert is_weight_refusal({**ev, "data": {"reason": "venue unavailable: rate limit"}})
    assert not is_weight_refusal({**ev, "event": "ORDER_SENT", "data": {"m": "429"}})


def test_processes_are_found_below_the_root_and_only_stack_parts_are_named() -> None:
    child = subprocess.Popen(  # a long-running `python -m` that binds nothing
        [sys.executable, "-m", "timeit", "-n", "1000000000", "pass"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert child.pid in descendants(os.getpid())
        assert process_name(child.pid) is None  # not a part of the stack
        assert process_name(os.getpid()) is None
        mb = rss_mb(child.pid)
        assert mb is not None and mb > 1
    finally:
        child.kill()
        child.wait()
    assert rss_mb(child.pid) is None and child.pid not in descendants(os.getpid())


def test_percentiles_and_defaults() -> None:
    assert pct([5.0, 1.0, 3.0, 2.0, 4.0], 0.5) == 3.0
    assert pct([1.0] * 99 + [100.0], 0.99) == 100.0
    cfg = parse([])
    assert (cfg.minutes, cfg.seed, cfg.symbols, cfg.rss_bound_mb) == (10.0, 1, ["BTCUSDT"], 24.0)
    assert parse(["--minutes", "1"]).warmup_s == 30.0  # never more than half the run


def test_env_option_sets_variables_in_the_stack_and_refuses_a_bare_name() -> None:
    cfg = parse(["--env", "S4_RECONCILE_INTERVAL_MS=600000", "--env", "MALLOC_ARENA_MAX=2"])
    assert cfg.env == {"S4_RECONCILE_INTERVAL_MS": "600000", "MALLOC_ARENA_MAX": "2"}
    assert parse([]).env == {}
    with pytest.raises(SystemExit) as exc:
        parse(["--env", "MALLOC_ARENA_MAX"])
    assert exc.value.code == 2

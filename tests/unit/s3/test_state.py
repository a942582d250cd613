"""Reading a decision's inputs: feature snapshot parsing, the mkt:tick fallback, derived
funding, and the in-flight ledger tally."""

from __future__ import annotations

import orjson
import pytest

from s3_strategy.adapters.entries import POSITION, Tally, decode, encode, tally
from s3_strategy.adapters.state import derive, parse_snapshot


def snap(**data: object) -> bytes:
    return orjson.dumps({"symbol": "BTCUSDT", "ts": 1000, **data})


def test_parse_snapshot_with_numbers_keeps_floats_and_drops_the_rest() -> None:
    st = parse_snapshot(snap(mid=65000, spread_bps=0.2, note="x", flag=True, nested={}), None)
    assert st.features == {"mid": 65000.0, "spread_bps": 0.2}
    assert st.ts == 1000 and st.sources == ["feat:last"] and st.error is None


def test_derive_with_funding_rate_only_derives_abs_next_funding() -> None:
    st = parse_snapshot(snap(mid=1.0, funding_rate=-0.0007), None)
    derive(st.features)
    assert st.features["funding_next_abs"] == 0.0007
    given = {"funding_rate": -0.0007, "funding_next_abs": 0.0001}
    derive(given)
    assert given["funding_next_abs"] == 0.0001


def test_parse_snapshot_with_no_snapshot_falls_back_to_the_tick() -> None:
    tick = orjson.dumps(
        {
            "symbol": "BTCUSDT",
            "ts": 900,
            "bid": "99",
            "ask": "101",
            "bid_qty": "3",
            "ask_qty": "1",
            "last": "100.5",
        }
    )
    st = parse_snapshot(None, tick)
    assert st.features == {
        "mid": 100.0,
        "spread_bps": 200.0,
        "depth_top1_usdt": 101.0,
        "price": 100.5,
    }
    assert st.ts == 900 and st.sources == ["mkt:tick"]


def test_parse_snapshot_with_snapshot_lacking_mid_takes_older_ts_of_both() -> None:
    tick = orjson.dumps({"ts": 700, "bid": 1, "ask": 1, "bid_qty": 1, "ask_qty": 1})
    st = parse_snapshot(snap(atr_14=2.0), tick)
    assert st.ts == 700 and st.features["mid"] == 1.0 and st.features["atr_14"] == 2.0


def test_parse_snapshot_with_mid_present_ignores_the_tick() -> None:
    st = parse_snapshot(snap(mid=5.0), b"{not json")
    assert st.sources == ["feat:last"] and st.error is None


@pytest.mark.parametrize("raw", [b"{oops", b"[1,2]", b'"text"', b"NaN"])
def test_parse_snapshot_with_malformed_snapshot_reports_error(raw: bytes) -> None:
    st = parse_snapshot(raw, None)
    assert st.error is not None and st.error.startswith("feat:last")


def test_parse_snapshot_with_malformed_tick_reports_error() -> None:
    st = parse_snapshot(None, orjson.dumps({"bid": "x"}))
    assert st.error is not None and "mkt:tick" in st.error and "mid" not in st.features


def test_tally_with_entries_counts_symbol_market_and_sums_all_margins() -> None:
    ledger = {
        "a": encode("BTCUSDT", "FUT", "19.5", 1),
        "b": encode("BTCUSDT", "SPOT", "195", 2),
        "c": encode("ETHUSDT", "FUT", "10", 3),
        "d": "garbage",
        "e": encode("BTCUSDT", "FUT", "20", 4, POSITION),
        "f": "BTCUSDT|FUT|5|5",  # written before positions were tracked: an entry
    }
    assert tally(ledger, "BTCUSDT", "FUT") == Tally(2, 1, 229.5, 20.0)
    assert tally(ledger, "ETHUSDT", "SPOT") == Tally(0, 0, 229.5, 20.0)
    assert tally({}, "BTCUSDT", "FUT") == Tally(0, 0, 0.0, 0.0)
    assert decode(ledger["a"]) == ("BTCUSDT", "FUT", 19.5, 1, "E")
    assert decode(ledger["f"]) == ("BTCUSDT", "FUT", 5.0, 5, "E")

"""Liquidity probe decisions: delay (bounded), split, degrade."""

from __future__ import annotations

from decimal import Decimal as D

from s4_router.policies.liquidity import LiquidityConfig, ProbeAction, min_tradable_qty, probe
from s4_router.policies.model import Book
from tests.unit.s4.helpers import BTC, book
from tradekit.enums import OrderRole, Side

CFG = LiquidityConfig(spread_bps_max=D(3), depth_top1_usdt_min=D(200), max_child_fraction=D("0.5"))


def test_probe_with_normal_book_goes_with_full_quantity() -> None:
    d = probe(
        book(), side=Side.BUY, role=OrderRole.TAKER, qty=D("0.01"), inst=BTC, cfg=CFG, delayed_ms=0
    )
    assert d.action is ProbeAction.GO and d.qty == D("0.01") and not d.degraded
    assert d.top1_qty == D(2) and d.as_event()["spread_bps"] == "0.31"


def test_probe_with_wide_spread_delays_until_budget_then_degrades() -> None:
    wide = book("64000", "66000")
    d = probe(
        wide, side=Side.BUY, role=OrderRole.MAKER, qty=D("0.01"), inst=BTC, cfg=CFG, delayed_ms=0
    )
    assert d.action is ProbeAction.DELAY and d.delay_ms == 250 and d.reasons == ("spread_wide",)
    d = probe(
        wide, side=Side.BUY, role=OrderRole.MAKER, qty=D("0.01"), inst=BTC, cfg=CFG, delayed_ms=2000
    )
    assert d.action is ProbeAction.GO and d.degraded


def test_probe_with_taker_over_depth_fraction_splits_to_the_fraction() -> None:
    d = probe(
        book(qty="0.010"),
        side=Side.BUY,
        role=OrderRole.TAKER,
        qty=D("0.02"),
        inst=BTC,
        cfg=CFG.model_copy(update={"depth_top1_usdt_min": None}),
        delayed_ms=0,
    )
    assert d.action is ProbeAction.SPLIT and d.qty == D("0.005")


def test_probe_with_maker_over_depth_fraction_does_not_split() -> None:
    d = probe(
        book(qty="0.010"),
        side=Side.BUY,
        role=OrderRole.MAKER,
        qty=D("0.02"),
        inst=BTC,
        cfg=CFG.model_copy(update={"depth_top1_usdt_min": None}),
        delayed_ms=0,
    )
    assert d.action is ProbeAction.GO and d.qty == D("0.02")


def test_probe_with_book_too_thin_to_split_delays_then_sends_minimum_child() -> None:
    thin = book(qty="0.0001")
    cfg = CFG.model_copy(update={"depth_top1_usdt_min": None})
    d = probe(
        thin, side=Side.SELL, role=OrderRole.TAKER, qty=D("0.01"), inst=BTC, cfg=cfg, delayed_ms=0
    )
    assert d.action is ProbeAction.DELAY and "too_thin_to_split" in d.reasons
    d = probe(
        thin,
        side=Side.SELL,
        role=OrderRole.TAKER,
        qty=D("0.01"),
        inst=BTC,
        cfg=cfg,
        delayed_ms=5000,
    )
    assert d.action is ProbeAction.SPLIT and d.degraded and d.qty == D("0.001")


def test_probe_with_one_sided_book_delays_then_goes_degraded() -> None:
    one = Book(ts=0, bids=((D(1), D(1)),), asks=())
    d = probe(
        one, side=Side.BUY, role=OrderRole.TAKER, qty=D("0.01"), inst=BTC, cfg=CFG, delayed_ms=0
    )
    assert d.action is ProbeAction.DELAY
    d = probe(
        one, side=Side.BUY, role=OrderRole.TAKER, qty=D("0.01"), inst=BTC, cfg=CFG, delayed_ms=9999
    )
    assert d.action is ProbeAction.GO and d.degraded


def test_min_tradable_qty_with_min_notional_rounds_up_to_step() -> None:
    assert min_tradable_qty(BTC, D(65000)) == D("0.001")
    assert min_tradable_qty(BTC, D(1000)) == D("0.005")

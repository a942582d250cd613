"""In-process benchmark of the S3 decision pipeline (no I/O): 5 L0 gates + N rules + L2 table +
sizing + SL/TP + intent body, i.e. `Engine.pre()` + `Engine.finish()` as `/decide` runs them.

    .venv/bin/python tests/bench/bench_s3_engine.py            # 20 and 200 rules
    .venv/bin/python tests/bench/bench_s3_engine.py --n 50000   # more samples

Targets (issue 4): 20 rules p50 ≤ 25 µs, p99 ≤ 100 µs; 200 rules p99 ≤ 250 µs. Baseline in the
same run: the same pipeline with one rule. Prints the
figures and whether each target is met; exit status 0 either way (a benchmark, not a test).
The rule sets are synthetic but shaped like the fixtures: 2–3 leaf allOf/anyOf trees, a few
`not`, mostly size_mult near 1 and skip_entry rules that do not fire, so every rule is evaluated.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from s3_strategy.adapters.configstore import assemble, build_engine, limits_of  # noqa: E402
from s3_strategy.config import Settings  # noqa: E402
from s3_strategy.domain.engine import Engine  # noqa: E402
from s3_strategy.domain.ml import MlInput  # noqa: E402
from svckit.store.seed import load_fixtures  # noqa: E402
from tests.helpers import S3_TOKEN  # noqa: E402
from tradekit.enums import Market  # noqa: E402

FEATURES: dict[str, float] = {
    "mid": 65000.5,
    "price": 65000.5,
    "spread_bps": 0.15,
    "depth_top1_usdt": 50_000.0,
    "depth_top5_usdt": 250_000.0,
    "funding_rate": 0.0001,
    "funding_next_abs": 0.0001,
    "atr_14": 120.0,
    "rv_1h": 0.01,
    "rv_pctile_30d": 0.4,
    "ma7_5m": 65010.0,
    "ma25_5m": 64990.0,
    "ma_cross": 1.0,
    "rho_usdttwd_14": 0.1,
}
NOW = 1_700_000_000_000


def synthetic_rules(n: int, seed: int = 7) -> list[dict[str, Any]]:
    """n rules for BTCUSDT that all evaluate and never skip (worst case: nothing short-circuits)."""
    rng = random.Random(seed)
    # (feature, op, threshold) leaves that are False on FEATURES, and ones that are True.
    false_leaves = [
        ("spread_bps", ">", 2.5),
        ("rv_pctile_30d", ">", 0.9),
        ("ma_cross", "==", -1),
        ("funding_next_abs", ">=", 0.0004),
        ("depth_top1_usdt", "<", 1000),
    ]
    true_leaves = [
        ("rv_pctile_30d", "<", 0.5),
        ("spread_bps", "<=", 1),
        ("ma_cross", "!=", -1),
        ("rho_usdttwd_14", ">", -0.3),
        ("rv_1h", "<", 0.02),
    ]
    rules = []
    for i in range(n):
        skip = i % 4 == 0
        if skip:  # a skip_entry rule: an allOf containing a false leaf never fires
            leaves = [rng.choice(true_leaves), rng.choice(false_leaves)]
            when: dict[str, Any] = {"allOf": [{"f": f, "op": o, "v": v} for f, o, v in leaves]}
            action: dict[str, Any] = {"type": "skip_entry"}
        else:
            leaves = [rng.choice(true_leaves) for _ in range(rng.choice((2, 3)))]
            nodes: list[dict[str, Any]] = [{"f": f, "op": o, "v": v} for f, o, v in leaves]
            if i % 5 == 1:
                f, o, v = rng.choice(false_leaves)
                nodes.append({"not": {"f": f, "op": o, "v": v}})
            when = {"allOf": nodes} if i % 3 else {"anyOf": nodes}
            action = {"type": "size_mult", "value": rng.choice((0.95, 0.98, 1.02, 1.05))}
        rules.append(
            {
                "rule_id": f"B-{i:03d}",
                "priority": 10 + i,
                "applies": {"symbols": ["BTCUSDT"], "services": ["s3-strategy"]},
                "when": when,
                "action": action,
                "status": "ENABLED",
            }
        )
    return rules


def engine_with(n_rules: int) -> Engine:
    fx = load_fixtures(REPO / "fixtures")
    content = assemble(
        bundle_id="bench",
        rev=f"bench-{n_rules}",
        params=fx.bundle["params"],
        rules=synthetic_rules(n_rules),
        factors=list(fx.factors),
        instruments=[i.model_dump(mode="json") for i in fx.instruments],
        route_tables={"default": {"rev": fx.route_table_rev, "bands": list(fx.route_bands)}},
        limits=limits_of(Settings(api_token=S3_TOKEN, s4_url=None)),
    )
    return build_engine(content)


def measure(engine: Engine, n: int) -> list[float]:
    ml = MlInput(0.65, "mock-const-0.65")
    samples: list[float] = []
    clock = time.perf_counter_ns
    for i in range(n + n // 10):
        t = clock()
        pre = engine.pre(
            symbol="BTCUSDT",
            market=Market.FUT,
            features=FEATURES,
            feature_ts=NOW - 100,
            now_ms=NOW,
            side_hint=None,
            open_entries=0,
            margin_in_flight=0.0,
        )
        out = engine.finish(pre, ml, signal_id="bench").as_dict()
        dt = clock() - t
        if i >= n // 10:  # warm-up excluded
            samples.append(dt / 1000)
    assert out["decision"] == "open", out
    return samples


def pct(sorted_us: list[float], q: float) -> float:
    return sorted_us[min(len(sorted_us) - 1, int(len(sorted_us) * q))]


def run(n: int = 30_000) -> dict[str, Any]:
    """µs per decision for 20 and 200 rules, beside 1 rule (in effect the gates, L2 table,
    sizing, SL/TP and the intent body: with no rule the decision skips NO_RULES) measured in the
    same run."""
    targets: dict[int, tuple[float | None, float | None]] = {
        1: (None, None),
        20: (25.0, 100.0),
        200: (None, 250.0),
    }
    out: dict[str, Any] = {"name": "s3_engine", "params": {"n": n}, "rules": {}}
    for n_rules, (p50_max, p99_max) in targets.items():
        engine = engine_with(n_rules)
        gc.collect()
        gc.disable()
        try:
            us = sorted(measure(engine, n))
        finally:
            gc.enable()
        p50, p99 = pct(us, 0.50), pct(us, 0.99)
        met = (p50_max is None or p50 <= p50_max) and (p99_max is None or p99 <= p99_max)
        out["rules"][str(n_rules)] = {
            "n": len(us),
            "p50": p50,
            "p90": pct(us, 0.90),
            "p99": p99,
            "max": us[-1],
            "mean": statistics.fmean(us),
            "target": None
            if p99_max is None
            else {"p50_us": p50_max, "p99_us": p99_max, "met": met},
        }
    base = out["rules"]["1"]["p50"]
    out["ratio_p50_to_1_rule"] = {k: v["p50"] / base for k, v in out["rules"].items()}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=30_000, help="decisions per rule-set size")
    ap.add_argument("--json", type=Path, default=None, help="write the figures here as JSON")
    args = ap.parse_args()
    print(f"in-process S3 pipeline, {args.n} decisions each (µs per decision)")
    out = run(args.n)
    for n_rules, r in out["rules"].items():
        t = r["target"]
        verdict = (
            "baseline"
            if t is None
            else f"target p50≤{t['p50_us'] or '-'} p99≤{t['p99_us']}: "
            f"{'MET' if t['met'] else 'MISSED'}"
        )
        print(
            f"  {n_rules:>3} rules: p50 {r['p50']:6.1f}  p90 {r['p90']:6.1f}  p99 {r['p99']:6.1f}  "
            f"max {r['max']:7.1f}  mean {r['mean']:6.1f}  "
            f"×{out['ratio_p50_to_1_rule'][n_rules]:.1f} of 1 rule  {verdict}"
        )
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

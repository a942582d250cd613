"""A short seeded chaos campaign (tests/chaos/campaign.py) whose summary the benchmark report
shows: real processes (Redis with AOF, the venue facade with its fault profile, two S4
replicas), venue and process faults, every scenario checked against the venue's own records.

    .venv/bin/python tests/bench/bench_chaos.py                      # 50 scenarios, seed 42
    .venv/bin/python tests/bench/bench_chaos.py --scenarios 200 --seed 7 --json out.json

The campaign itself is `make chaos` (1,000 scenarios by default); this runs the same code with
fewer scenarios and returns its figures as data: scenarios done, intents and their outcomes,
process faults, HTTP errors seen by the clients, scenario durations, and the violations (target
0). Exit status 1 when a violation was found or a scenario did not finish.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.chaos.campaign import Config, _pct, run_campaign  # noqa: E402


def run(
    scenarios: int = 50, seed: int = 42, concurrency: int = 12, fault_rate: float = 0.03
) -> dict[str, Any]:
    """The campaign's figures as data (see the module doc)."""
    cfg = Config(seed=seed, scenarios=scenarios, concurrency=concurrency, fault_rate=fault_rate)
    stats, text = asyncio.run(run_campaign(cfg))
    d = stats.durations
    return {
        "name": "chaos",
        "params": {
            "scenarios": scenarios,
            "seed": seed,
            "concurrency": concurrency,
            "fault_rate": fault_rate,
            "process_faults": cfg.process_faults,
        },
        "done": stats.done,
        "intents": stats.intents,
        "outcomes": dict(stats.statuses),
        "dead_lettered": stats.dead_lettered,
        "process_faults": dict(stats.process_faults),
        "http_errors": dict(stats.http_errors),
        "scenario_s": {"p50": _pct(d, 50), "p95": _pct(d, 95), "max": max(d, default=0.0)},
        "violations": [
            {"scenario": v.scenario, "kind": v.kind, "coid": v.coid, "evidence": v.evidence}
            for v in stats.violations
        ],
        "target": {"violations": 0, "met": not stats.violations and stats.done == scenarios},
        "summary": text,
        "replay": f"make chaos SEED={seed} CHAOS_SCENARIOS={scenarios}",
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--scenarios", type=int, default=50)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--concurrency", type=int, default=12)
    ap.add_argument("--fault-rate", type=float, default=0.03)
    ap.add_argument("--json", type=Path, default=None, help="write the figures here as JSON")
    a = ap.parse_args()
    out = run(a.scenarios, a.seed, a.concurrency, a.fault_rate)
    print(out["summary"], flush=True)
    if a.json:
        a.json.write_text(json.dumps(out, indent=1))
    return 0 if out["target"]["met"] else 1


if __name__ == "__main__":
    raise SystemExit(main())

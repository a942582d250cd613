"""The default stack under one bracketed live decision per second per symbol (issue 10's target).

    .venv/bin/python tests/bench/bench_live_decisions.py                 # 10 minutes
    .venv/bin/python tests/bench/bench_live_decisions.py --minutes 2 --symbols BTCUSDT,ETHUSDT

The soak driver (tests/soak/run.py, `make soak`) with issue 10's load alone: `make run`'s stack
(scripts/devstack.py: embedded Redis, SQLite, the feeder, S4 with the simulator, S3) on free
ports, one live `POST /decide` per second per symbol — the default bundle, so every entry
carries SL/TP — and a dry-run decision beside each as the baseline measured in the same run; no
extra dry-run decisions, no extra intents. It reports, from S4's own records:

* entries S4 refused for request weight (`ENTRY_REFUSED` on `router:events` whose reason or
  message names the weight budget or a venue 429) — target 0;
* S3 skips `LOCK_BUSY` (S4 holding `lock:pos:{symbol}`) — target 0;
* live decisions that opened, and the protective orders S4 placed for them;
* S4's weight budget (its `/health`), RSS per process, latencies.

Exits 0 when both targets hold, 1 otherwise (a benchmark with a verdict, not a test of
`make test`). The memory bound is `make soak`'s business: not judged here.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.soak.run import Config, run  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--symbols", default="BTCUSDT")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    cfg = Config(
        minutes=args.minutes,
        seed=args.seed,
        symbols=[s.strip().upper() for s in args.symbols.split(",") if s.strip()],
        order_rate=0.0,
        dry_rate=0.0,
        step_s=60.0,
        warmup_s=min(60.0, args.minutes * 30),
        memory_verdict=False,
    )
    return run(cfg)[0]


if __name__ == "__main__":
    raise SystemExit(main())

"""`make fuzz`: the long schemathesis run against both services (FUZZ_EXAMPLES per operation).

    python -m tests.fuzz.run --examples 200 [--seed N] [--service s3|s4]

Starts an embedded Redis, serves S3 and S4 (SQLite in a scratch directory, S4 on the in-process
simulator), prints a line per operation as it finishes (examples, failures, seconds, ETA) and a
summary; exits 1 if any response was a 5xx or broke the published schema.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

from svckit.embedded_redis import EmbeddedRedis
from tests.fuzz.harness import OperationResult, fuzz_operations, serve
from tests.helpers import TOKEN_ENV


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=200, help="examples per operation")
    parser.add_argument("--seed", type=int, default=None, help="Hypothesis seed (default: fixed)")
    parser.add_argument("--service", choices=("s3", "s4"), action="append")
    args = parser.parse_args(argv)
    # The services log refused input and failed task steps as warnings: expected by the
    # thousand here; the per-operation lines and the summary are the report.
    logging.basicConfig(level=logging.ERROR)
    os.environ.update(TOKEN_ENV)  # the services refuse to start without their tokens
    services = args.service or ["s3", "s4"]
    seed = "derandomized" if args.seed is None else str(args.seed)
    print(f"fuzz: {', '.join(services)}; {args.examples} examples per operation; seed {seed}")
    results: list[OperationResult] = []
    started = time.perf_counter()
    with EmbeddedRedis() as redis, tempfile.TemporaryDirectory(prefix="fuzz-") as tmp:
        for name in services:
            with serve(name, redis.addresses, Path(tmp) / name) as svc:
                total = sum(1 for _ in svc.openapi.get("paths", {}).values() for _ in _)
                done = 0
                svc_start = time.perf_counter()

                def report(r: OperationResult, total: int = total, t0: float = svc_start) -> None:
                    nonlocal done
                    done += 1
                    eta = (time.perf_counter() - t0) / done * (total - done)
                    state = "ok" if r.ok else ("ERROR" if r.error else f"{len(r.failures)} FAIL")
                    print(
                        f"[{done:>3}/{total}] {r.label:<48} {r.examples:>5} ex "
                        f"{r.seconds:6.1f}s  {state:<8} eta {eta:5.0f}s",
                        flush=True,
                    )

                results += fuzz_operations(
                    svc, max_examples=args.examples, seed=args.seed, on_result=report
                )
    bad = [r for r in results if not r.ok]
    print("\n== summary")
    print(
        f"operations {len(results)}, examples {sum(r.examples for r in results)}, "
        f"failing operations {len(bad)}, seconds {time.perf_counter() - started:.1f}"
    )
    for r in bad:
        print(f"\n-- {r.label}")
        if r.error:
            print(f"   error: {r.error}")
        for f in r.failures:
            print("   " + f.replace("\n", "\n   "))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

"""``python -m venue.facade``: the default venue (wall clock) behind the Binance facade.

    python -m venue.facade --port 8765 --api-key KEY --api-secret SECRET
    python -m venue.facade --port 0 --fault-rate 0.05 --fault-seed 42 --weight-limit 2400

Faults are a seeded profile (:func:`venue.faults.profile_plan`): ``--fault-rate`` (0..1, the
share of requests that meet a fault, split evenly over the kinds), ``--fault-seed``, and one
knob per kind (``--fault-rate-limit``, ``--fault-server-error``, ``--fault-connect-timeout``,
``--fault-timeout-before-accept``, ``--fault-timeout-after-accept``, ``--fault-dropped-ack``,
``--fault-delayed-report``, ``--fault-duplicate-report``) overriding that kind's share. Every
flag also reads ``VENUE_<FLAG>`` (``VENUE_FAULT_RATE``, ``VENUE_FAULT_SEED``, ...): the same
knobs as S4's in-process simulator (``S4_SIM_FAULT_*``). With ``--port 0`` the chosen port is
printed as ``venue.facade listening on http://HOST:PORT``.

Point ccxt at it by rewriting ``exchange.urls['api']`` to ``http://127.0.0.1:8765/...`` (S4's
``CcxtExchange(base_url=...)`` does that). The market is stepped by a background pump so that
resting and conditional orders match even when no request arrives.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import sys

import uvicorn

from svckit.clock import WallClock
from venue.defaults import default_venue
from venue.facade.app import create_facade
from venue.faults import FAULT_KNOBS, FaultInjector, profile_plan


def _env(name: str) -> str | None:
    return os.environ.get(f"VENUE_{name.upper().replace('-', '_')}")


def _knob(
    p: argparse.ArgumentParser, flag: str, type_: type[float], default: float, help: str = ""
) -> None:
    """`--flag`, defaulting to `VENUE_<FLAG>` (unset or empty: `default`)."""
    p.add_argument(f"--{flag}", type=type_, default=type_(_env(flag) or default), help=help or None)


def _parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m venue.facade", description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--api-key", default=os.environ.get("VENUE_API_KEY", "venue-key"))
    p.add_argument("--api-secret", default=os.environ.get("VENUE_API_SECRET", "venue-secret"))
    _knob(p, "seed", int, 7)
    p.add_argument("--no-replay", action="store_true", help="synthetic BTCUSDT instead of replay")
    p.add_argument("--pump-ms", type=int, default=250, help="market stepping period")
    p.add_argument("--log-level", default="info")
    _knob(p, "weight-limit", int, 6000, "request weight per minute (X-MBX-USED-WEIGHT-1M budget)")
    _knob(p, "stall-s", float, 30, "an injected timeout holds the answer this long, then 408")
    _knob(p, "fault-rate", float, 0)
    _knob(p, "fault-seed", int, 0)
    _knob(p, "fault-retry-after-s", float, 1)
    _knob(p, "fault-report-delay-ms", int, 2000)
    for knob in FAULT_KNOBS:
        flag = knob.replace("_", "-")
        p.add_argument(
            f"--fault-{flag}",
            dest=f"fault_{knob}",
            type=float,
            default=float(raw) if (raw := _env(f"fault_{knob}")) else None,
            help=f"probability of {knob}",
        )
    p.add_argument(
        "--dialect",
        choices=["binance", "mexc"],
        default="binance",
        help="mexc: MEXC spot v3 paths and JSON (docs/venue.md, MEXC)",
    )
    return p.parse_args(argv)


async def _serve(args: argparse.Namespace) -> None:
    plan = profile_plan(
        args.fault_rate,
        {kind: getattr(args, f"fault_{knob}") for knob, kind in FAULT_KNOBS.items()},
        retry_after_s=args.fault_retry_after_s,
        report_delay_ms=args.fault_report_delay_ms,
    )
    venue = default_venue(
        clock=WallClock(),
        seed=args.seed,
        replay=not args.no_replay,
        faults=FaultInjector(plan, seed=args.fault_seed),
    )
    venue.limiter.limit = args.weight_limit
    app = create_facade(
        venue,
        api_key=args.api_key,
        api_secret=args.api_secret,
        stall_s=args.stall_s,
        dialect=args.dialect,
    )
    lock = app.state.venue_lock
    config = uvicorn.Config(
        app, host=args.host, port=args.port, log_level=args.log_level, lifespan="off", ws="none"
    )
    server = uvicorn.Server(config)

    async def pump() -> None:
        while not server.should_exit:
            with lock:
                venue.sync()
            await asyncio.sleep(args.pump_ms / 1000)

    pump_task = asyncio.create_task(pump())

    # Bound here (not by uvicorn) so that `--port 0` can print the port the OS chose.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Inherited by accepted connections. asyncio sets TCP_NODELAY itself only on sockets whose
    # proto is IPPROTO_TCP, which a hand-made socket's 0 is not: without it every answer waited
    # ~40 ms for the client's delayed ACK (a real venue's latency is a separate, explicit knob).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((args.host, args.port))
    host, port = sock.getsockname()[:2]
    print(f"venue.facade listening on http://{host}:{port}", flush=True)
    try:
        await server.serve(sockets=[sock])
    finally:
        pump_task.cancel()


def main(argv: list[str] | None = None) -> int:
    args = _parse(sys.argv[1:] if argv is None else argv)
    asyncio.run(_serve(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Issue 12 point 5: `s4_router` installs and runs without `venue` (the simulator).

`venue` is only S4's `[sim]` extra (what `make run` / `make test` install): with a ccxt exchange
S4 must import, build its settings, bootstrap and serve without it. A subprocess refuses any
import of `venue` (a meta-path finder ahead of the real ones), then runs the real app — lifespan,
bootstrap, ccxt's `load_markets` — against the venue's Binance facade served by this process
(a stand-in for the exchange, which the subprocess reaches only over HTTP).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.conftest import FIXTURES, REPO
from tests.contract.facade_harness import API_KEY, API_SECRET, SwappableApp, facade_venue, plug
from tests.facade_server import FacadeServer
from tests.helpers import S4_TOKEN

BLOCK_VENUE = textwrap.dedent(
    """
    import importlib.abc
    import sys


    class RefuseVenue(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "venue" or name.startswith("venue."):
                raise ModuleNotFoundError(f"No module named {name!r} (blocked)", name=name)
            return None


    sys.meta_path.insert(0, RefuseVenue())
    """
)

RUN_S4 = textwrap.dedent(
    """
    import asyncio
    import json

    import httpx

    import s4_router
    from s4_router.adapters.exchange.ccxt_client import CcxtExchange
    from s4_router.config import Settings
    from s4_router.entrypoints.api import create_app


    async def main() -> dict:
        settings = Settings()
        app = create_app(settings)
        auth = {"Authorization": "Bearer " + settings.api_token.get_secret_value()}
        transport = httpx.ASGITransport(app=app)
        async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=transport, base_url="http://s4"
        ) as client:
            health = await client.get("/health")
            sim = await client.get("/sim/orders", headers=auth)
            exchange = app.state.container.exchange
        return {
            "health": health.status_code,
            "body": health.json(),
            "sim_orders": sim.status_code,
            "ccxt": isinstance(exchange, CcxtExchange),
            "venue_loaded": sorted(m for m in sys.modules if m.split(".")[0] == "venue"),
        }


    print(json.dumps(asyncio.run(main())))
    """
)


def _run(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", BLOCK_VENUE + code],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_blocker_refuses_venue() -> None:
    """The finder really stands in the way (else the test below would prove nothing)."""
    out = _run("import venue.faults\n", dict(os.environ))
    assert out.returncode != 0 and "No module named 'venue' (blocked)" in out.stderr


def test_s4_exchange_sim_without_venue_is_a_config_error_naming_the_extra() -> None:
    code = textwrap.dedent(
        """
        from s4_router.config import Settings
        from svckit.errors import ConfigError
        from svckit.settings import load_settings

        try:
            load_settings(Settings, exchange="sim")
        except ConfigError as exc:
            print("ConfigError:", exc)
        """
    )
    out = _run(code, dict(os.environ, S4_API_TOKEN=S4_TOKEN))
    assert out.returncode == 0, out.stderr[-3000:]
    assert "ConfigError:" in out.stdout and "s4-router[sim]" in out.stdout, out.stdout


def test_s4_with_a_ccxt_exchange_imports_bootstraps_and_serves_without_venue(
    redis_addresses: list[str], tmp_path: Path
) -> None:
    venue, _clock = facade_venue()
    slot = SwappableApp()
    plug(slot, venue)
    with FacadeServer(slot, log_level="critical") as srv:
        env = {
            **os.environ,
            "S4_EXCHANGE": "binanceusdm",
            "S4_BINANCE_KEY": API_KEY,
            "S4_BINANCE_SECRET": API_SECRET,
            "S4_TESTNET": "false",
            "S4_EXCHANGE_BASE_URL": srv.url,
            "S4_API_TOKEN": S4_TOKEN,
            "S4_REDIS_ADDRESSES": ",".join(redis_addresses),
            "S4_DATA_DIR": str(tmp_path),
            "S4_FIXTURES_DIR": str(FIXTURES),
            "S4_ROUTE_TABLE_PATH": str(FIXTURES / "route_table.json"),
            "S4_LOG_JSON": "false",
            "S4_LOG_LEVEL": "WARNING",
            # Fault knobs of the in-process simulator: ignored (and never imported) here.
            "S4_SIM_FAULT_RATE": "0.5",
        }
        out = _run(RUN_S4, env)
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["venue_loaded"] == []
    assert report["ccxt"] is True
    assert report["health"] == 200, report["body"]
    assert report["body"]["status"] == "ok"
    assert report["sim_orders"] == 404  # GET /sim/orders is not even routed

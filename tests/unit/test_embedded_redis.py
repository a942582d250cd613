"""The embedded Redis launcher: real servers, clean stop, cluster with room for bus ports."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from svckit.embedded_redis import EmbeddedRedis, EmbeddedRedisError, find_redis_server, free_port


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); check its state too.
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def _ping(addr: str) -> bytes:
    host, _, port = addr.rpartition(":")
    with socket.create_connection((host, int(port)), timeout=2) as s:
        s.sendall(b"*1\r\n$4\r\nPING\r\n")
        return s.recv(64)


def test_start_with_single_mode_serves_ping_and_stops_without_leftovers() -> None:
    server = EmbeddedRedis().start()
    pids, workdir = server.pids, server.workdir
    assert workdir is not None and workdir.exists()
    assert _ping(server.addresses[0]) == b"+PONG\r\n"
    server.stop()
    assert not any(_pid_alive(p) for p in pids), "redis-server left running or as a zombie"
    assert not workdir.exists(), "working directory left behind"


def test_start_with_cluster_mode_forms_three_masters_with_bus_room() -> None:
    with EmbeddedRedis(cluster=True) as server:
        assert len(server.addresses) == 3
        ports = [int(a.rpartition(":")[2]) for a in server.addresses]
        assert all(p + 10000 <= 65535 for p in ports)
        host, _, port = server.addresses[0].rpartition(":")
        with socket.create_connection((host, int(port)), timeout=2) as s:
            s.sendall(b"*2\r\n$7\r\nCLUSTER\r\n$4\r\nINFO\r\n")
            info = s.recv(4096).decode()
        assert "cluster_state:ok" in info
        assert "cluster_size:3" in info
        pids = server.pids
    assert not any(_pid_alive(p) for p in pids)


def test_find_binary_with_bad_env_override_raises_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("REDIS_SERVER_BIN", "/nonexistent/redis-server")
    with pytest.raises(EmbeddedRedisError, match="REDIS_SERVER_BIN"):
        find_redis_server()


def test_find_binary_without_env_falls_back_to_a_runnable_server(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("REDIS_SERVER_BIN", raising=False)
    assert os.access(find_redis_server(), os.X_OK)


def test_free_port_with_bus_leaves_room_for_the_cluster_bus() -> None:
    for _ in range(20):
        port = free_port(with_bus=True)
        assert port > 1024 and port + 10000 <= 65535


def test_cluster_with_fewer_than_three_masters_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 3"):
        EmbeddedRedis(cluster=True, masters=2)


def _cmd(addr: str, *args: str) -> bytes:
    host, _, port = addr.rpartition(":")
    payload = f"*{len(args)}\r\n".encode()
    for a in args:
        payload += f"${len(a.encode())}\r\n{a}\r\n".encode()
    with socket.create_connection((host, int(port)), timeout=2) as s:
        s.sendall(payload)
        return s.recv(65536)


def test_restart_with_data_dir_finds_the_stream_entry_and_keys_again(tmp_path: Path) -> None:
    data = tmp_path / "redis"
    with EmbeddedRedis(data_dir=data) as server:
        entry_id = _cmd(server.addresses[0], "XADD", "orders:intent", "*", "intent_id", "i-1")
        assert entry_id.startswith(b"$")
        assert _cmd(server.addresses[0], "SET", "idem:c-1", "x", "EX", "3600") == b"+OK\r\n"
    assert data.is_dir(), "a persistent directory survives stop()"
    assert list(data.rglob("appendonly*")), "the append-only file is kept under data_dir"
    with EmbeddedRedis(data_dir=data) as again:
        got = _cmd(again.addresses[0], "XRANGE", "orders:intent", "-", "+")
        assert entry_id.split(b"\r\n")[1] in got
        assert b"i-1" in got
        assert _cmd(again.addresses[0], "GET", "idem:c-1") == b"$1\r\nx\r\n"


def test_default_without_data_dir_keeps_no_append_only_file() -> None:
    with EmbeddedRedis() as server:
        reply = _cmd(server.addresses[0], "CONFIG", "GET", "appendonly")
        assert b"no" in reply


def test_data_dir_with_cluster_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="single node"):
        EmbeddedRedis(cluster=True, data_dir=tmp_path)

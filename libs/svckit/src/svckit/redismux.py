"""A multiplexed, pipelined Redis connection for hot-path *reads* on a single-node Redis.

Why: redis-py's asyncio client spends ≈ 70 µs of CPU on a two-command pipeline (connection pool
checkout, retry wrapper, per-read timeout contexts, pipeline reset); S3 reads its features and
the entries ledger on every decision, so that was a quarter of a decision's cost. Redis answers
the commands of one connection in order, so any number of coroutines can share one connection:
each call writes its commands and queues one future; `data_received` hands replies to the
futures in order (hiredis parses). Measured on the reference VM (8 concurrent callers,
GET + HGETALL): redis-py pipeline 69–71 µs CPU per call, this 8–11 µs.

Scope, on purpose narrow:

* single-node Redis only (`RedisMux.for_addresses` returns None for a cluster: callers keep
  redis-py's cluster client there, which routes by slot and follows MOVED/ASK);
* idempotent reads only (GET, HGETALL, MGET …): a call whose connection breaks fails with
  `RedisUnavailable` and is *not* retried here; writes with claim semantics stay on redis-py
  and `svckit.redisio`;
* replies decoded as UTF-8 like the services' redis-py clients (`decode_responses=True`);
  HGETALL is returned as a dict like redis-py does.

Faults: a connection that cannot be opened (within `connect_timeout_s`) or is lost fails every
waiting call with `RedisUnavailable` (an `InfraError`: S3 answers 503) and the next call
reconnects. A reply that does not arrive within `timeout_s` (the same 5 s as the redis-py
clients' socket timeout) fails every waiting call and closes the connection, since a stuck
head-of-line reply means the connection is unusable. One timer per connection checks that
(not one per call). A caller cancelled while waiting leaves its slot in the queue; its reply
is read and dropped, so the order of replies stays right.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Sequence
from typing import Any, cast

import hiredis
from redis import exceptions as redis_exc

from svckit.errors import RedisUnavailable
from svckit.redisio import SOCKET_TIMEOUT_S

Command = Sequence[str | bytes | int | float]


def pack(commands: Sequence[Command]) -> bytes:
    """RESP arrays of bulk strings for the given commands."""
    out: list[bytes] = []
    for cmd in commands:
        out.append(b"*%d\r\n" % len(cmd))
        for arg in cmd:
            b = arg if isinstance(arg, bytes) else str(arg).encode()
            out.append(b"$%d\r\n" % len(b))
            out.append(b)
            out.append(b"\r\n")
    return b"".join(out)


class _Pending:
    __slots__ = ("fut", "left", "names", "replies", "sent_at")

    def __init__(self, fut: asyncio.Future[list[Any]], names: list[bytes], sent_at: float) -> None:
        self.fut = fut
        self.names = names  # command names, upper-case (HGETALL replies become dicts)
        self.left = len(names)
        self.replies: list[Any] = []
        self.sent_at = sent_at


class _Protocol(asyncio.Protocol):
    def __init__(self, mux: RedisMux) -> None:
        self.mux = mux
        self.reader = hiredis.Reader(encoding="utf-8")
        self.queue: collections.deque[_Pending] = collections.deque()
        self.transport: asyncio.Transport | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport: no isinstance check here.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        queue = self.queue
        while True:
            try:
                reply = self.reader.gets()
            except Exception as exc:  # ProtocolError, or a value that is not UTF-8
                # The reader's position in the stream is unknown now: drop the connection.
                self.abort(RedisUnavailable(f"redis reply unreadable: {exc}"))
                return
            if reply is False:
                return
            if not queue:  # a reply nobody asked for: the stream is out of step
                self.abort(RedisUnavailable("redis: unexpected reply"))
                return
            head = queue[0]
            head.replies.append(reply)
            head.left -= 1
            if head.left == 0:
                queue.popleft()
                if not head.fut.done():
                    head.fut.set_result(head.replies)

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(RedisUnavailable(f"redis connection lost: {exc or 'closed by the server'}"))
        self.closed = True
        self.mux._lost(self)

    def fail(self, exc: BaseException) -> None:
        while self.queue:
            pending = self.queue.popleft()
            if not pending.fut.done():
                pending.fut.set_exception(exc)

    def abort(self, exc: BaseException) -> None:
        self.fail(exc)
        self.closed = True
        if self.transport is not None:
            self.transport.abort()


class RedisMux:
    """One shared connection to a single Redis node; see the module docstring."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        password: str | None = None,
        timeout_s: float = SOCKET_TIMEOUT_S,
        connect_timeout_s: float = 2.0,
    ) -> None:
        self.host, self.port = host, port
        self.password = password
        self.timeout_s = timeout_s
        self.connect_timeout_s = connect_timeout_s
        self._proto: _Protocol | None = None
        self._connecting: asyncio.Lock | None = None
        self._watchdog: asyncio.TimerHandle | None = None
        self._closed = False

    @classmethod
    def for_addresses(
        cls, addresses: Sequence[str], *, password: str | None = None
    ) -> RedisMux | None:
        """A mux for a single-node deployment; None for a cluster (keep redis-py there)."""
        if len(addresses) != 1:
            return None
        host, _, port = addresses[0].rpartition(":")
        return cls(host, int(port), password=password)

    def __repr__(self) -> str:
        return f"RedisMux({self.host}:{self.port})"

    async def execute(self, *commands: Command) -> list[Any]:
        """Send the commands in one write; their replies, in order. A RESP error reply raises
        redis.exceptions.ResponseError; a broken connection RedisUnavailable."""
        proto = self._proto
        if proto is None or proto.closed:
            proto = await self._connect()
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[list[Any]] = loop.create_future()
        names = [_name(cmd[0]) for cmd in commands]
        proto.queue.append(_Pending(fut, names, loop.time()))
        assert proto.transport is not None
        proto.transport.write(pack(commands))
        if self._watchdog is None:
            self._watchdog = loop.call_later(self.timeout_s / 4, self._watch)
        replies = await fut
        for i, reply in enumerate(replies):
            if isinstance(reply, hiredis.ReplyError):
                raise redis_exc.ResponseError(str(reply))
            if names[i] == b"HGETALL" and isinstance(reply, list):
                replies[i] = dict(zip(reply[::2], reply[1::2], strict=True))
        return replies

    async def _connect(self) -> _Protocol:
        if self._closed:
            raise RedisUnavailable(f"{self!r} is closed")
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            proto = self._proto
            if proto is not None and not proto.closed:
                return proto  # another caller connected meanwhile
            loop = asyncio.get_running_loop()
            try:
                async with asyncio.timeout(self.connect_timeout_s):
                    _, proto = await loop.create_connection(
                        lambda: _Protocol(self), self.host, self.port
                    )
            except (OSError, TimeoutError) as exc:
                raise RedisUnavailable(
                    f"redis unavailable at {self.host}:{self.port}: {exc or 'connect timeout'}"
                ) from exc
            self._proto = proto
            if self.password:
                try:
                    await self.execute(("AUTH", self.password))
                except redis_exc.ResponseError as exc:
                    proto.abort(RedisUnavailable(f"redis AUTH failed: {exc}"))
                    raise RedisUnavailable(f"redis AUTH failed: {exc}") from exc
            return proto

    def _watch(self) -> None:
        self._watchdog = None
        proto = self._proto
        if proto is None or proto.closed or not proto.queue:
            return
        loop = asyncio.get_running_loop()
        waited = loop.time() - proto.queue[0].sent_at
        if waited > self.timeout_s:
            proto.abort(RedisUnavailable(f"redis timeout: no reply within {self.timeout_s:g} s"))
            return
        self._watchdog = loop.call_later(self.timeout_s / 4, self._watch)

    def _lost(self, proto: _Protocol) -> None:
        if self._proto is proto:
            self._proto = None

    async def aclose(self) -> None:
        self._closed = True
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        proto, self._proto = self._proto, None
        if proto is not None:
            proto.fail(RedisUnavailable(f"{self!r} is closed"))
            proto.closed = True
            if proto.transport is not None:
                proto.transport.close()


def _name(arg: str | bytes | int | float) -> bytes:
    return (arg if isinstance(arg, bytes) else str(arg).encode()).upper()

"""Redis access shared by S3 and S4: client factory (single node or Cluster), idempotency
claims, per-symbol locks and JSON streams with consumer groups.

Two redis-py behaviours shape this module:

* redis-py ≥ 6 retries commands on connection errors by default. A `SET NX` whose reply was lost
  is re-sent and then answers "not set" – because *our own* first write landed. Claims therefore
  store a token unique to the claimant and, on "not set", read the key back: our token means the
  claim is ours. The same holds for locks.
* `XREADGROUP BLOCK` must stay well below the socket timeout, otherwise an idle stream looks like
  a dead connection. We block for `STREAM_BLOCK_MS` (1 s) against a 5 s socket timeout.

On a Redis Cluster every command here touches one key, except `xadd_once`, whose script must
write two keys atomically: its marker carries the stream's name as a hash tag (`once_key`), so
both live in the stream's slot. No other key is hash-tagged; the spec's names stay as they are.
The suite runs these paths on a 3-master cluster and fails on any cross-slot refusal
(tests/conftest.py `redis_mode`).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

from redis import exceptions as redis_exc
from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster

from svckit import jsonutil
from svckit.errors import RedisUnavailable

RedisClient: TypeAlias = "Redis | RedisCluster"

SOCKET_TIMEOUT_S = 5.0
STREAM_BLOCK_MS = 1000
STREAM_MAXLEN = 100_000

_RELEASE_LUA = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end
"""


def make_redis(addresses: Sequence[str], *, password: str | None = None) -> RedisClient:
    """One address ⇒ plain client; several ⇒ RedisCluster (spec §H: official cluster client)."""
    if not addresses:
        raise ValueError("no Redis addresses")
    common: dict[str, Any] = {
        "password": password,
        "decode_responses": True,
        "socket_timeout": SOCKET_TIMEOUT_S,
        "socket_connect_timeout": 2.0,
        "health_check_interval": 15,
    }
    if len(addresses) == 1:
        host, _, port = addresses[0].rpartition(":")
        return Redis(host=host, port=int(port), **common)
    nodes = [ClusterNode(a.rpartition(":")[0], int(a.rpartition(":")[2])) for a in addresses]
    return RedisCluster(startup_nodes=nodes, **common)


@contextlib.contextmanager
def redis_errors() -> Iterator[None]:
    """Connection and timeout errors leave as RedisUnavailable; other Redis errors unchanged."""
    try:
        yield
    except (redis_exc.ConnectionError, redis_exc.TimeoutError) as exc:
        raise RedisUnavailable(f"redis unavailable: {exc}") from exc


async def ping(r: RedisClient) -> bool:
    try:
        return bool(await asyncio.wait_for(r.ping(), timeout=1.0))
    except Exception:
        return False


def new_token(owner: str = "") -> str:
    """Ownership token for a claim or lock (random by design: it names an attempt, not an id)."""
    return f"{owner}:{secrets.token_hex(8)}" if owner else secrets.token_hex(8)


async def claim_once(
    r: RedisClient, key: str, token: str, ttl_s: int | None = None, *, ttl_ms: int | None = None
) -> bool:
    """SET NX with a TTL (`ttl_s` or `ttl_ms`) that is safe under redis-py's automatic retries:
    True iff the key is ours."""
    if (ttl_s is None) == (ttl_ms is None):
        raise ValueError("give exactly one of ttl_s or ttl_ms")
    with redis_errors():
        return bool(await r.set(key, token, nx=True, ex=ttl_s, px=ttl_ms)) or (
            await r.get(key) == token
        )


async def release_claim(r: RedisClient, key: str, token: str) -> bool:
    """Delete `key` only if it still holds our token (e.g. a definitive failure frees the id)."""
    with redis_errors():
        return bool(await r.eval(_RELEASE_LUA, 1, key, token))


class LockNotAcquired(Exception):
    pass


class LockQueue(defaultdict[str, asyncio.Lock]):
    """A process-local FIFO in front of distributed locks: the tasks of one process that want
    the same key wait on an `asyncio.Lock` (handed over in arrival order the moment it is
    released), and only the head of the line polls Redis — against other processes. Without
    it every local waiter polls with a growing back-off and the lock idles after each release
    until one of them happens to wake."""

    def __init__(self) -> None:
        super().__init__(asyncio.Lock)


@contextlib.asynccontextmanager
async def hold_lock(
    r: RedisClient,
    key: str,
    *,
    ttl_ms: int,
    wait_ms: int,
    owner: str = "",
    queue: LockQueue | None = None,
    queue_wait_ms: int | None = None,
) -> AsyncIterator[str]:
    """Distributed lock (SET NX PX + compare-and-delete). With a `queue`, waits first in this
    process's line (up to `queue_wait_ms`, default `wait_ms`: a place in the line costs
    nothing), then up to `wait_ms` for Redis; holds ≤ ttl_ms. The TTL bounds how long a crashed
    holder can block others (spec: lock:pos ≤ 3 s)."""
    async with contextlib.AsyncExitStack() as stack:
        if queue is not None:
            local = queue[key]
            if not local.locked():
                await local.acquire()  # free: taken at once (also with wait_ms=0)
            else:
                line_ms = wait_ms if queue_wait_ms is None else queue_wait_ms
                try:
                    await asyncio.wait_for(local.acquire(), timeout=line_ms / 1000)
                except TimeoutError:
                    raise LockNotAcquired(f"{key} is held by another decision") from None
            stack.callback(local.release)
        deadline = time.monotonic() + wait_ms / 1000
        token = new_token(owner)
        delay = 0.002
        while True:
            with redis_errors():
                if await r.set(key, token, nx=True, px=ttl_ms) or await r.get(key) == token:
                    break
            if time.monotonic() >= deadline:
                raise LockNotAcquired(f"{key} is held by another decision")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)
        try:
            yield token
        finally:
            with contextlib.suppress(redis_exc.RedisError):
                await r.eval(_RELEASE_LUA, 1, key, token)


_XADD_ONCE_LUA = """
if redis.call('set', KEYS[1], '1', 'NX', 'EX', tonumber(ARGV[1])) then
  return redis.call('xadd', KEYS[2], 'MAXLEN', '~', tonumber(ARGV[2]), '*', 'data', ARGV[3])
end
return false
"""
ONCE_TTL_S = 7 * 24 * 3600


def once_key(stream: str, name: str) -> str:
    """The marker of `xadd_once`: hash-tagged with the stream's own name, so that on a Redis
    Cluster it lives in the stream's slot (the stream key has no tag: its slot is that of its
    full name) and the script touches one slot."""
    return f"{{{stream}}}:once:{name}"


async def xadd_once(
    r: RedisClient,
    stream: str,
    name: str,
    payload: Mapping[str, Any],
    *,
    maxlen: int = STREAM_MAXLEN,
    ttl_s: int = ONCE_TTL_S,
) -> str | None:
    """XADD `payload` unless an entry named `name` was already added to `stream` (within
    `ttl_s`): marker and entry are written by one script, atomically, so a retry, a second
    driver or a restart never publishes the same outcome twice and a crash never leaves the
    marker without its entry. Returns the entry id, None when it was already published."""
    with redis_errors():
        entry = await r.eval(
            _XADD_ONCE_LUA,
            2,
            once_key(stream, name),
            stream,
            str(ttl_s),
            str(maxlen),
            jsonutil.dumps(payload),
        )
    return str(entry) if entry else None


async def xadd_json(
    r: RedisClient, stream: str, payload: Mapping[str, Any], *, maxlen: int = STREAM_MAXLEN
) -> str:
    """Append one JSON entry (field `data`); trims approximately (cheap) to `maxlen`."""
    with redis_errors():
        entry_id = await r.xadd(
            stream, {"data": jsonutil.dumps(payload)}, maxlen=maxlen, approximate=True
        )
    return str(entry_id)


async def ensure_group(r: RedisClient, stream: str, group: str) -> None:
    """Create the consumer group at the start of the stream (so intents written before the
    first S4 started are not skipped); idempotent."""
    try:
        await r.xgroup_create(stream, group, id="0", mkstream=True)
    except redis_exc.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


@dataclass(frozen=True, slots=True)
class StreamEntry:
    stream: str
    entry_id: str
    payload: dict[str, Any] | None  # None when the entry is not valid JSON (poison)
    raw: dict[str, str]
    deliveries: int = 1


def _decode(stream: str, entry_id: str, fields: dict[str, str], deliveries: int) -> StreamEntry:
    payload: dict[str, Any] | None
    try:
        loaded = jsonutil.loads(fields.get("data", ""))
        payload = loaded if isinstance(loaded, dict) else None
    except ValueError:
        payload = None
    return StreamEntry(stream, entry_id, payload, dict(fields), deliveries)


async def read_group(
    r: RedisClient,
    stream: str,
    group: str,
    consumer: str,
    *,
    count: int = 32,
    block_ms: int = STREAM_BLOCK_MS,
) -> list[StreamEntry]:
    """New entries for this consumer (`>`), blocking at most `block_ms`."""
    resp: Any = await r.xreadgroup(group, consumer, {stream: ">"}, count=count, block=block_ms)
    out: list[StreamEntry] = []
    for _name, entries in resp or []:
        for entry_id, fields in entries:
            if fields is None:  # deleted while pending
                continue
            out.append(_decode(stream, entry_id, fields, 1))
    return out


async def autoclaim(
    r: RedisClient,
    stream: str,
    group: str,
    consumer: str,
    *,
    min_idle_ms: int,
    count: int = 32,
) -> list[StreamEntry]:
    """Take over entries left pending by a dead consumer (XAUTOCLAIM, Redis ≥ 6.2)."""
    resp: Any = await r.xautoclaim(stream, group, consumer, min_idle_time=min_idle_ms, count=count)
    entries = resp[1] if resp else []
    if not entries:
        return []
    ids = [eid for eid, fields in entries if fields is not None]
    counts: dict[str, int] = {}
    if ids:
        pending: Any = await r.xpending_range(
            stream, group, min=ids[0], max=ids[-1], count=len(ids)
        )
        counts = {str(p["message_id"]): int(p["times_delivered"]) for p in pending}
    return [
        _decode(stream, eid, fields, counts.get(eid, 2))
        for eid, fields in entries
        if fields is not None
    ]


async def ack(r: RedisClient, stream: str, group: str, *entry_ids: str) -> int:
    return int(await r.xack(stream, group, *entry_ids))


# S3 marks an emitted intent with an `s3:`-prefixed value; S4 then takes the key over for
# execution. Compare-and-set in one round trip; a retried call sees its own token and succeeds.
_TAKEOVER_LUA = """
local v = redis.call('get', KEYS[1])
if (not v) or string.sub(v, 1, 3) == 's3:' or v == ARGV[1] then
  redis.call('set', KEYS[1], ARGV[1], 'EX', tonumber(ARGV[2]))
  return 1
end
return 0
"""


async def claim_for_execution(r: RedisClient, key: str, token: str, ttl_s: int) -> bool:
    """S4's claim on `idem:order:{id}`: free or S3-marked ⇒ ours; held by another S4 ⇒ False."""
    with redis_errors():
        return bool(await r.eval(_TAKEOVER_LUA, 1, key, token, str(ttl_s)))

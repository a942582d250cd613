"""Execution leases in Redis: exactly one driver per parent order, across the tasks of one replica
and across replicas.

`exec:lease:{client_order_id}` holds the token of **one acquisition** (a fresh token every time,
never one per process) with a TTL (`S4_EXEC_LEASE_MS`). The holder renews it on every step and
before every venue attempt; a renewal that fails means someone else may drive the order now, and
the holder stops without touching the key. Only the holder releases it (compare-and-delete), so a
losing request (a parallel POST, a cancel, the orphan sweep) can never free the winner's lease.
A replica that dies stops renewing, the key expires, and the orphan sweep of any live replica (or
the restarted one) takes the execution over from the persisted state.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from redis import exceptions as redis_exc

from svckit.errors import InfraError
from svckit.redisio import RedisClient, claim_once, new_token, redis_errors, release_claim

_RENEW_LUA = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], tonumber(ARGV[2]))
end
return 0
"""


def lease_key(client_order_id: str) -> str:
    return f"exec:lease:{client_order_id}"


class LeaseLost(InfraError):
    """The lease expired or was taken over: stop driving the order, touch nothing."""


@dataclass(frozen=True, slots=True)
class Lease:
    """One acquisition of `exec:lease:{name}`."""

    name: str
    token: str

    @property
    def key(self) -> str:
        return lease_key(self.name)


class Leases:
    def __init__(self, redis: RedisClient, *, owner: str, ttl_ms: int) -> None:
        self.redis = redis
        self.owner = owner
        self.ttl_ms = ttl_ms

    async def acquire(self, name: str) -> Lease | None:
        """The lease if nobody holds it (None: held by another acquisition, of this process or
        another)."""
        lease = Lease(name, new_token(self.owner))
        # claim_once reads back this acquisition's token, so a SET retried by redis-py is ours.
        if await claim_once(self.redis, lease.key, lease.token, ttl_ms=self.ttl_ms):
            return lease
        return None

    async def renew(self, lease: Lease) -> bool:
        """Extend the TTL; False once the lease is no longer this acquisition's."""
        with redis_errors():
            return bool(
                await self.redis.eval(_RENEW_LUA, 1, lease.key, lease.token, str(self.ttl_ms))
            )

    async def ensure(self, lease: Lease | None) -> None:
        """Fence a side effect (a venue send): raise LeaseLost unless still held."""
        if lease is not None and not await self.renew(lease):
            raise LeaseLost(f"{lease.name}: lease lost; another driver holds it now")

    async def release(self, lease: Lease | None) -> None:
        """Free the lease if this acquisition still holds it (no-op otherwise)."""
        if lease is None:
            return
        with contextlib.suppress(InfraError, redis_exc.RedisError):  # it expires on its own
            await release_claim(self.redis, lease.key, lease.token)

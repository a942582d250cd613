"""Execution leases in Redis: exactly one S4 replica drives a parent order at a time.

`exec:lease:{client_order_id}` holds the owner's token with a TTL (`S4_EXEC_LEASE_MS`); the
owner renews it on every step. A replica that dies stops renewing, the key expires, and the
orphan sweep of any live replica (or the restarted one) takes the execution over and resumes it
from the persisted state. A replica that finds its lease taken stops driving the order at once.
"""

from __future__ import annotations

import contextlib

from redis import exceptions as redis_exc

from svckit.errors import InfraError
from svckit.redisio import RedisClient, claim_once, new_token, release_claim, translate

_RENEW_LUA = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], tonumber(ARGV[2]))
end
return 0
"""


def lease_key(client_order_id: str) -> str:
    return f"exec:lease:{client_order_id}"


class Leases:
    def __init__(self, redis: RedisClient, *, owner: str, ttl_ms: int) -> None:
        self.redis = redis
        self.owner = owner
        self.ttl_ms = ttl_ms
        self._tokens: dict[str, str] = {}

    def token(self, client_order_id: str) -> str:
        tok = self._tokens.get(client_order_id)
        if tok is None:
            tok = self._tokens[client_order_id] = new_token(self.owner)
        return tok

    async def acquire(self, client_order_id: str) -> bool:
        # claim_once reads back its own token, so a SET retried by redis-py is still ours.
        return await claim_once(
            self.redis, lease_key(client_order_id), self.token(client_order_id), ttl_ms=self.ttl_ms
        )

    async def renew(self, client_order_id: str) -> bool:
        try:
            return bool(
                await self.redis.eval(
                    _RENEW_LUA,
                    1,
                    lease_key(client_order_id),
                    self.token(client_order_id),
                    str(self.ttl_ms),
                )
            )
        except redis_exc.RedisError as exc:
            raise translate(exc) from exc

    async def release(self, client_order_id: str) -> None:
        tok = self._tokens.pop(client_order_id, None)
        if tok is None:
            return
        with contextlib.suppress(InfraError, redis_exc.RedisError):  # it expires on its own
            await release_claim(self.redis, lease_key(client_order_id), tok)

"""Infrastructure exception tree. Adapters translate vendor errors (redis-py, python-arango,
sqlite3) into these so that services handle one vocabulary.

    InfraError
    ├── StoreError
    │   ├── DuplicateKey        unique index violated (orders.client_order_id, fills triple, _key)
    │   ├── NotFound
    │   └── StoreUnavailable    the store cannot be reached (retryable)
    └── RedisUnavailable        Redis cannot be reached (retryable)

ConfigError (a bad variable) and StartupError (a dependency or config unusable at start) end
the process at start with a readable message.
"""

from __future__ import annotations


class InfraError(Exception):
    """Base of infrastructure errors."""


class StoreError(InfraError):
    pass


class DuplicateKey(StoreError):
    def __init__(self, collection: str, detail: str) -> None:
        super().__init__(f"duplicate key in {collection}: {detail}")
        self.collection = collection


class NotFound(StoreError):
    pass


class StoreUnavailable(StoreError):
    pass


class InvalidDocument(StoreError):
    """One document the store cannot hold (not JSON-serialisable, an integer beyond 64 bits, an
    invalid `_key`): reported for that document alone, never for the batch it came in."""


class RedisUnavailable(InfraError):
    pass


class ConfigError(InfraError):
    """Invalid configuration at start (names the variable)."""


class StartupError(RuntimeError):
    """A dependency or the active configuration is not usable at start."""

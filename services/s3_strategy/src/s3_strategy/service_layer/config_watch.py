"""Every replica's config watcher (issue 13, spec C2): follow activations, swap atomically (RCU).

The watcher blocks on the capped stream `cfg:events` (XREAD from the last id it saw, so a
replica that was disconnected catches up on reconnect) and, at least every
`S3_CONFIG_POLL_SEC`, polls `config_active` (the store's record, written first by an
activation) and `cfg:active_rev` (the shared announcement). Whenever the record names another
revision than the one this replica serves, it loads that bundle, lints and compiles it (the
same build an upload went through) and swaps the engine in one assignment: a decision in flight
finishes on the engine it pinned, the next one uses the new one, and every response and stored
signal carries exactly one `config_rev`.

When the revision cannot be loaded (bundle missing, fails lint against today's reference data,
store down) the replica keeps serving the last good engine, reports `lagging` in `/health` and
alerts `CONFIG_RELOAD_FAILED` (once per target revision). `CONFIG_REV_MISMATCH` fires when the
served revision has differed from `cfg:active_rev` for longer than two poll periods — a bogus
value set at run time, or a replica that cannot follow — and never merely because a replica
started after a legitimate promotion (its first check loads the promoted revision).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any

from s3_strategy.adapters.alerts import AlertSink
from s3_strategy.adapters.configstore import ConfigLoadError, ConfigStore
from s3_strategy.config import Settings
from s3_strategy.metrics import StrategyMetrics
from s3_strategy.service_layer.decide import DecisionService
from svckit import keys
from svckit.clock import Clock
from svckit.redisio import RedisClient

log = logging.getLogger(__name__)

# XREAD BLOCK stays well below the client's socket timeout (svckit.redisio: 5 s).
MAX_BLOCK_MS = 1000


@dataclass
class WatchState:
    """What /health shows about hot reload."""

    state: str = "current"  # current | lagging
    target_rev: str | None = None  # what config_active names
    announced_rev: str | None = None  # cfg:active_rev
    error: str | None = None
    last_check_ms: int | None = None
    last_swap_ms: int | None = None
    swaps: int = 0


@dataclass(kw_only=True, eq=False)
class ConfigWatcher:
    settings: Settings
    redis: RedisClient
    configs: ConfigStore
    service: DecisionService
    alerts: AlertSink
    clock: Clock
    metrics: StrategyMetrics
    status: WatchState = field(default_factory=WatchState, init=False)
    _last_id: str = field(default="0-0", init=False)
    _mismatch: tuple[str, str] | None = field(default=None, init=False)  # (served, announced)
    _mismatch_since: int = field(default=0, init=False)
    _mismatch_alerted: bool = field(default=False, init=False)
    _failed_rev: str | None = field(default=None, init=False)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock, init=False)

    @property
    def poll_ms(self) -> int:
        return int(self.settings.config_poll_sec * 1000)

    # ---- one check ----------------------------------------------------------------------------
    async def check(self) -> None:
        """Converge on the active revision once (store record first, then the announcement)."""
        async with self._lock:
            now = self.clock.now_ms()
            self.status.last_check_ms = now
            try:
                active = await self.configs.get_active()
            except Exception as exc:  # store down: keep serving, say so
                await self._reload_failed(
                    None, f"store: {exc}", f"cannot read config_active: {exc}"
                )
                return
            target = str(active["rev"]) if active is not None else None
            self.status.target_rev = target
            if target is not None and target != self.service.engine.config_rev:
                await self._load(target)
            elif target is not None:
                self.status.state, self.status.error = "current", None
                self._failed_rev = None
            await self._check_announced(target, now)
            self.metrics.config_lagging.set(1 if self.status.state == "lagging" else 0)

    async def _load(self, rev: str) -> None:
        try:
            engine = await self.configs.load_rev(self.settings, rev)
            missing = [s for s in self.settings.symbols if s not in engine.plans]
            if missing:
                raise ConfigLoadError(f"S3_SYMBOLS not tradable under {rev}: {missing}")
        except Exception as exc:
            await self._reload_failed(rev, str(exc), str(exc))
            return
        old = self.service.swap(engine)
        now = self.clock.now_ms()
        self.status.state, self.status.error = "current", None
        self.status.last_swap_ms, self._failed_rev = now, None
        self.status.swaps += 1
        self.metrics.config_reloads.labels("ok").inc()
        log.info("config swapped", extra={"from_rev": old.config_rev, "config_rev": rev})
        with contextlib.suppress(Exception):  # replay record; the activation wrote it already
            await self.configs.save_context(engine, now)

    async def _reload_failed(self, rev: str | None, status: str, error: str) -> None:
        """Lagging (`status` on /health, the failure counted); alerted once per revision."""
        self.status.state, self.status.error = "lagging", status
        self.metrics.config_reloads.labels("failed").inc()
        key = rev if rev is not None else "<store unreadable>"
        if key == self._failed_rev:
            return  # alerted for this already; /health and the metric keep showing it
        self._failed_rev = key
        await self.alerts.emit(
            "CONFIG_RELOAD_FAILED",
            f"cannot load config rev {rev}: {error}; serving {self.service.engine.config_rev}",
            severity="critical",
            data={"target_rev": rev, "serving_rev": self.service.engine.config_rev},
            rate_limit=False,
        )

    async def _check_announced(self, target: str | None, now: int) -> None:
        try:
            raw = await self.redis.get(keys.CFG_ACTIVE_REV)
            if raw is None and target is not None:
                # Redis lost the key (flush, failover without persistence): the store's record
                # is authoritative, announce it again.
                await self.redis.set(keys.CFG_ACTIVE_REV, target, nx=True)
                raw = await self.redis.get(keys.CFG_ACTIVE_REV)
        except Exception:
            log.warning("config watch: cannot read %s", keys.CFG_ACTIVE_REV, exc_info=True)
            return
        announced = raw.decode() if isinstance(raw, bytes) else raw
        self.status.announced_rev = announced
        serving = self.service.engine.config_rev
        if announced is None or announced == serving:
            self._mismatch = None
            return
        pair = (serving, announced)
        if self._mismatch != pair:
            self._mismatch, self._mismatch_since, self._mismatch_alerted = pair, now, False
            return
        if not self._mismatch_alerted and now - self._mismatch_since > 2 * self.poll_ms:
            self._mismatch_alerted = True
            await self.alerts.emit(
                "CONFIG_REV_MISMATCH",
                f"{keys.CFG_ACTIVE_REV} is {announced} but this replica serves {serving} "
                f"(config_active: {target}) for {now - self._mismatch_since} ms",
                severity="critical",
                data={"announced_rev": announced, "serving_rev": serving, "target_rev": target},
                rate_limit=False,
            )

    # ---- the loop -----------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        block_ms = max(1, min(self.poll_ms, MAX_BLOCK_MS))
        next_poll = 0.0
        loop = asyncio.get_running_loop()
        positioned = False
        while not stop.is_set():
            woken = False
            try:
                if not positioned:
                    # Start after the newest event: the check below reads the current state.
                    rows = await self.redis.xrevrange(keys.CFG_EVENTS, count=1)
                    if rows:
                        entry_id = rows[0][0]
                        self._last_id = (
                            entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
                        )
                    positioned = True
                    woken = True
                else:
                    resp: Any = await self.redis.xread(
                        {keys.CFG_EVENTS: self._last_id}, count=100, block=block_ms
                    )
                    for _stream, entries in resp or []:
                        if entries:
                            last = entries[-1][0]
                            self._last_id = last.decode() if isinstance(last, bytes) else last
                            woken = True
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("config watch: reading %s failed", keys.CFG_EVENTS, exc_info=True)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=block_ms / 1000)
            if stop.is_set():
                return
            if woken or loop.time() >= next_poll:
                next_poll = loop.time() + self.poll_ms / 1000
                try:
                    await self.check()
                except Exception:
                    log.exception("config watch: check failed")

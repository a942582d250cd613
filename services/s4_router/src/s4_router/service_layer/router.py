"""The order router's intake: REST `POST /orders` and the `orders:intent` consumer group both
call :meth:`OrderRouter.submit`; `POST /cancel` calls :meth:`OrderRouter.cancel`.

Intake, in order (nothing reaches the venue before the intent is durable):

1. duplicate? — the store's unique `orders.client_order_id` answers; an identical resend (REST or
   stream, before or after completion) returns the existing order and sends nothing; the same id
   with a different body is a 409 naming the differing fields, with an `IDEMPOTENCY_CONFLICT`
   alert (never executed, never mistaken for the original);
2. validation against the instrument and the pre-trade rules that need no market data
   (`policies.pretrade`: freshness of `created_ts`, step/tick, bounded numbers, per-instrument
   and global size limits, fields that do not apply) ⇒ 422 with a `reason`, nothing sent or
   stored; protection (FUT sl / tp brackets, SPOT OCO) is accepted only while the protection
   service is wired in; a shape it cannot protect ⇒ 422, never executed without it;
3. gates for new entries (reduce-only orders pass): entries halted on the symbol after an
   overfill (`halt:entries:{symbol}`), circuit breaker OPEN, clock skew > 1 s ⇒ FAIL (503) with
   an alert; the refusal is stored as a REJECTED order so that the other path's copy of the
   same intent cannot execute it later (so is "venue unavailable after retries" at step 4: an
   intent always ends in a recorded state);
4. book (the published `mkt:depth` when fresh, else the venue) and arrival mid; the checks
   against the live mid (price collar, notional, SL/TP and OCO legs vs the side) ⇒ 422, stored
   REJECTED; policy resolution (route table by notional; a SPOT OCO entry runs as
   Maker→Taker), the plan (TWAP slices); then — the first venue side effect, after every
   refusal — every FUT entry (bracketed or not) gets margin type ISOLATED and its leverage
   (idempotent, cached per symbol + leverage: `service_layer.margin`); a venue refusing the
   switch because a position exists in the other margin mode ⇒ 409, recorded like step 3;
5. the execution lease (one acquisition: a parallel request of the same id finds it held and
   answers with the stored order, or busy, and never touches the holder's key), the protection
   record (before anything can fill), the parent record (with the plan) and `idem:order:{id}`;
6. the first step of the execution runs inline (a MARKET intent usually completes here);
   the rest runs in a background task.

Answers are :class:`~s4_router.domain.outcomes.Outcome`s, transport-free (the entry points
map them: `entrypoints/statuses.py`): DONE (HTTP 200) with the final status when the execution
completed within `S4_ORDER_SYNC_WAIT_MS`; RUNNING (202) with the current status (SUBMITTED /
ACCEPTED / PARTIALLY_FILLED) while it is still running — follow it with
`GET /orders/{client_order_id}` or on `orders:executed`; INVALID (422), CONFLICT (409),
UNKNOWN (404) and UNAVAILABLE (503) for the refusals above.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from s4_router.adapters.exchange.base import (
    DefinitiveError,
    ExchangeError,
    ExchangePort,
    MarginModeConflict,
    OrderNotFound,
    RetryableError,
)
from s4_router.adapters.leases import Lease, LeaseLost, Leases
from s4_router.domain.outcomes import Disposition, Outcome
from s4_router.metrics import RouterMetrics
from s4_router.policies.circuit_breaker import BreakerState, CircuitBreaker, Transition
from s4_router.policies.clock_guard import ClockSkewGuard
from s4_router.policies.execution import ExecState, ParentMachine
from s4_router.policies.maker_taker import ChildState
from s4_router.policies.pretrade import PretradeLimits, PretradeRefused, check_intake, check_market
from s4_router.policies.registry import PolicyLimits, PolicyRefused, resolve_policy
from s4_router.policies.route_table import RouteTable
from s4_router.service_layer.book_source import BookSource
from s4_router.service_layer.execution import ExecDeps, Execution, record_of
from s4_router.service_layer.fill_book import FillBook
from s4_router.service_layer.manager import ExecutionManager
from s4_router.service_layer.margin import MarginSetup
from s4_router.service_layer.protection import ProtectionService, is_protective
from s4_router.service_layer.publisher import Publisher
from s4_router.service_layer.quality import QualityTracker
from s4_router.service_layer.venue_ops import VenueOps
from svckit import keys
from svckit.clock import Clock
from svckit.errors import DuplicateKey, InfraError
from svckit.redisio import RedisClient, claim_for_execution, new_token
from svckit.store.base import DocumentStore, Query
from tradekit.enums import Market, OrderRole, OrderStatus, OrderType, RequestResult, TimeInForce
from tradekit.errors import InvalidIntent
from tradekit.ids import parent_of
from tradekit.instrument import Instrument
from tradekit.intents import MakerTakerPolicy, OcoPolicy, OrderIntent
from tradekit.orders import OrderRecord, OrderResponse, StateChange

log = logging.getLogger(__name__)

S = OrderStatus
REFUSAL_ALERT_EVERY_MS = 60_000
HALT_CHECK_MS = 1_000
NOT_COMPARED = frozenset({"created_ts"})  # intent fields a resend may carry differently
LIVE = (S.NEW, S.SUBMITTED, S.AMBIGUOUS, S.ACCEPTED, S.PARTIALLY_FILLED, S.PENDING_CANCEL)


class IntakeBusy(InfraError):
    """The same intent is being accepted concurrently and is not stored yet (retryable)."""


@dataclass(slots=True)
class CancelProgress:
    """How far a cancel got (read by the API when the request hits its deadline): `recorded`
    once the cancel request is durable in the store — from then on the execution completes it,
    whatever happens to this request."""

    recorded: bool = False
    client_order_id: str | None = None


class OrderRouter:
    def __init__(
        self,
        *,
        store: DocumentStore,
        redis: RedisClient,
        exchange: ExchangePort,
        instruments: Mapping[str, Instrument],
        clock: Clock,
        metrics: RouterMetrics,
        route_table: RouteTable,
        limits: PolicyLimits,
        breaker: CircuitBreaker,
        skew: ClockSkewGuard,
        ops: VenueOps,
        manager: ExecutionManager,
        leases: Leases,
        publisher: Publisher,
        quality: QualityTracker,
        owner: str | None = None,
        lock_wait_ms: int = 1000,
        sync_wait_ms: int = 200,
        margin: MarginSetup,
        protection: ProtectionService | None = None,
        fills: FillBook | None = None,
        pretrade: PretradeLimits | None = None,
        books: BookSource | None = None,
    ) -> None:
        self.store = store
        self.redis = redis
        self.exchange = exchange
        self.instruments = dict(instruments)
        self.clock = clock
        self.metrics = metrics
        self.route_table = route_table
        self.limits = limits
        self.breaker = breaker
        self.skew = skew
        self.ops = ops
        self.manager = manager
        self.leases = leases
        self.publisher = publisher
        self.quality = quality
        self.owner = owner or f"s4:{socket.gethostname()}:{os.getpid()}"
        self.sync_wait_ms = sync_wait_ms
        self._refusal_alerted: dict[str, int] = {}
        self._halted: dict[str, tuple[int, str | None]] = {}
        self.protection = protection
        self.fills = fills or FillBook(
            store=store, redis=redis, publisher=publisher, metrics=metrics
        )
        self.margin = margin
        self.pretrade = pretrade or PretradeLimits()
        # Pre-trade books: the published mkt:depth when fresh, else the venue (book_source).
        self.books = books or BookSource(redis=redis, ops=ops, clock=clock, metrics=metrics)
        self.deps = ExecDeps(
            store=store, redis=redis, ops=ops, clock=clock, metrics=metrics, quality=quality,
            publisher=publisher, venue=exchange.venue, owner=self.owner, fills=self.fills,
            leases=leases, lock_wait_ms=lock_wait_ms,
            on_progress=protection.on_entry if protection is not None else None,
            books=self.books,
        )  # fmt: skip

    # ------------------------------------------------------------------ intake
    async def submit(
        self, intent: OrderIntent, *, source: str, sync_wait_ms: int | None = None
    ) -> Outcome:
        """Validate, deduplicate, start the execution and persist; see the module doc."""
        t0 = self.clock.monotonic()
        coid = intent.client_order_id
        existing = await self.store.find_one("orders", {"client_order_id": coid})
        if existing is not None:
            return await self._duplicate_of(existing, intent, source)
        try:
            inst, qty = self._validate(intent)
        except InvalidIntent as exc:
            self.metrics.intents.labels(source, "invalid").inc()
            return Outcome(
                self._fail(intent, str(exc), getattr(exc, "reason", None)), Disposition.INVALID
            )
        refusal = await self._gate(intent)
        if refusal is not None:
            return await self._refuse(intent, qty, *refusal, source=source)
        try:
            # A close may use an older published book when the venue cannot answer.
            book = await self.books.book(
                intent.market, intent.symbol, allow_stale=intent.reduce_only
            )
        except ExchangeError as exc:
            # Recorded, not just answered: the stream copy of this intent must not execute it
            # minutes later, and the consumer may acknowledge the entry (nothing is lost).
            return await self._refuse(
                intent, qty, "venue_unavailable",
                f"venue unavailable after retries, nothing sent: {exc}", source=source,
            )  # fmt: skip
        if not (book.bids and book.asks):
            return await self._refuse(
                intent, qty, "no_book", f"{intent.symbol}: no two-sided book, nothing sent",
                source=source,
            )  # fmt: skip
        arrival = book.mid
        # Market-dependent pre-trade checks (collar, notional, SL/TP vs the mid): the refusal
        # is recorded (REJECTED) so that the other path's copy cannot pass later on a moved mid.
        why = check_market(intent, inst, qty, mid=arrival, limits=self.pretrade)
        if why is not None:
            return await self._refuse(
                intent, qty, why.reason.value, why.message, source=source, kind=Disposition.INVALID
            )
        try:
            price = intent.ref_price or arrival
            if not intent.reduce_only:
                inst.check_notional(qty, price)
            entry_policy = (
                MakerTakerPolicy()
                if isinstance(intent.exec_policy, OcoPolicy)
                else intent.exec_policy
            )
            resolved = resolve_policy(
                entry_policy, notional=qty * price, table=self.route_table,
                limits=self.limits, inst=inst,
            )  # fmt: skip
        except (InvalidIntent, PolicyRefused) as exc:
            self.metrics.intents.labels(source, "invalid").inc()
            return Outcome(self._fail(intent, str(exc)), Disposition.INVALID)
        # The first venue side effect (margin type, leverage) comes after every refusal above.
        if intent.market is Market.FUT and not intent.reduce_only:
            try:
                await self.margin.ensure(intent.symbol, intent.leverage)
            except MarginModeConflict as exc:
                # Definitive until someone closes that exposure: not "venue unavailable".
                return await self._refuse(
                    intent, qty, "margin_mode_conflict", str(exc), source=source,
                    kind=Disposition.CONFLICT,
                )  # fmt: skip
            except ExchangeError as exc:
                return await self._refuse(
                    intent, qty, "margin_setup",
                    f"could not set ISOLATED margin / leverage at the venue, nothing sent: {exc}",
                    source=source,
                )  # fmt: skip
        now = self.clock.now_ms()
        machine = ParentMachine.plan(
            parent_id=coid, side=intent.side, qty=qty, reduce_only=intent.reduce_only,
            config=resolved.config, inst=inst, now=now, ref_price=price,
        )  # fmt: skip
        lease = await self.leases.acquire(coid)
        if lease is None:
            # Another request (here or on a peer) is starting this very intent right now.
            return await self._duplicate_or_running(intent, source)
        if intent.needs_protection and self.protection is not None:
            try:
                await self.protection.register(intent, inst)
            except InfraError:
                await self.leases.release(lease)
                raise  # nothing sent; the caller (or the stream) retries
        parent = OrderRecord(
            client_order_id=coid,
            intent_id=intent.intent_id,
            venue=self.exchange.venue,
            market=intent.market,
            symbol=intent.symbol,
            side=intent.side,
            type=OrderType.MARKET if resolved.config.policy == "MARKET" else OrderType.LIMIT,
            qty=qty,
            reduce_only=intent.reduce_only,
            status=S.NEW,
            history=[StateChange(status=S.NEW, ts=now, reason=f"intake:{source}")],
            intent=intent.model_dump(mode="json"),
            created_ts=intent.created_ts or now,
            updated_ts=now,
            role=OrderRole.PARENT,
            arrival_mid=arrival,
            exec_state=machine.s.model_dump(mode="json"),
            adjustments=list(resolved.adjustments),
        )
        ex = Execution(
            self.deps, parent=parent, children={}, machine=machine, inst=inst, book=book,
            t_intake=t0, parent_stored=False, lease=lease,
        )  # fmt: skip
        # Logged with the step's own events, after the first child went out (latency).
        ex.log_event(
            "INTENT_ACCEPTED",
            {"source": source, "policy": resolved.config.policy, "qty": str(qty),
             "arrival_mid": str(arrival), "route_band": resolved.config.route_band,
             "slices": len(machine.s.slices), "notes": list(resolved.notes)},
        )  # fmt: skip
        try:
            await ex.step()
        except DuplicateKey:
            # Stored by another replica between our lookup and our insert; nothing was sent.
            await self.leases.release(lease)
            return await self._duplicate_or_running(intent, source)
        except LeaseLost:
            # Our lease expired mid-step (a stall) and another driver holds it: hands off.
            return await self._duplicate_or_running(intent, source)
        except ExchangeError as exc:
            log.warning("%s: first step failed, continuing in background: %s", coid, exc)
        except InfraError as exc:
            if not ex.stored:
                await self.leases.release(lease)
                raise  # not durable: the caller (or the stream) must retry
            # Durable already: the background task retries the step from the stored state.
            log.warning("%s: first step failed on infrastructure, continuing: %s", coid, exc)
        if not ex.stored:
            await ex.persist()
        # Fast-path marker for other replicas; the store insert above is the real guard.
        await claim_for_execution(
            self.redis, keys.idem_order(coid), new_token(self.owner), keys.IDEM_TTL_S
        )
        if not ex.finished:
            await self.manager.adopt(ex)
            wait = self.sync_wait_ms if sync_wait_ms is None else sync_wait_ms
            if wait > 0 and self.manager.autorun:
                await self.manager.wait_done(coid, wait / 1000)
        else:
            await self.leases.release(lease)
        outcome = self._progress(ex)
        outcome.response.adjustments = list(resolved.adjustments)
        self.metrics.intents.labels(source, outcome.response.result.value).inc()
        return outcome

    def _validate(self, intent: OrderIntent) -> tuple[Instrument, Decimal]:
        inst = self.instruments.get(intent.symbol)
        if inst is None:
            raise InvalidIntent(f"symbol: unknown symbol {intent.symbol!r}", field="symbol")
        if intent.market not in inst.markets:
            raise InvalidIntent(f"market: {intent.symbol} is not traded on {intent.market}")
        if intent.needs_protection:
            # Refusing beats executing with the protection dropped.
            field = "exec_policy" if intent.sl is None and intent.tp is None else "sl"
            if self.protection is None:
                raise InvalidIntent(
                    "sl/tp brackets and OCO need the protection service, which is not running "
                    "in this router; intent refused rather than executed without its protection",
                    field=field,
                )
            why = self.protection.refusal(intent)
            if why is not None:
                raise InvalidIntent(why, field=field)
        qty = inst.round_qty(intent.qty, "down")
        refused = check_intake(intent, inst, now_ms=self.clock.now_ms(), limits=self.pretrade)
        if refused is not None:
            raise PretradeRefused(refused)
        if intent.ref_price is not None and not intent.reduce_only:
            inst.check_notional(qty, intent.ref_price)
        return inst, qty

    async def _gate(self, intent: OrderIntent) -> tuple[str, str] | None:
        """Why a new entry may not go now (None: it may). Reduce-only always passes."""
        if intent.reduce_only:
            return None
        now = self.clock.now_ms()
        halt = await self._halt(intent.symbol, now)
        if halt is not None:
            return "entries_halted", (
                f"new entries on {intent.symbol} halted after an overfill ({halt}); an operator "
                f"clears {keys.halt_entries(intent.symbol)} once positions are checked"
            )
        if not self.breaker.allows_entry(now):
            return "circuit_open", (
                "circuit breaker OPEN (venue 5xx/429 rate): new entries refused, nothing sent; "
                "reduce-only orders and cancels still pass"
            )
        if not self.skew.ok:
            return "clock_skew", (
                f"clock skew {self.skew.skew_ms} ms vs the venue exceeds "
                f"{self.skew.max_skew_ms} ms: new entries stopped until it recovers"
            )
        return None

    async def _halt(self, symbol: str, now: int) -> str | None:
        """The overfill halt of `symbol` (read from Redis at most once a second per replica)."""
        cached = self._halted.get(symbol)
        if cached is not None and now - cached[0] < HALT_CHECK_MS:
            return cached[1]
        value = await self.redis.get(keys.halt_entries(symbol))
        reason = str(value) if value is not None else None
        self._halted[symbol] = (now, reason)
        return reason

    async def _refuse(
        self,
        intent: OrderIntent,
        qty: Decimal,
        reason: str,
        message: str,
        *,
        source: str,
        kind: Disposition = Disposition.UNAVAILABLE,
    ) -> Outcome:
        now = self.clock.now_ms()
        coid = intent.client_order_id
        record = OrderRecord(
            client_order_id=coid, intent_id=intent.intent_id, venue=self.exchange.venue,
            market=intent.market, symbol=intent.symbol, side=intent.side,
            type=OrderType.MARKET, qty=qty, reduce_only=intent.reduce_only, status=S.REJECTED,
            history=[StateChange(status=S.NEW, ts=now, reason=f"intake:{source}"),
                     StateChange(status=S.REJECTED, ts=now, reason=reason)],
            intent=intent.model_dump(mode="json"), message=message,
            created_ts=intent.created_ts or now, updated_ts=now, role=OrderRole.PARENT,
        )  # fmt: skip
        try:
            await self.store.insert("orders", {"_key": coid, **record.model_dump(mode="json")})
        except DuplicateKey:
            return await self._duplicate_or_running(intent, source)
        self.metrics.refused.labels(reason).inc()
        self.metrics.intents.labels(source, "refused").inc()
        await self.publisher.event(
            "ENTRY_REFUSED", client_order_id=coid, symbol=intent.symbol,
            data={"reason": reason, "message": message},
        )  # fmt: skip
        # One alert per reason per minute: a breaker storm must not bury the alerts stream
        # (every refusal is still on router:events and in the store).
        now_ms = self.clock.now_ms()
        if now_ms - self._refusal_alerted.get(reason, -REFUSAL_ALERT_EVERY_MS) >= (
            REFUSAL_ALERT_EVERY_MS
        ):
            self._refusal_alerted[reason] = now_ms
            await self.publisher.alert(
                "ENTRY_REFUSED", f"{coid}: {message}",
                data={"symbol": intent.symbol, "reason": reason},
            )  # fmt: skip
        return Outcome(
            OrderResponse(
                result=RequestResult.FAIL, order_ids=[coid], message=message,
                client_order_id=coid, status=S.REJECTED, reason=reason,
            ),
            kind,
        )  # fmt: skip

    async def _duplicate_or_running(self, intent: OrderIntent, source: str) -> Outcome:
        doc = await self.store.find_one("orders", {"client_order_id": intent.client_order_id})
        if doc is not None:
            return await self._duplicate_of(doc, intent, source)
        # Another intake holds the lease but has stored nothing yet. Answering "duplicate"
        # would let the stream acknowledge an intent whose other copy may still die before
        # being stored: answer "busy" instead (the stream entry stays pending and comes back,
        # REST gets a 503 and retries); by then it is stored, or its lease has expired.
        raise IntakeBusy(f"{intent.client_order_id}: being accepted by another request; retry")

    async def _duplicate_of(self, doc: dict[str, Any], intent: OrderIntent, source: str) -> Outcome:
        """An identical resend gets the existing order; another body under the same id is a
        conflict (409), alerted: a reused id must never pass for the original."""
        # created_ts is when the sender stamped this copy (a retry may re-stamp it): not part
        # of what the order is.
        differing = [
            f
            for f in _differing_fields(doc.get("intent"), intent.model_dump(mode="json"))
            if f not in NOT_COMPARED
        ]
        if not differing:
            return self._duplicate(doc, source)
        coid = intent.client_order_id
        self.metrics.intents.labels(source, "conflict").inc()
        message = (
            f"client_order_id {coid!r} already names another order; differing fields: "
            f"{', '.join(differing)}; nothing sent"
        )
        await self.publisher.alert(
            "IDEMPOTENCY_CONFLICT", f"{coid} ({source}): {message}",
            data={"client_order_id": coid, "fields": differing, "source": source},
        )  # fmt: skip
        return Outcome(
            OrderResponse(
                result=RequestResult.FAIL, order_ids=[coid], message=message,
                client_order_id=coid, status=S(doc["status"]),
            ),
            Disposition.CONFLICT,
        )  # fmt: skip

    def _duplicate(self, doc: dict[str, Any], source: str) -> Outcome:
        self.metrics.duplicates.inc()
        self.metrics.intents.labels(source, "duplicate").inc()
        status = S(doc["status"])
        return Outcome(
            OrderResponse(
                result=RequestResult.FAIL if status is S.REJECTED else RequestResult.OK,
                order_ids=[doc["client_order_id"]],
                message="duplicate client_order_id: existing order returned, nothing sent",
                client_order_id=doc["client_order_id"],
                status=status,
                duplicate=True,
                filled_qty=Decimal(str(doc.get("filled_qty", "0"))),
            )
        )

    def _fail(self, intent: OrderIntent, message: str, reason: str | None = None) -> OrderResponse:
        return OrderResponse(
            result=RequestResult.FAIL, message=message, client_order_id=intent.client_order_id,
            reason=reason,
        )  # fmt: skip

    def _progress(self, ex: Execution) -> Outcome:
        p = ex.parent
        ids = [p.client_order_id, *sorted(ex.children, key=_child_n)]
        if not ex.finished:
            return Outcome(
                OrderResponse(
                    result=RequestResult.OK, order_ids=ids, client_order_id=p.client_order_id,
                    status=p.status, filled_qty=p.filled_qty,
                    message=f"executing {ex.machine.s.config.policy} in the background; "
                    f"GET /orders/{p.client_order_id} or orders:executed for the outcome",
                ),
                Disposition.RUNNING,
            )  # fmt: skip
        ok = p.status is S.FILLED or (p.filled_qty > 0 and p.status is not S.REJECTED)
        return Outcome(
            OrderResponse(
                result=RequestResult.OK if ok else RequestResult.FAIL, order_ids=ids,
                client_order_id=p.client_order_id, status=p.status, filled_qty=p.filled_qty,
                message=p.message,
            )
        )  # fmt: skip

    # ------------------------------------------------------------ breaker hook
    async def on_breaker(self, t: Transition) -> None:
        self.metrics.cb_state.set(t.dst.gauge)
        data = {"from": t.src.value, "to": t.dst.value, "error_rate": round(t.error_rate, 3),
                "calls": t.calls, "reason": t.reason}  # fmt: skip
        await self.publisher.event("CIRCUIT_BREAKER", client_order_id=None, symbol=None, data=data)
        if t.dst is BreakerState.OPEN:
            await self.publisher.alert(
                "CIRCUIT_BREAKER_OPEN",
                f"venue 5xx/429 share {t.error_rate:.0%} of {t.calls} calls: new entries "
                f"refused ({t.reason})",
                severity="critical", data=data,
            )  # fmt: skip
        elif t.dst is BreakerState.CLOSED:
            await self.publisher.alert(
                "CIRCUIT_BREAKER_CLOSED", "venue healthy again: entries allowed",
                severity="info", data=data,
            )  # fmt: skip

    # ---------------------------------------------------------------- recovery
    async def load(self, doc: dict[str, Any], lease: Lease | None = None) -> Execution | None:
        """Rebuild the execution of a stored parent (restart, dead replica), driven under
        `lease` (the caller's acquisition)."""
        parent = record_of(doc)
        coid = parent.client_order_id
        inst = self.instruments.get(parent.symbol)
        if inst is None:
            await self.publisher.alert(
                "RECOVERY_FAILED", f"{coid}: unknown instrument {parent.symbol}",
                severity="critical",
            )  # fmt: skip
            return None
        # Protective orders are children too, but the protection service drives them.
        kids = {
            c["client_order_id"]: record_of(c)
            for c in await self.store.find("orders", Query(where={"parent_client_order_id": coid}))
            if not is_protective(c)
        }
        fills = [
            f
            for f in await self.store.find("fills", Query(where={"parent_client_order_id": coid}))
            if f["client_order_id"] in kids or parent_of(f["client_order_id"]) is None
        ]
        if parent.exec_state is None:
            # Every intake stores the plan with the parent; without it the execution cannot
            # be rebuilt safely (guessing could send what was sent already): page a human.
            await self.publisher.alert(
                "RECOVERY_FAILED",
                f"{coid}: stored without its execution state; not resumed, nothing sent "
                "(check its children at the venue and close it by hand)",
                severity="critical", data={"symbol": parent.symbol},
            )  # fmt: skip
            return None
        unsent: list[str] = []
        state = ExecState.model_validate(parent.exec_state)
        machine = ParentMachine(state, inst=inst, parent_id=coid)
        for sl, c in machine.children():
            if c.id not in kids:
                # Allocated (parent written first) but its record never was: the send comes
                # after the record, so this child never reached the venue.
                kids[c.id] = self._restore_child(parent, sl.index, c)
                await self.store.insert(
                    "orders", {"_key": c.id, **kids[c.id].model_dump(mode="json")}
                )
                unsent.append(c.id)
        ex = Execution(
            self.deps, parent=parent, children=kids, machine=machine, inst=inst, fills=fills,
            lease=lease,
        )  # fmt: skip
        ex.mark_unsent(unsent)
        return ex

    def _restore_child(self, parent: OrderRecord, slice_index: int, c: ChildState) -> OrderRecord:
        post_only = c.role in (OrderRole.MAKER, OrderRole.CHASE)
        return OrderRecord(
            client_order_id=c.id, parent_client_order_id=parent.client_order_id,
            intent_id=parent.intent_id, venue=parent.venue, market=parent.market,
            symbol=parent.symbol, side=parent.side,
            type=OrderType.MARKET if c.price is None else OrderType.LIMIT, qty=c.qty,
            price=c.price, reduce_only=parent.reduce_only, status=S.SUBMITTED,
            history=[StateChange(status=S.NEW, ts=c.placed_ms),
                     StateChange(status=S.SUBMITTED, ts=c.placed_ms,
                                 reason="restored from the parent's execution state")],
            role=c.role, slice_index=slice_index, post_only=post_only,
            time_in_force=TimeInForce.GTX if post_only else None, ts_send=c.placed_ms,
            created_ts=c.placed_ms, updated_ts=self.clock.now_ms(),
        )  # fmt: skip

    async def recover(self) -> int:
        """Resume every unfinished parent nobody drives (startup, and periodically for
        replicas that died); returns how many were taken over."""
        taken = 0
        for status in LIVE:
            docs = await self.store.find(
                "orders", Query(where={"status": status.value, "parent_client_order_id": None})
            )
            for doc in docs:
                coid = doc["client_order_id"]
                if self.manager.is_active(coid):
                    continue
                lease = await self.leases.acquire(coid)
                if lease is None:
                    continue  # driven by another task or replica
                # The listing is older than the lease: its driver may have finished the order
                # and let go in between. Only the order as stored now is resumed.
                try:
                    fresh = await self.store.get("orders", coid)
                except Exception:
                    await self.leases.release(lease)
                    raise
                if fresh is None or S(fresh["status"]) not in LIVE:
                    await self.leases.release(lease)
                    continue
                try:
                    ex = await self.load(fresh, lease)
                except Exception:
                    log.exception("%s: could not be resumed", coid)
                    await self.leases.release(lease)
                    continue
                if ex is None:
                    await self.leases.release(lease)
                    continue
                self.metrics.recovered.inc()
                await self.publisher.event(
                    "EXEC_RESUMED", client_order_id=coid, symbol=ex.parent.symbol,
                    data={"status": ex.parent.status.value, "children": len(ex.children)},
                )  # fmt: skip
                await self.manager.adopt(ex, step_now=True)
                taken += 1
        return taken

    # ------------------------------------------------------------ cancel / get
    async def get(self, client_order_id: str) -> dict[str, Any] | None:
        order = await self.store.find_one("orders", {"client_order_id": client_order_id})
        if order is None:
            return None
        children = await self.store.find(
            "orders",
            Query(where={"parent_client_order_id": client_order_id}, sort=[("created_ts", "asc")]),
        )
        fills = await self.store.find(
            "fills",
            Query(where={"parent_client_order_id": client_order_id}, sort=[("ts_fill", "asc")]),
        )
        if not fills:
            fills = await self.store.find(
                "fills", Query(where={"client_order_id": client_order_id})
            )
        children.sort(key=lambda c: _child_n(c["client_order_id"]))
        return {
            "order": strip(order),
            "children": [strip(c) for c in children],
            "fills": [strip(f) for f in fills],
        }

    async def cancel(
        self,
        *,
        client_order_id: str | None = None,
        order_id: str | None = None,
        progress: CancelProgress | None = None,
    ) -> Outcome:
        """Cancel a parent's execution (a child id or venue order id names its parent): no new
        child is sent, live children are cancelled, the parent ends CANCELED (or FILLED if the
        venue filled it first). Always allowed, whatever the breaker says."""
        where = (
            {"client_order_id": client_order_id}
            if client_order_id
            else {"venue_order_id": order_id}
        )
        doc = await self.store.find_one("orders", where)
        ident = client_order_id or order_id
        if doc is None:
            return Outcome(
                OrderResponse(result=RequestResult.FAIL, message=f"unknown order {ident!r}"),
                Disposition.UNKNOWN,
            )
        if doc.get("parent_client_order_id"):
            parent_doc = await self.store.find_one(
                "orders", {"client_order_id": doc["parent_client_order_id"]}
            )
            if parent_doc is not None:
                doc = parent_doc
        coid = doc["client_order_id"]
        status = S(doc["status"])
        if status.is_terminal:
            return Outcome(
                OrderResponse(
                    result=RequestResult.FAIL, order_ids=[coid], client_order_id=coid,
                    status=status, message=f"order already {status.value}",
                ),
                Disposition.CONFLICT,
            )  # fmt: skip
        progress = progress or CancelProgress()
        progress.client_order_id = coid
        await self.store.update(
            "orders", coid, {"cancel_requested": True, "updated_ts": self.clock.now_ms()}
        )
        progress.recorded = True
        await self.publisher.event(
            "CANCEL_REQUESTED", client_order_id=coid, symbol=doc["symbol"], data={}
        )
        try:
            return await self._apply_cancel(coid, doc)
        except (InfraError, ExchangeError) as exc:
            # The request is durable: the execution (here or on a peer) completes it. Say so,
            # rather than a 503 that reads as "nothing happened".
            log.warning("%s: cancel recorded, completion deferred: %s", coid, exc)
            return cancel_recorded(
                coid, f"cancel recorded; completing it in the background ({exc})"
            )

    async def _apply_cancel(self, coid: str, doc: dict[str, Any]) -> Outcome:
        ex = self.manager.active.get(coid)
        if ex is None:
            lease = await self.leases.acquire(coid)
            if lease is not None:
                ex = await self.load(await self.store.get("orders", coid) or doc, lease)
                if ex is not None:
                    await self.manager.adopt(ex, step_now=True)
                else:
                    await self.leases.release(lease)
        if ex is not None:
            ex.cancel_local = True
            await ex.step()
            if ex.finished:
                self.manager.wake(coid)
            elif self.manager.autorun and self.sync_wait_ms:
                self.manager.wake(coid)
                await self.manager.wait_done(coid, self.sync_wait_ms / 1000)
            p = ex.parent
            return Outcome(
                OrderResponse(
                    result=RequestResult.OK,
                    order_ids=[coid, *sorted(ex.children, key=_child_n)],
                    client_order_id=coid, status=p.status, filled_qty=p.filled_qty,
                    message=None if ex.finished else "cancel in progress: waiting for the venue",
                ),
                Disposition.DONE if ex.finished else Disposition.RUNNING,
            )  # fmt: skip
        # Driven by another replica: it sees the flag on its next step. Cancel live children
        # at the venue now as well (a cancel is always safe; the owner reads the flag first).
        cancelled = await self._cancel_children_direct(coid)
        return Outcome(
            OrderResponse(
                result=RequestResult.OK, order_ids=[coid, *cancelled], client_order_id=coid,
                status=S.PENDING_CANCEL,
                message="cancel requested; the replica executing it completes the cancel",
            ),
            Disposition.RUNNING,
        )  # fmt: skip

    async def _cancel_children_direct(self, coid: str) -> list[str]:
        out: list[str] = []
        for d in await self.store.find("orders", Query(where={"parent_client_order_id": coid})):
            if is_protective(d):
                continue  # protection outlives a cancelled entry's fills
            child = record_of(d)
            if child.status.is_terminal:
                continue
            try:
                res = await self.ops.cancel(child.market, child.symbol, child.client_order_id)
            except (RetryableError, DefinitiveError, OrderNotFound) as exc:
                log.info("%s: direct cancel failed: %s", child.client_order_id, exc)
                continue
            if res is not None:
                out.append(child.client_order_id)
        return out


def cancel_recorded(coid: str, message: str) -> Outcome:
    """RUNNING (202): the cancel request is stored; the order's driver completes it."""
    return Outcome(
        OrderResponse(
            result=RequestResult.OK, order_ids=[coid], client_order_id=coid,
            status=S.PENDING_CANCEL, message=message,
        ),
        Disposition.RUNNING,
    )  # fmt: skip


def _differing_fields(stored: Any, new: dict[str, Any], prefix: str = "") -> list[str]:
    """Paths of the fields whose values differ between the stored intent and a new one (a child
    record, which has no intent, compares equal: it is answered as the order it names)."""
    if not isinstance(stored, dict):
        return []
    out: list[str] = []
    for name in sorted(set(stored) | set(new)):
        a, b = stored.get(name), new.get(name)
        if isinstance(a, dict) and isinstance(b, dict):
            out.extend(_differing_fields(a, b, f"{prefix}{name}."))
        elif a != b:
            out.append(f"{prefix}{name}")
    return out


def _child_n(cid: str) -> int:
    parsed = parent_of(cid)
    return parsed[1] if parsed else 0


def strip(doc: dict[str, Any]) -> dict[str, Any]:
    """Drop store-internal fields (`_key`, `_id`, `_rev`)."""
    return {k: v for k, v in doc.items() if not k.startswith("_")}

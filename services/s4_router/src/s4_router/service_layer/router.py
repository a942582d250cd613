"""The order router's intake: REST `POST /orders` and the `orders:intent` consumer group both
call :meth:`OrderRouter.submit`. `POST /cancel` (`service_layer.cancels`), the resumption of
stored executions (`service_layer.recovery`) and the order view hang off the same object; every
order and fill goes through the orders repository (`adapters.orders_repo`).

Intake, in order (nothing reaches the venue before the intent is durable):

1. duplicate? — the store's unique `orders.client_order_id` answers (`service_layer.resends`:
   an identical resend returns the existing order, a different body under the id is a 409);
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
from dataclasses import dataclass
from decimal import Decimal
from functools import partial
from typing import Any

from s4_router.adapters.exchange.base import ExchangeError, ExchangePort, MarginModeConflict
from s4_router.adapters.leases import LeaseLost, Leases
from s4_router.adapters.orders_repo import OrdersRepository
from s4_router.domain.outcomes import Disposition, Outcome
from s4_router.metrics import RouterMetrics
from s4_router.policies.circuit_breaker import CircuitBreaker
from s4_router.policies.clock_guard import ClockSkewGuard
from s4_router.policies.model import Note
from s4_router.policies.parent_machine import ParentMachine
from s4_router.policies.pretrade import PretradeLimits, PretradeRefused, check_intake, check_market
from s4_router.policies.registry import PolicyLimits, PolicyRefused, resolve_policy
from s4_router.policies.route_table import RouteTable
from s4_router.service_layer.book_source import BookSource
from s4_router.service_layer.cancels import Cancels, child_n
from s4_router.service_layer.exec_deps import ExecDeps
from s4_router.service_layer.execution import Execution
from s4_router.service_layer.fill_book import FillBook
from s4_router.service_layer.manager import ExecutionManager
from s4_router.service_layer.margin import MarginSetup
from s4_router.service_layer.protection import ProtectionService
from s4_router.service_layer.publisher import Publisher
from s4_router.service_layer.quality_tracker import QualityTracker
from s4_router.service_layer.recovery import Recovery
from s4_router.service_layer.refusals import Refusals, parent_record
from s4_router.service_layer.resends import Resends
from s4_router.service_layer.venue_ops import VenueOps
from svckit import keys
from svckit.clock import Clock
from svckit.errors import DuplicateKey, InfraError
from svckit.redisio import RedisClient, claim_for_execution, new_token
from tradekit.enums import Market, OrderStatus, OrderType
from tradekit.errors import InvalidIntent
from tradekit.instrument import Instrument
from tradekit.intents import MakerTakerPolicy, OcoPolicy, OrderIntent

log = logging.getLogger(__name__)

S = OrderStatus


@dataclass(kw_only=True, eq=False)
class OrderRouter:
    orders: OrdersRepository
    redis: RedisClient
    exchange: ExchangePort
    instruments: dict[str, Instrument]
    clock: Clock
    metrics: RouterMetrics
    route_table: RouteTable  # swapped whole on a hot reload (route_table_watch)
    limits: PolicyLimits  # likewise: each intake reads them once
    breaker: CircuitBreaker
    skew: ClockSkewGuard
    ops: VenueOps
    manager: ExecutionManager
    leases: Leases
    publisher: Publisher
    quality: QualityTracker
    owner: str
    margin: MarginSetup
    fills: FillBook
    pretrade: PretradeLimits
    books: BookSource  # pre-trade books: the published mkt:depth when fresh, else the venue
    protection: ProtectionService | None = None
    lock_wait_ms: int = 1000
    sync_wait_ms: int = 200

    def __post_init__(self) -> None:
        self.instruments = dict(self.instruments)
        self.deps = ExecDeps(
            orders=self.orders,
            redis=self.redis,
            ops=self.ops,
            clock=self.clock,
            metrics=self.metrics,
            quality=self.quality,
            publisher=self.publisher,
            venue=self.exchange.venue,
            owner=self.owner,
            fills=self.fills,
            leases=self.leases,
            lock_wait_ms=self.lock_wait_ms,
            on_progress=self.protection.on_entry if self.protection is not None else None,
            books=self.books,
        )
        self.resends = Resends(orders=self.orders, metrics=self.metrics, publisher=self.publisher)
        self.refusals = Refusals(
            d=self.deps, breaker=self.breaker, skew=self.skew, resends=self.resends
        )
        self.recovery = Recovery(d=self.deps, instruments=self.instruments, manager=self.manager)
        self.cancels = Cancels(
            d=self.deps,
            recovery=self.recovery,
            manager=self.manager,
            sync_wait_ms=self.sync_wait_ms,
        )

    # ------------------------------------------------------------------ intake
    async def submit(
        self, intent: OrderIntent, *, source: str, sync_wait_ms: int | None = None
    ) -> Outcome:
        """Validate, deduplicate, start the execution and persist; see the module doc."""
        t0 = self.clock.monotonic()
        coid = intent.client_order_id
        existing = await self.orders.get(coid)
        if existing is not None:
            return await self.resends.answer(existing, intent, source)
        try:
            inst, qty = self._validate(intent)
        except InvalidIntent as exc:
            self.metrics.intents.labels(source, "invalid").inc()
            reason = getattr(exc, "reason", None)
            return Outcome.of(
                Disposition.INVALID, coid, order_ids=[], message=str(exc), reason=reason
            )
        # Every refusal from here on is recorded (a REJECTED parent): see `service_layer.refusals`.
        refuse = partial(self.refusals.refuse, intent, qty, source=source)
        refusal = await self.refusals.gate(intent)
        if refusal is not None:
            return await refuse(*refusal)
        try:
            # A close may use an older published book when the venue cannot answer.
            book = await self.books.book(
                intent.market, intent.symbol, allow_stale=intent.reduce_only
            )
        except ExchangeError as exc:
            # Recorded, not just answered: the stream copy of this intent must not execute it
            # minutes later, and the consumer may acknowledge the entry (nothing is lost).
            return await refuse(
                "venue_unavailable", f"venue unavailable after retries, nothing sent: {exc}"
            )
        if not (book.bids and book.asks):
            return await refuse("no_book", f"{intent.symbol}: no two-sided book, nothing sent")
        arrival = book.mid
        # Market-dependent pre-trade checks (collar, notional, SL/TP vs the mid): the refusal
        # is recorded (REJECTED) so that the other path's copy cannot pass later on a moved mid.
        why = check_market(intent, inst, qty, mid=arrival, limits=self.pretrade)
        if why is not None:
            return await refuse(why.reason.value, why.message, kind=Disposition.INVALID)
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
                entry_policy,
                notional=qty * price,
                table=self.route_table,
                limits=self.limits,
                inst=inst,
            )
        except (InvalidIntent, PolicyRefused) as exc:
            self.metrics.intents.labels(source, "invalid").inc()
            return Outcome.of(Disposition.INVALID, coid, order_ids=[], message=str(exc))
        # The first venue side effect (margin type, leverage) comes after every refusal above.
        if intent.market is Market.FUT and not intent.reduce_only:
            try:
                await self.margin.ensure(intent.symbol, intent.leverage)
            except MarginModeConflict as exc:
                # Definitive until someone closes that exposure: not "venue unavailable".
                return await refuse("margin_mode_conflict", str(exc), kind=Disposition.CONFLICT)
            except ExchangeError as exc:
                return await refuse(
                    "margin_setup",
                    f"could not set ISOLATED margin / leverage at the venue, nothing sent: {exc}",
                )
        now = self.clock.now_ms()
        machine = ParentMachine.plan(
            parent_id=coid,
            side=intent.side,
            qty=qty,
            reduce_only=intent.reduce_only,
            config=resolved.config,
            inst=inst,
            now=now,
            ref_price=price,
        )
        lease = await self.leases.acquire(coid)
        if lease is None:
            # Another request (here or on a peer) is starting this very intent right now.
            return await self.resends.stored_or_busy(intent, source)
        if intent.needs_protection and self.protection is not None:
            try:
                await self.protection.register(intent, inst)
            except InfraError:
                await self.leases.release(lease)
                raise  # nothing sent; the caller (or the stream) retries
        parent = parent_record(
            intent,
            qty,
            OrderType.MARKET if resolved.config.policy == "MARKET" else OrderType.LIMIT,
            venue=self.exchange.venue,
            now=now,
            source=source,
            arrival_mid=arrival,
            exec_state=machine.s.model_dump(mode="json"),
            adjustments=list(resolved.adjustments),
        )
        ex = Execution(
            self.deps,
            parent=parent,
            children={},
            machine=machine,
            inst=inst,
            book=book,
            t_intake=t0,
            parent_stored=False,
            lease=lease,
        )
        # Logged with the step's own events, after the first child went out (latency).
        ex.events.append(
            Note(
                "INTENT_ACCEPTED",
                {
                    "source": source,
                    "policy": resolved.config.policy,
                    "qty": str(qty),
                    "arrival_mid": str(arrival),
                    "route_band": resolved.config.route_band,
                    "slices": len(machine.s.slices),
                    "notes": list(resolved.notes),
                },
            )
        )
        try:
            await ex.step()
        except DuplicateKey:
            # Stored by another replica between our lookup and our insert; nothing was sent.
            await self.leases.release(lease)
            return await self.resends.stored_or_busy(intent, source)
        except LeaseLost:
            # Our lease expired mid-step (a stall) and another driver holds it: hands off.
            return await self.resends.stored_or_busy(intent, source)
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
        p = ex.parent
        ok = p.status is S.FILLED or (p.filled_qty > 0 and p.status is not S.REJECTED)
        outcome = Outcome.of(
            Disposition.DONE if ex.finished else Disposition.RUNNING,
            coid,
            ok=ok or not ex.finished,
            order_ids=[coid, *sorted(ex.children, key=child_n)],
            status=p.status,
            filled_qty=p.filled_qty,
            message=p.message
            if ex.finished
            else f"executing {ex.machine.s.config.policy} in the background; "
            f"GET /orders/{coid} or orders:executed for the outcome",
        )
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

    # ---- the order view (recovery and cancels: `self.recovery`, `self.cancels`) ----------
    async def get(self, client_order_id: str) -> dict[str, Any] | None:
        """An order with its children (by child number) and its fills, as stored."""
        order = await self.orders.get(client_order_id)
        if order is None:
            return None
        children = await self.orders.children(client_order_id)
        fills = await self.orders.fills_of_parent(client_order_id) or await self.orders.fills(
            client_order_id=client_order_id
        )
        children.sort(key=lambda c: child_n(c.client_order_id))
        return {
            "order": order.model_dump(mode="json"),
            "children": [c.model_dump(mode="json") for c in children],
            "fills": [f.model_dump(mode="json") for f in fills],
        }

"""Scheduled rebalance tasks (issue 14): symmetric / intelligent rebalance and the 15-minute job.

A run's identity, claim and replay are described in `task_runs.py`. The 15-minute job runs
cost/PnL first, then the rebalance; each step is isolated (a failing step reports
`status: "error"` and its message, the other still runs; the job answers `partial`). Plans and
results are kept: the latest per strategy in Redis (`rebalance:plan:{strategy}`), every run in
the store (`strategy_events`, kind `TASK_RUN`), cost snapshots in `positions_snapshots`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar

from s3_strategy.adapters.entries import OPEN_STATUSES
from s3_strategy.adapters.intent_publisher import IntentPublisher
from s3_strategy.adapters.spot_reader import SpotReader
from s3_strategy.config import Settings
from s3_strategy.domain.engine import Engine
from s3_strategy.domain.rebalance.costs import CostFill, PositionCost, position_cost
from s3_strategy.domain.rebalance.intelligent import IntelligentConfig, plan_intelligent
from s3_strategy.domain.rebalance.plan import Action, FeeModel, HoldReason, Plan, Quote, hold
from s3_strategy.domain.rebalance.symmetric import SymmetricConfig, plan_symmetric
from s3_strategy.metrics import StrategyMetrics
from s3_strategy.service_layer.task_runs import (
    REBALANCE_COID_PREFIX,
    STRATEGY_OF,
    TASK_JOB,
    RunDisposition,
    RunRequest,
    RunResult,
    TaskContext,
    TaskInputError,
    execution_id,
    rebalance_client_order_id,
)
from svckit import jsonutil
from svckit.clock import Clock
from svckit.redisio import RedisClient, claim_once, release_claim
from svckit.store.base import DocumentStore, Query
from tradekit.enums import Market, Side
from tradekit.instrument import Instrument
from tradekit.intents import MakerTakerPolicy, MarketPolicy, OrderIntent

log = logging.getLogger(__name__)
C = TypeVar("C", SymmetricConfig, IntelligentConfig)


def _jsonable(obj: Any) -> Any:
    return jsonutil.loads(jsonutil.dumps(obj))


@dataclass(kw_only=True, eq=False)
class TaskService:
    settings: Settings
    redis: RedisClient
    store: DocumentStore
    publisher: IntentPublisher
    reader: SpotReader | None
    engine: Callable[[], Engine]
    clock: Clock
    metrics: StrategyMetrics

    # ---- configuration -----------------------------------------------------------------------
    def instrument(self) -> Instrument:
        plan = self.engine().plans.get(self.settings.rebalance_symbol)
        if plan is None:
            raise TaskInputError(f"{self.settings.rebalance_symbol} is not in instrument_registry")
        return plan.inst

    def config(self, kind: type[C], inst: Instrument) -> C:
        """The planner's config from S3_REBALANCE_* (the fee defaults to the taker fee)."""
        s, rate = self.settings, self.settings.rebalance_fee_rate
        return kind(
            target_ratio=s.rebalance_target_ratio,
            threshold_pct=s.rebalance_threshold_pct,
            min_notional_usdt=s.rebalance_min_notional_usdt,
            max_notional_usdt=s.rebalance_max_notional_usdt,
            fee=FeeModel(
                enabled=s.rebalance_fee_aware, fee_rate=inst.taker_fee if rate is None else rate
            ),
        )

    # ---- one run -----------------------------------------------------------------------------
    async def run(self, req: RunRequest) -> RunResult:
        """Runs an execution once; a finished one is replayed, a running one is not touched."""
        t0 = time.perf_counter()
        eid = execution_id(
            task=req.task, path=req.path, job_name=req.job_name, schedule_time=req.schedule_time
        )
        if req.dry_run:
            # A dry run of a slot is its own execution: replaying it to the live delivery of the
            # same slot would silently skip the trade.
            eid += "-dry"
        key = f"task:exec:{eid}"
        marker = jsonutil.dumps({"state": "running", "since": self.clock.now_ms()})
        # claim_once: a SET NX that redis-py retried after a lost answer is still ours.
        if not await claim_once(self.redis, key, marker, self.settings.task_lease_s):
            raw = await self.redis.get(key)
            doc = jsonutil.loads(raw) if raw else {}
            if doc.get("state") == "done":
                body = dict(doc["result"])
                body["replayed"] = True
                self.metrics.task_runs.labels(req.task, "none", "replayed").inc()
                log.info("task replayed", extra={"task": req.task, "execution_id": eid})
                return RunResult(RunDisposition.REPLAYED, body)
            return RunResult(
                RunDisposition.IN_PROGRESS,
                {
                    "status": "in_progress",
                    "task": req.task,
                    "execution_id": eid,
                    "detail": "this execution is running; retry later for its result",
                },
            )
        try:
            body = await self._execute(req, eid)
        except BaseException:
            await release_claim(self.redis, key, marker)  # nothing finished: a retry may run it
            raise
        body["duration_ms"] = round((time.perf_counter() - t0) * 1000, 3)
        ok = body["status"] != "error"
        if ok:
            done = jsonutil.dumps({"state": "done", "result": body})
            await self.redis.set(key, done, ex=self.settings.task_replay_ttl_s)
        else:
            # Failed before anything was stored as done: the scheduler's retry runs it again,
            # with the same execution id and so the same client order ids.
            await release_claim(self.redis, key, marker)
        await self._record(req, body, t0)
        return RunResult(RunDisposition.DONE if ok else RunDisposition.FAILED, body)

    async def _execute(self, req: RunRequest, eid: str) -> dict[str, Any]:
        now = self.clock.now_ms()
        head: dict[str, Any] = {
            "task": req.task,
            "auth": req.auth,
            "execution_id": eid,
            "timestamp": datetime.fromtimestamp(now / 1000, UTC).isoformat().replace("+00:00", "Z"),
            "dry_run": req.dry_run,
            "replayed": False,
        }
        if req.task == TASK_JOB:
            cost = await self._step(lambda: self.cost_update(req, eid))
            strategy = self.settings.rebalance_job_strategy
            reb = await self._step(lambda: self.rebalance(strategy, req, eid))
            failed = [s for s in (cost, reb) if s["status"] == "error"]
            status = "success" if not failed else ("partial" if len(failed) == 1 else "error")
            return {"status": status, **head, "cost_update": cost, "rebalance": reb}
        step = await self._step(lambda: self.rebalance(STRATEGY_OF[req.task], req, eid))
        body: dict[str, Any] = {
            "status": "error" if step["status"] == "error" else "success",
            **head,
            "plan": step.get("plan"),
            "orders": step.get("orders", []),
            "steps": {"rebalance": {"duration_ms": step["duration_ms"]}},
        }
        for extra in ("error", "publish", "cost"):
            if extra in step:
                body[extra] = step[extra]
        return body

    async def _step(self, fn: Callable[[], Awaitable[dict[str, Any]]]) -> dict[str, Any]:
        t0 = time.perf_counter()
        try:
            out = await fn()
            out.setdefault("status", "success")
        except Exception as exc:
            log.warning("task step failed", exc_info=not isinstance(exc, TaskInputError))
            out = {"status": "error", "error": f"{type(exc).__name__}: {exc}"}
        out["duration_ms"] = round((time.perf_counter() - t0) * 1000, 3)
        return _jsonable(out)  # type: ignore[no-any-return]

    # ---- inputs ------------------------------------------------------------------------------
    def _need_reader(self, what: str) -> SpotReader:
        if self.reader is None:
            raise TaskInputError(
                f"no exchange to read {what} from (S3_EXCHANGE=none): "
                "give it in `context` with dry_run: true, or configure S3_EXCHANGE"
            )
        return self.reader

    async def _balances(self, inst: Instrument, ctx: TaskContext | None) -> tuple[Decimal, ...]:
        """(base free, base locked, quote free, quote locked)."""
        if ctx is not None and ctx.balances is not None:
            missing = {inst.base_asset, inst.quote_asset} - set(ctx.balances)
            if missing:
                raise TaskInputError(f"context.balances lacks {sorted(missing)}")
            zero = Decimal(0)
            return ctx.balances[inst.base_asset], zero, ctx.balances[inst.quote_asset], zero
        got = await self._need_reader("balances").balances([inst.base_asset, inst.quote_asset])
        b, q = got[inst.base_asset], got[inst.quote_asset]
        return b.free, b.locked, q.free, q.locked

    async def _quote(self, inst: Instrument, ctx: TaskContext | None) -> Quote:
        if ctx is not None and ctx.price is not None:
            return Quote(ctx.price)
        t = await self._need_reader("the ticker").ticker(inst.symbol)
        return Quote(t.last, t.bid, t.ask)

    async def position(
        self, inst: Instrument, *, price: Decimal | None, holding: Decimal | None
    ) -> PositionCost:
        docs = await self.store.find(
            "fills", Query(where={"symbol": inst.symbol, "market": Market.SPOT.value})
        )
        fills = [
            CostFill(
                side=str(d["side"]),
                qty=Decimal(str(d["qty"])),
                price=Decimal(str(d["price"])),
                fee=Decimal(str(d.get("fee") or 0)),
                fee_asset=str(d.get("fee_asset") or ""),
                ts=int(d.get("ts_fill") or 0),
                trade_id=str(d.get("trade_id") or ""),
            )
            for d in docs
        ]
        return position_cost(
            fills,
            asset=inst.base_asset,
            quote_asset=inst.quote_asset,
            opening_cost=self.settings.rebalance_cost_estimate,
            price=price,
            holding=holding,
        )

    # ---- steps -------------------------------------------------------------------------------
    async def cost_update(self, req: RunRequest, eid: str) -> dict[str, Any]:
        inst = self.instrument()
        ctx = req.context
        price: Decimal | None = None
        holding: Decimal | None = None
        notes: list[str] = []
        try:
            price = (await self._quote(inst, ctx)).price
            bf, bl, _, _ = await self._balances(inst, ctx)
            holding = bf + bl
        except TaskInputError as exc:
            notes.append(str(exc))  # PnL without a mark: still the fills' cost and realised
        pos = await self.position(inst, price=price, holding=holding)
        snapshot = {
            "symbol": inst.symbol,
            "ts": self.clock.now_ms(),
            "execution_id": eid,
            "dry_run": req.dry_run,
            **pos.as_dict(),
        }
        if not req.dry_run:
            await self.store.upsert(
                "positions_snapshots", f"{inst.base_asset}-{eid}", _jsonable(snapshot)
            )
        out: dict[str, Any] = {"positions": {inst.base_asset: snapshot}}
        if notes:
            out["notes"] = notes
        return out

    async def rebalance(self, strategy: str, req: RunRequest, eid: str) -> dict[str, Any]:
        if req.dry_run:
            return await self._rebalance(strategy, req, eid)
        # One live rebalance of a pair at a time (a manual run and the job, two strategies):
        # each plans from balances the other is about to change.
        inst = self.instrument()
        lock = f"lock:rebalance:{inst.symbol}"
        # Held under the execution id: a lock that already holds it is ours (a retried SET NX),
        # and only its own execution releases it (one that outlived its TTL frees no other's).
        if not await claim_once(self.redis, lock, eid, self.settings.task_lease_s):
            holder = await self.redis.get(lock)
            held = holder.decode() if isinstance(holder, bytes) else holder
            return {
                "strategy": strategy,
                "plan": {
                    "action": Action.HOLD.value,
                    "quantity": 0,
                    "reason": f"another rebalance of {inst.symbol} is running ({held})",
                    "reason_code": HoldReason.RUN_IN_PROGRESS.value,
                },
                "orders": [],
            }
        try:
            return await self._rebalance(strategy, req, eid)
        finally:
            await release_claim(self.redis, lock, eid)

    async def _rebalance(self, strategy: str, req: RunRequest, eid: str) -> dict[str, Any]:
        inst = self.instrument()
        ctx = req.context
        bf, bl, qf, ql = await self._balances(inst, ctx)
        quote = await self._quote(inst, ctx)
        out: dict[str, Any] = {"strategy": strategy}
        balances = {"base_free": bf, "quote_free": qf, "base_locked": bl, "quote_locked": ql}
        plan: Plan
        if strategy == "symmetric":
            plan = plan_symmetric(
                **balances, quote=quote, instrument=inst, config=self.config(SymmetricConfig, inst)
            )
        else:
            cfg = self.config(IntelligentConfig, inst)
            if ctx is not None and ctx.closes is not None:
                closes = ctx.closes
            else:
                closes = await self._need_reader("klines").closes(
                    inst.symbol, self.settings.rebalance_kline_interval, cfg.ma_long
                )
            if ctx is not None and ctx.cost_avg is not None:
                cost_avg = ctx.cost_avg
            else:
                pos = await self.position(inst, price=quote.price, holding=bf + bl)
                cost_avg = pos.avg_cost
                out["cost"] = {"avg_cost": pos.avg_cost, "source": pos.source}
            plan = plan_intelligent(
                **balances,
                quote=quote,
                closes=closes,
                cost_avg=cost_avg,
                instrument=inst,
                config=cfg,
            )
        # Rebalance orders of the pair S4 still works on (from the shared `orders`).
        pending: list[str] = []
        for status in OPEN_STATUSES:
            docs = await self.store.find(
                "orders", Query(where={"symbol": inst.symbol, "status": status})
            )
            pending += [
                str(d["client_order_id"])
                for d in docs
                if d.get("parent_client_order_id") is None
                and str(d.get("client_order_id", "")).startswith(REBALANCE_COID_PREFIX)
            ]
        if pending and plan.action is not Action.HOLD:
            # The balances still hold what that order will trade: planning again would trade
            # the same drift twice.
            plan = hold(
                HoldReason.ORDER_IN_FLIGHT,
                f"rebalance order(s) still working: {', '.join(sorted(pending))}",
                plan.price,
                {**plan.details, "planned": plan.as_dict()},
            )
        out["plan"] = plan.as_dict()
        out["orders"] = []
        if plan.action is Action.HOLD:
            return out
        coid = rebalance_client_order_id(eid, strategy)
        policy: MakerTakerPolicy | MarketPolicy = (
            MarketPolicy()
            if self.settings.rebalance_exec_policy == "MARKET"
            else MakerTakerPolicy(maker_wait_ms=self.settings.rebalance_maker_wait_ms)
        )
        intent = OrderIntent(
            intent_id=coid,
            market=Market.SPOT,
            symbol=inst.symbol,
            side=Side.BUY if plan.action is Action.BUY else Side.SELL,
            qty=plan.quantity,
            exec_policy=policy,
            client_order_id=coid,
            ref_price=plan.price,
            config_rev=self.engine().config_rev,
            created_ts=self.clock.now_ms(),
        )
        body = intent.model_dump(mode="json", exclude_none=True)
        if req.dry_run:
            out["plan"]["would_send"] = body
            return out
        report = await self.publisher.publish(body)
        out["orders"] = [intent.client_order_id]
        out["publish"] = asdict(report)
        s4 = report.s4 or {}
        if not report.delivered:
            raise RuntimeError(f"intent {intent.client_order_id} not delivered: {report.errors}")
        if report.rest == "ok" and s4.get("result") == "FAIL":
            raise RuntimeError(f"S4 refused {intent.client_order_id}: {s4.get('message')}")
        return out

    # ---- records -----------------------------------------------------------------------------
    async def _record(self, req: RunRequest, body: dict[str, Any], t0: float) -> None:
        """The latest plan per strategy, the run's document, its metrics and its log line."""
        reb = body.get("rebalance") or {}
        if body["task"] == TASK_JOB:
            plans = [(str(reb.get("strategy")), reb["plan"])] if reb.get("plan") else []
        else:
            plans = [(STRATEGY_OF[body["task"]], body["plan"])] if body.get("plan") else []
        orders = body.get("orders") or reb.get("orders")
        try:
            if not req.dry_run:
                for strategy, plan in plans:
                    latest = {
                        "execution_id": body["execution_id"],
                        "plan": plan,
                        "orders": orders or [],
                        "timestamp": body["timestamp"],
                    }
                    await self.redis.set(f"rebalance:plan:{strategy}", jsonutil.dumps(latest))
            doc = {"kind": "TASK_RUN", "ts": self.clock.now_ms(), **body}
            await self.store.upsert("strategy_events", f"task-{body['execution_id']}", doc)
        except Exception:
            # The run's outcome stands (orders are S4's to persist); a lost record is logged.
            log.exception("task record failed", extra={"execution_id": body["execution_id"]})
        action = str(plans[0][1].get("action")) if plans else "none"
        outcome = "dry_run" if req.dry_run and body["status"] == "success" else body["status"]
        self.metrics.task_runs.labels(req.task, action, outcome).inc()
        self.metrics.task_duration.labels(req.task).observe(time.perf_counter() - t0)
        steps = {
            name: {"status": body[name]["status"], "duration_ms": body[name]["duration_ms"]}
            for name in ("cost_update", "rebalance")
            if isinstance(body.get(name), dict)
        }
        log.info(
            "task run",
            extra={
                "task": req.task,
                "execution_id": body["execution_id"],
                "status": body["status"],
                "dry_run": req.dry_run,
                "auth": req.auth,
                "action": action,
                "orders": orders,
                "duration_ms": body["duration_ms"],
                "steps": steps or body.get("steps"),
            },
        )

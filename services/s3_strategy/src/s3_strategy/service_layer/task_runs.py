"""Scheduled task runs (issue 14): what a run is asked, how it is identified, how it ended.

One run = one *execution*:

* its id comes from the scheduler's job name and the 15-minute window of its schedule time
  (`X-CloudScheduler-JobName`, `X-CloudScheduler-ScheduleTime`), so every delivery of the same
  schedule slot has the same id; a run without a schedule time (an operator's manual run) is a
  new execution each time;
* Redis `task:exec:{execution_id}` is claimed (SET NX, with a lease) before anything runs. A
  second delivery finds it: a finished run's stored result is returned (`replayed: true`,
  nothing traded); a run still in progress is reported as such (the scheduler retries later);
* an order's client_order_id is a digest of (execution id, strategy): a run that dies half-way
  and is retried re-sends the *same* id, which S4 deduplicates, so it can never trade twice.

How a run ended is a :class:`RunDisposition`; `entrypoints/` alone turns it into an HTTP status.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from tradekit.intents import MAX_NUMBER, PosDecimal

WINDOW_S = 15 * 60
TASK_SYMMETRIC = "rebalance-symmetric"
TASK_INTELLIGENT = "rebalance-intelligent"
TASK_JOB = "15-min-job"
STRATEGY_OF = {TASK_SYMMETRIC: "symmetric", TASK_INTELLIGENT: "intelligent"}
REBALANCE_COID_PREFIX = "rb-"


class TaskInputError(Exception):
    """An input the run needs is unavailable (no exchange configured, bad what-if...)."""


# Bounded as the intents they become are (tradekit.intents.MAX_NUMBER): a what-if price of
# 1e308 would otherwise fail the run inside the task (a 503) instead of being refused (422).
NonNegDec = Annotated[Decimal, Field(ge=0, le=MAX_NUMBER, allow_inf_nan=False)]


class TaskContext(BaseModel):
    """What-if inputs (dry runs only); anything left out is read from the exchange."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    balances: dict[str, NonNegDec] | None = Field(default=None, max_length=8)
    price: PosDecimal | None = None
    cost_avg: PosDecimal | None = None
    closes: list[PosDecimal] | None = Field(default=None, max_length=2000)

    @field_validator("balances")
    @classmethod
    def _assets(cls, v: dict[str, Decimal] | None) -> dict[str, Decimal] | None:
        return {k.upper(): x for k, x in (v or {}).items()} or None  # {} reads them live


@dataclass(frozen=True, slots=True)
class RunRequest:
    task: str
    path: str
    auth: str
    dry_run: bool = False
    context: TaskContext | None = None
    job_name: str | None = None
    schedule_time: str | None = None


class RunDisposition(StrEnum):
    DONE = "done"  # ran now (success or partial): its result is stored for replays
    REPLAYED = "replayed"  # ran before: the stored result, nothing traded
    IN_PROGRESS = "in_progress"  # another delivery is running it: retry later for its result
    FAILED = "failed"  # nothing stored as done: a retry runs it again, with the same order ids


@dataclass(frozen=True, slots=True)
class RunResult:
    disposition: RunDisposition
    body: dict[str, Any]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-")[:40] or "task"


def execution_id(*, task: str, path: str, job_name: str | None, schedule_time: str | None) -> str:
    """Deterministic for a scheduled delivery (job + 15-minute window), unique for a manual run."""
    if schedule_time is None:
        return f"manual-{_slug(task)}-{uuid.uuid4().hex[:16]}"
    # RFC 3339 as Cloud Scheduler sends it (`2026-12-04T19:15:00.123Z`); ValueError if not.
    when = datetime.fromisoformat(schedule_time.strip().replace("Z", "+00:00"))
    if when.tzinfo is None:
        raise ValueError("schedule time needs a timezone")
    window = int(when.timestamp()) // WINDOW_S * WINDOW_S
    job = job_name or path
    digest = hashlib.blake2b(f"{job}|{window}".encode(), digest_size=6).hexdigest()
    stamp = datetime.fromtimestamp(window, UTC).strftime("%Y%m%dT%H%MZ")
    return f"{_slug(job.rsplit('/', 1)[-1])}-{stamp}-{digest}"


def rebalance_client_order_id(execution_id: str, strategy: str) -> str:
    digest = hashlib.blake2b(f"{execution_id}|{strategy}".encode(), digest_size=12).hexdigest()
    return f"{REBALANCE_COID_PREFIX}{digest}"  # 27 characters: room for S4's child suffix -E{n}

"""Scheduler task routes: `POST /tasks/rebalance/symmetric`, `/tasks/rebalance/intelligent`,
`/tasks/15-min-job` (issue 14).

Authentication is this router's own dependency: a verified OIDC ID token (Cloud Scheduler's,
see svckit.oidc) or the operator's `S3_ADMIN_TOKEN`, both as `Authorization: Bearer …`. The
`X-CloudScheduler` header alone grants nothing: anyone can send a header. A refused request has
no side effect (it is refused before the execution is claimed). The app-level bearer-token
middleware must list `/tasks/` among the paths that authenticate themselves.
"""

from __future__ import annotations

import hmac
import logging
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, Depends, Header, HTTPException, Request, Response
from pydantic import BaseModel, ConfigDict, Field, model_validator

from s3_strategy.entrypoints.deps import ContainerDep
from s3_strategy.entrypoints.statuses import TASK_STATUS
from s3_strategy.service_layer.task_runs import (
    TASK_INTELLIGENT,
    TASK_JOB,
    TASK_SYMMETRIC,
    RunRequest,
    WhatIf,
)
from svckit import jsonutil
from svckit.oidc import OidcError
from tradekit.intents import MAX_NUMBER

if TYPE_CHECKING:
    from s3_strategy.bootstrap import S3Container

log = logging.getLogger(__name__)

# Bounded as the intents they become are (tradekit.intents.MAX_NUMBER): a what-if price of
# 1e308 would otherwise fail the run inside the task (a 503) instead of being refused (422).
PosDec = Annotated[Decimal, Field(gt=0, le=MAX_NUMBER, allow_inf_nan=False)]
NonNegDec = Annotated[Decimal, Field(ge=0, le=MAX_NUMBER, allow_inf_nan=False)]


class TaskContext(BaseModel):
    """What-if inputs (dry runs only); anything left out is read from the exchange."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    balances: dict[str, NonNegDec] | None = Field(default=None, max_length=8)
    price: PosDec | None = None
    cost_avg: PosDec | None = None
    closes: list[PosDec] | None = Field(default=None, max_length=2000)


class TaskRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    dry_run: bool = False
    context: TaskContext | None = None

    @model_validator(mode="after")
    def _what_if_is_dry(self) -> TaskRequest:
        if self.context is not None and not self.dry_run:
            raise ValueError("context (what-if inputs) is accepted only with dry_run: true")
        return self


def _unauthorized(detail: str, status: int = 401) -> HTTPException:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return HTTPException(status, detail, headers=headers)


async def require_task_auth(request: Request) -> str:
    """`admin-token` or `oidc:<email>`; 401/403 otherwise. OIDC or S3_ADMIN_TOKEN only."""
    c: S3Container = request.app.state.container
    authz = request.headers.get("authorization", "")
    scheme, _, token = authz.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise _unauthorized("a bearer token (OIDC ID token or admin token) is required")
    admin = c.settings.admin_token
    if admin is not None and hmac.compare_digest(token.encode(), admin.get_secret_value().encode()):
        return "admin-token"
    if c.oidc is None:
        raise _unauthorized("invalid token (OIDC is not configured: S3_SCHEDULER_AUDIENCE)")
    try:
        who = await c.oidc.verify(token)
    except OidcError as exc:
        task = _TASK_OF_PATH.get(request.url.path, "unknown")
        c.metrics.task_runs.labels(task, "none", "denied").inc()
        # The scheduler does not show our answer's body: the reason must be in our logs.
        log.warning(
            "task auth refused",
            extra={
                "task": task,
                "path": request.url.path,
                "status": exc.status,
                "reason": str(exc),
            },
        )
        raise _unauthorized(str(exc), exc.status) from None
    return f"oidc:{who}"


AuthDep = Annotated[str, Depends(require_task_auth)]
_TASK_OF_PATH = {
    "/tasks/rebalance/symmetric": TASK_SYMMETRIC,
    "/tasks/rebalance/intelligent": TASK_INTELLIGENT,
    "/tasks/15-min-job": TASK_JOB,
}


async def _run(
    task: str,
    request: Request,
    c: S3Container,
    auth: str,
    body: TaskRequest | None,
    job_name: str | None,
    schedule_time: str | None,
) -> Response:
    body = body or TaskRequest()
    ctx = body.context
    what_if = None
    if ctx is not None:
        what_if = WhatIf(
            balances={k.upper(): v for k, v in ctx.balances.items()} if ctx.balances else None,
            price=ctx.price,
            cost_avg=ctx.cost_avg,
            closes=list(ctx.closes) if ctx.closes is not None else None,
        )
    try:
        run = await c.tasks.run(
            RunRequest(
                task=task,
                path=request.url.path,
                auth=auth,
                dry_run=body.dry_run,
                context=what_if,
                job_name=job_name,
                schedule_time=schedule_time,
            )
        )
    except ValueError as exc:  # a malformed X-CloudScheduler-ScheduleTime
        raise HTTPException(400, f"X-CloudScheduler-ScheduleTime: {exc}") from None
    status = TASK_STATUS[run.disposition]
    return Response(jsonutil.dumpb(run.body), status_code=status, media_type="application/json")


JobName = Annotated[str | None, Header(alias="X-CloudScheduler-JobName")]
ScheduleTime = Annotated[str | None, Header(alias="X-CloudScheduler-ScheduleTime")]

# Every route under /tasks is authenticated here (the bearer middleware lets /tasks/ through):
# a router-level dependency, so no route can be added without it.
router = APIRouter(prefix="/tasks", tags=["tasks"], dependencies=[Depends(require_task_auth)])
_RESPONSES: dict[int | str, dict[str, str]] = {
    400: {"description": "malformed X-CloudScheduler-ScheduleTime"},
    401: {"description": "no or invalid token"},
    403: {"description": "valid token, principal not allowed"},
    409: {"description": "this execution is in progress"},
    503: {"description": "the run failed; a retry re-runs it with the same order ids"},
}


@router.post("/rebalance/symmetric", responses=_RESPONSES)
async def rebalance_symmetric(
    request: Request,
    c: ContainerDep,
    auth: AuthDep,
    job: JobName = None,
    when: ScheduleTime = None,
    body: TaskRequest | None = None,
) -> Response:
    """Symmetric 50:50 value rebalance of the configured pair; trades unless dry_run."""
    return await _run(TASK_SYMMETRIC, request, c, auth, body, job, when)


@router.post("/rebalance/intelligent", responses=_RESPONSES)
async def rebalance_intelligent(
    request: Request,
    c: ContainerDep,
    auth: AuthDep,
    job: JobName = None,
    when: ScheduleTime = None,
    body: TaskRequest | None = None,
) -> Response:
    """MA7/MA25 cross + cost-guarded rebalance with core/swing/active tiers."""
    return await _run(TASK_INTELLIGENT, request, c, auth, body, job, when)


@router.post("/15-min-job", responses=_RESPONSES)
async def fifteen_min_job(
    request: Request,
    c: ContainerDep,
    auth: AuthDep,
    job: JobName = None,
    when: ScheduleTime = None,
    body: TaskRequest | None = None,
) -> Response:
    """The scheduler's 15-minute job: cost/PnL update, then the rebalance (isolated steps)."""
    return await _run(TASK_JOB, request, c, auth, body, job, when)

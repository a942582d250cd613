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
from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, Depends, Header, HTTPException, Request, Response
from pydantic import BaseModel, ConfigDict, model_validator

from s3_strategy.entrypoints.deps import ContainerDep
from s3_strategy.entrypoints.statuses import TASK_STATUS
from s3_strategy.service_layer.task_runs import (
    TASK_INTELLIGENT,
    TASK_JOB,
    TASK_SYMMETRIC,
    RunRequest,
    TaskContext,
)
from svckit import jsonutil
from svckit.oidc import OidcError

if TYPE_CHECKING:
    from s3_strategy.bootstrap import S3Container

log = logging.getLogger(__name__)


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


def _route(path: str, name: str, description: str) -> None:
    task = _TASK_OF_PATH[router.prefix + path]

    async def endpoint(
        request: Request,
        c: ContainerDep,
        auth: AuthDep,
        job: JobName = None,
        when: ScheduleTime = None,
        body: TaskRequest | None = None,
    ) -> Response:
        body = body or TaskRequest()
        try:
            result = await c.tasks.run(
                RunRequest(
                    task=task,
                    path=request.url.path,
                    auth=auth,
                    dry_run=body.dry_run,
                    context=body.context,
                    job_name=job,
                    schedule_time=when,
                )
            )
        except ValueError as exc:  # a malformed X-CloudScheduler-ScheduleTime
            raise HTTPException(400, f"X-CloudScheduler-ScheduleTime: {exc}") from None
        status = TASK_STATUS[result.disposition]
        return Response(
            jsonutil.dumpb(result.body), status_code=status, media_type="application/json"
        )

    router.post(path, responses=_RESPONSES, name=name, description=description)(endpoint)


# The route names are the OpenAPI operation ids.
_route(
    "/rebalance/symmetric",
    "rebalance_symmetric",
    "Symmetric 50:50 value rebalance of the configured pair; trades unless dry_run.",
)
_route(
    "/rebalance/intelligent",
    "rebalance_intelligent",
    "MA7/MA25 cross + cost-guarded rebalance with core/swing/active tiers.",
)
_route(
    "/15-min-job",
    "fifteen_min_job",
    "The scheduler's 15-minute job: cost/PnL update, then the rebalance (isolated steps).",
)

"""S3 config admin API (issue 13): /config, /config/bundles, /config/activate, /config/rollback,
/config/bundles/{rev}, /config/diff, /config/history — all behind `S3_ADMIN_TOKEN`.

The routes are thin: `service_layer/config_admin.py` does the work (the operator CLI calls the
same methods). The acting operator is recorded from `X-Actor` (a free label such as a login,
checked against a short pattern) — the token itself says only "an admin".
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator

from s3_strategy.bootstrap import S3Container  # noqa: F401 - resolves ContainerDep's forward ref
from s3_strategy.entrypoints.deps import AdminDep, ContainerDep
from s3_strategy.service_layer.config_admin import (
    BundleInvalid,
    BundleNotFound,
    NoPreviousRevision,
)
from svckit.store import KEY_RE

ACTOR_PATTERN = r"^[A-Za-z0-9_.@:-]{1,64}$"
MAX_RULES = 5000


# ---- auth: every request passed svckit.auth's bearer middleware; /config/* needs the admin
# token on top (AdminDep: 403 with the API token, 403 for all while S3_ADMIN_TOKEN is unset).


async def actor_of(
    x_actor: Annotated[str | None, Header(pattern=ACTOR_PATTERN)] = None,
) -> str:
    return f"api:{x_actor}" if x_actor else "api"


ActorDep = Annotated[str, Depends(actor_of)]


# ---- schemas ----------------------------------------------------------------------------------
class BundleUpload(BaseModel):
    """The shape of `bundle` in GET /config; `bundle_id` defaults to the active one's, `rev` (if
    given) must be what the content hashes to."""

    model_config = ConfigDict(extra="forbid")

    params: dict[str, Any] = Field(default_factory=dict)
    rules: list[dict[str, Any]] = Field(max_length=MAX_RULES)
    note: str | None = Field(default=None, max_length=1000)
    bundle_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
    rev: str | None = Field(default=None, pattern=r"^[0-9a-f]{12}$")

    @field_validator("rules")
    @classmethod
    def _rules_have_ids(cls, rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
        # The store keys rule documents by `rule_id` and the context orders them by it before
        # the linter sees anything: a rule without a usable id (a store key) is refused here.
        for i, rule in enumerate(rules):
            rule_id = rule.get("rule_id")
            if not isinstance(rule_id, str) or not KEY_RE.match(rule_id):
                raise ValueError(f"rules[{i}].rule_id: a string matching {KEY_RE.pattern}")
        return rules


class ActivateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rev: str = Field(pattern=r"^[0-9a-f]{12}$")


class ActivateResponse(BaseModel):
    active_rev: str
    previous_rev: str | None


def _invalid(exc: BundleInvalid) -> JSONResponse:
    return JSONResponse({"errors": exc.errors}, status_code=422)


router = APIRouter(prefix="/config", tags=["config"], dependencies=[AdminDep])


@router.get("")
async def get_config(c: ContainerDep) -> dict[str, Any]:
    """The active revision, who activated it when, and its bundle (full rule documents)."""
    return await c.admin.show()


@router.post(
    "/bundles",
    status_code=201,
    responses={
        200: {"description": "same content as a stored revision"},
        422: {"description": "lint errors `{errors: [{path, message}]}`; nothing stored"},
    },
)
async def post_bundle(
    body: BundleUpload, c: ContainerDep, actor: ActorDep, response: Response
) -> Any:
    """Lint + compile a bundle, store it under its content rev, diff it against the active one."""
    try:
        out, created = await c.admin.upload(body.model_dump(exclude_none=True), actor=actor)
    except BundleInvalid as exc:
        return _invalid(exc)
    response.status_code = 201 if created else 200
    return out


@router.post(
    "/activate",
    response_model=ActivateResponse,
    responses={404: {"description": "unknown rev"}, 422: {"description": "no longer lints"}},
)
async def post_activate(body: ActivateRequest, c: ContainerDep, actor: ActorDep) -> Any:
    """Activate a stored revision on every replica (config_active, audit, cfg:events)."""
    try:
        return await c.admin.activate(body.rev, actor=actor)
    except BundleNotFound:
        raise HTTPException(404, f"unknown config rev {body.rev!r}") from None
    except BundleInvalid as exc:
        return _invalid(exc)


@router.post(
    "/rollback",
    response_model=ActivateResponse,
    responses={409: {"description": "no previous revision"}},
)
async def post_rollback(c: ContainerDep, actor: ActorDep) -> Any:
    """Activate the previous revision again."""
    try:
        return await c.admin.rollback(actor=actor)
    except NoPreviousRevision as exc:
        raise HTTPException(409, str(exc)) from None
    except BundleNotFound as exc:
        raise HTTPException(409, f"previous revision {exc.args[0]!r} is gone") from None
    except BundleInvalid as exc:
        return _invalid(exc)


@router.get("/bundles/{rev}", responses={404: {"description": "unknown rev"}})
async def get_bundle(rev: str, c: ContainerDep) -> dict[str, Any]:
    """A stored revision (immutable)."""
    try:
        return await c.admin.bundle(rev)
    except BundleNotFound:
        raise HTTPException(404, f"unknown config rev {rev!r}") from None


@router.get("/diff", responses={404: {"description": "unknown rev"}})
async def get_diff(
    c: ContainerDep,
    from_: Annotated[str | None, Query(alias="from", max_length=64)] = None,
    to: Annotated[str | None, Query(max_length=64)] = None,
) -> dict[str, Any]:
    """Semantic diff of two revisions (either side defaults to the active one)."""
    try:
        return await c.admin.diff(from_, to)
    except BundleNotFound as exc:
        raise HTTPException(404, f"unknown config rev {exc.args[0]!r}") from None


@router.get("/history")
async def get_history(
    c: ContainerDep, limit: Annotated[int, Query(ge=1, le=1000)] = 50
) -> dict[str, Any]:
    """Audit trail of activations and rollbacks, newest first."""
    return {"items": await c.admin.history(limit)}

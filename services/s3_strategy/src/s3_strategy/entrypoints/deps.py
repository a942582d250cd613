"""FastAPI dependencies: the container built by bootstrap() lives on app.state.

They are `async def` on purpose: FastAPI runs a plain `def` dependency in its thread pool,
which costs more than the whole decision pipeline.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request

from svckit.auth import ADMIN, require_scope

if TYPE_CHECKING:
    from s3_strategy.bootstrap import S3Container


async def get_container(request: Request) -> S3Container:
    container: S3Container = request.app.state.container
    return container


ContainerDep = Annotated["S3Container", Depends(get_container)]

# Admin endpoints (config, …): `dependencies=[AdminDep]` on the route or its router. The
# middleware has already authenticated the caller; this needs S3_ADMIN_TOKEN (403 otherwise).
require_admin = require_scope(ADMIN)
AdminDep = Depends(require_admin)

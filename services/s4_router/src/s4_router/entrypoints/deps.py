"""FastAPI dependencies: the container built by bootstrap() lives on app.state."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request

if TYPE_CHECKING:
    from s4_router.bootstrap import S4Container


def get_container(request: Request) -> S4Container:
    container: S4Container = request.app.state.container
    return container


ContainerDep = Annotated["S4Container", Depends(get_container)]

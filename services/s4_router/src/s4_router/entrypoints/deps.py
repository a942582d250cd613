"""FastAPI dependencies: the container built by bootstrap() lives on app.state."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request

from s4_router.service_layer.router import OrderRouter

if TYPE_CHECKING:
    from s4_router.bootstrap import S4Container


def get_container(request: Request) -> S4Container:
    container: S4Container = request.app.state.container
    return container


def get_router(request: Request) -> OrderRouter:
    return get_container(request).router


ContainerDep = Annotated["S4Container", Depends(get_container)]
RouterDep = Annotated[OrderRouter, Depends(get_router)]

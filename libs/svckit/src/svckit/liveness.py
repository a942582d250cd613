"""`GET /livez`: is this process worth keeping, as Kubernetes' liveness probe asks.

Readiness (`/health`) follows the dependencies: Redis, the store, the venue. Liveness must not:
a venue or Redis outage is not fixed by a restart, and restarting every replica in a loop
while it lasts would only add start-ups (markets reloaded, protections re-armed) to the outage.
What a restart does fix is a process whose event loop no longer answers (the probe times out)
or whose background work has ended (a loop that died on an exception it did not expect): the
answer is 503 and names the tasks that ended.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any, Literal

from fastapi import FastAPI, Response
from pydantic import BaseModel, ConfigDict

LIVEZ_PATH = "/livez"


class Liveness(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: Literal["alive", "dead"]
    ended: list[str]  # background tasks that ended while the service runs


def install_livez(app: FastAPI, tasks: Callable[[FastAPI], Iterable[asyncio.Task[Any]]]) -> None:
    """`tasks(app)` → the service's background tasks (an empty iterable before start-up)."""

    @app.get(
        LIVEZ_PATH,
        response_model=Liveness,
        responses={503: {"model": Liveness, "description": "a background task ended"}},
    )
    async def livez(response: Response) -> Liveness:
        """The process alone (no dependency): 503 when a background task has ended."""
        running: Iterable[asyncio.Task[Any]] = tasks(app)
        ended = sorted(t.get_name() for t in running if t.done())
        if ended:
            response.status_code = 503
        return Liveness(status="dead" if ended else "alive", ended=ended)

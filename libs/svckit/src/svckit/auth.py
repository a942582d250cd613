"""Bearer-token authentication for the services' HTTP APIs (RFC 6750).

`install_bearer_auth` puts Starlette's `AuthenticationMiddleware` in front of the whole app, so
every request — every route, the ones added later, unknown paths, /docs and /openapi.json —
is authenticated before any route, dependency or body parsing runs. Only `GET|HEAD` on
`OPEN_PATHS` (/health, /livez, /metrics: probes and scraping) is open, matched exactly, so
`/health/` or `//health` is not. A request that is refused gets 401 with `WWW-Authenticate:
Bearer` and never reaches the app: no side effect, the body is not even read.

Tokens are grouped by role; a token grants its role's scopes (`ROLE_SCOPES`: the admin token
can do what the API token can, plus `admin`). Routes that need more than the API scope declare
it with `require_scope("admin")` (a dependency: 403 when the caller's token lacks it). A role
whose token is not configured grants nothing: admin routes are closed until an admin token
is set.

Comparison is constant time: the presented token and every configured one are hashed (SHA-256,
fixed length) and compared with `hmac.compare_digest`, all of them, whatever matched first.

`disabled=True` is a development switch (`*_AUTH_DISABLED=true`): every request is let in with
every scope; the services refuse it where it is dangerous (S4 with a real exchange) and log a
warning at start otherwise.

Knows nothing about S3 or S4: the services pass their tokens and error body shape.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import SecretStr
from starlette.authentication import (
    AuthCredentials,
    AuthenticationBackend,
    AuthenticationError,
    SimpleUser,
)
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import HTTPConnection
from starlette.responses import Response

from svckit.httperrors import error_body

log = logging.getLogger(__name__)

API = "api"
ADMIN = "admin"
ROLE_SCOPES: dict[str, tuple[str, ...]] = {API: (API,), ADMIN: (API, ADMIN)}
OPEN_PATHS: frozenset[str] = frozenset({"/health", "/livez", "/metrics"})
_OPEN_METHODS = frozenset({"GET", "HEAD"})
MIN_TOKEN_LENGTH = 16


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()


class _Refused(AuthenticationError):
    def __init__(self, reason: str, *, presented: bool) -> None:
        super().__init__(reason)
        self.presented = presented  # a token was sent (RFC 6750: error="invalid_token")


class BearerTokenBackend(AuthenticationBackend):
    """Maps `Authorization: Bearer <token>` to a role; refuses everything not on the allow-list."""

    def __init__(
        self,
        tokens: Mapping[str, SecretStr | None],
        *,
        self_auth_prefixes: Iterable[str] = (),
        disabled: bool = False,
    ) -> None:
        # Paths whose routes authenticate the caller themselves, with a router-level dependency
        # (e.g. OIDC ID tokens of a scheduler): the middleware lets them through to it.
        self.self_auth_prefixes = tuple(self_auth_prefixes)
        unknown = set(tokens) - set(ROLE_SCOPES)
        if unknown:
            raise ValueError(f"unknown roles {sorted(unknown)}; known: {sorted(ROLE_SCOPES)}")
        self._tokens = [
            (role, _digest(token.get_secret_value())) for role, token in tokens.items() if token
        ]
        self.disabled = disabled

    def match(self, token: str) -> str | None:
        """The role of `token`, None if it is none of the configured ones (constant time)."""
        presented = _digest(token)
        role: str | None = None
        for candidate, expected in self._tokens:
            # No early exit: the time taken does not say which token (if any) matched.
            if hmac.compare_digest(presented, expected):
                role = candidate
        return role

    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, SimpleUser] | None:
        if self.disabled:
            return AuthCredentials(list(ROLE_SCOPES[ADMIN])), SimpleUser("auth-disabled")
        if conn.scope["path"] in OPEN_PATHS and conn.scope.get("method") in _OPEN_METHODS:
            return None  # open: the app sees an unauthenticated user with no scopes
        if self.self_auth_prefixes and conn.scope["path"].startswith(self.self_auth_prefixes):
            return None  # the route's own dependency decides (no scopes granted here)
        header = conn.headers.get("authorization")
        if header is None:
            raise _Refused("missing bearer token", presented=False)
        scheme, _, token = header.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise _Refused("expected 'Authorization: Bearer <token>'", presented=False)
        role = self.match(token)
        if role is None:
            raise _Refused("invalid bearer token", presented=True)
        return AuthCredentials(list(ROLE_SCOPES[role])), SimpleUser(role)


def install_bearer_auth(
    app: FastAPI,
    *,
    tokens: Mapping[str, SecretStr | None],
    fail_body: bool,
    realm: str,
    self_auth_prefixes: Iterable[str] = (),
    disabled: bool = False,
) -> None:
    """Authenticate every request of `app` (see the module doc). fail_body: the error shape of
    svckit.httperrors (S4's `{result: FAIL, ...}`)."""
    backend = BearerTokenBackend(tokens, self_auth_prefixes=self_auth_prefixes, disabled=disabled)

    def on_error(conn: HTTPConnection, exc: AuthenticationError) -> Response:
        presented = isinstance(exc, _Refused) and exc.presented
        reason = str(exc) if isinstance(exc, _Refused) else "authentication failed"
        client = conn.client.host if conn.client else "?"
        # The presented token is never logged nor echoed: a near-miss may be a real secret.
        log.info(
            "auth refused %s %s from %s: %s",
            conn.scope.get("method", "WS"),
            conn.scope["path"],
            client,
            reason,
        )
        challenge = f'Bearer realm="{realm}"'
        if presented:
            challenge += ', error="invalid_token"'
        return JSONResponse(
            error_body(f"unauthorized: {reason}", fail_body=fail_body),
            status_code=401,
            headers={"WWW-Authenticate": challenge},
        )

    app.add_middleware(AuthenticationMiddleware, backend=backend, on_error=on_error)
    if disabled:
        log.warning("%s: authentication DISABLED (dev switch): every request is let in", realm)


def require_scope(scope: str) -> Callable[[Request], Awaitable[None]]:
    """A route dependency: 403 unless the caller's token grants `scope` (e.g. "admin")."""

    async def dependency(request: Request) -> None:
        if scope not in request.auth.scopes:
            raise HTTPException(403, f"forbidden: this endpoint needs the {scope} token")

    return dependency

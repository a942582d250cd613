"""Verification of OIDC ID tokens (e.g. the ones Google Cloud Scheduler sends as
`Authorization: Bearer <JWT>`). Infrastructure only: callers say which audience, issuers and
e-mails they accept; this module knows nothing of the services.

PyJWT does the JWT work: RS256 only (never `none`/HS*, whatever the header says), signature
against a JWKS fetched by `PyJWKClient` — cached for an hour, re-fetched on an unknown `kid`
at most once per `cooldown_s` (a flood of tokens with random `kid`s cannot turn into a flood of
fetches) — then `aud`, `iss`, `exp`, `iat`, `nbf` with `leeway_s`, and our own `email` /
`email_verified` check.

JWKS sources: `https://…` (production; default Google's certs), `http://` only to a loopback
host, and `file:///path` (tests, air-gapped setups: a JWKS file provisioned with the pod).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import time
from collections.abc import Collection
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import jwt
from jwt import PyJWKClient

GOOGLE_JWKS_URL = "https://www.googleapis.com/oauth2/v3/certs"
GOOGLE_ISSUERS = ("https://accounts.google.com", "accounts.google.com")
ALGORITHMS = ["RS256"]


class OidcError(Exception):
    """A token that is not accepted. `status` is 401 (not authenticated) or 403 (a valid token
    whose principal is not allowed)."""

    def __init__(self, message: str, *, status: int = 401) -> None:
        super().__init__(message)
        self.status = status


def check_jwks_url(url: str) -> str:
    """Accept https, file://, or http:// to a loopback host; raise ValueError otherwise."""
    parsed = urlparse(url)
    scheme = parsed.scheme.lower()
    if scheme == "https" and parsed.hostname:
        return url
    if scheme == "file" and parsed.path:
        return url
    if scheme == "http" and parsed.hostname:
        host = parsed.hostname
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = host == "localhost"
        if loopback:
            return url
        raise ValueError(f"JWKS over plain http only from a loopback host, not {host!r}")
    raise ValueError(f"JWKS URL must be https://, file:// or loopback http://, got {url!r}")


class _FileJWKClient(PyJWKClient):
    """PyJWKClient reading its JWKS from a local file (PyJWT itself only fetches http(s))."""

    def __init__(self, path: Path, **kw: Any) -> None:
        super().__init__("https://jwks.file.invalid/", **kw)
        self.path = path

    def fetch_data(self) -> Any:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError) as exc:
            raise jwt.PyJWKClientConnectionError(f"cannot read JWKS {self.path}: {exc}") from exc
        data = self._as_jwk_set_payload(data)
        if self.jwk_set_cache is not None:
            self.jwk_set_cache.put(data)
        self._last_successful_fetch = time.monotonic()
        return data


class OidcVerifier:
    def __init__(
        self,
        *,
        jwks_url: str,
        audience: str,
        issuers: Collection[str] = GOOGLE_ISSUERS,
        emails: Collection[str],
        leeway_s: float = 30,
        cooldown_s: float = 30,
        timeout_s: float = 5,
    ) -> None:
        if not audience:
            raise ValueError("an audience is required")
        check_jwks_url(jwks_url)
        self.audience = audience
        self.issuers = list(issuers)
        self.emails = frozenset(e.lower() for e in emails)
        self.leeway_s = leeway_s
        kw: dict[str, Any] = {
            "cache_jwk_set": True,
            "lifespan": 3600,
            "cooldown_duration": cooldown_s,
            "timeout": timeout_s,
        }
        parsed = urlparse(jwks_url)
        self.client: PyJWKClient
        if parsed.scheme == "file":
            self.client = _FileJWKClient(Path(unquote(parsed.path)), **kw)
        else:
            self.client = PyJWKClient(jwks_url, **kw)

    async def verify(self, token: str) -> str:
        """The token's e-mail (allowed and verified), or OidcError. The JWKS fetch (rare:
        cached) runs in a thread."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise OidcError(f"malformed token: {exc}") from None
        if header.get("alg") not in ALGORITHMS:
            raise OidcError(f"algorithm {header.get('alg')!r} not accepted")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise OidcError("token has no key id")
        try:
            key = await asyncio.to_thread(self.client.get_signing_key, kid)
        except jwt.PyJWKClientConnectionError as exc:
            raise OidcError(f"signing keys unavailable: {exc}") from None
        except jwt.PyJWKClientError as exc:
            raise OidcError(f"unknown signing key: {exc}") from None
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=ALGORITHMS,
                audience=self.audience,
                issuer=self.issuers,
                leeway=self.leeway_s,
                options={"require": ["exp", "iat", "aud", "iss"]},
            )
        except jwt.PyJWTError as exc:
            raise OidcError(f"invalid token: {exc}") from None
        email = claims.get("email")
        if not isinstance(email, str) or email.lower() not in self.emails:
            raise OidcError(f"principal {email!r} is not allowed", status=403)
        if claims.get("email_verified") is not True:
            raise OidcError(f"e-mail {email!r} is not verified", status=403)
        return email

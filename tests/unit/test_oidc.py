"""OIDC ID-token verification (svckit.oidc) with keys and a JWKS minted here."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import jwt
import pytest

from svckit.oidc import OidcError, OidcVerifier, check_jwks_url
from tests.oidcmint import AUDIENCE, EMAIL, Signer, write_jwks

TIME_CLAIMS = ("exp", "iat", "nbf")


@pytest.fixture
def signer() -> Signer:
    return Signer("k1")


def verifier(url: str, **kw: float) -> OidcVerifier:
    return OidcVerifier(jwks_url=url, audience=AUDIENCE, emails=[EMAIL], **kw)


async def test_a_valid_scheduler_token_is_accepted(signer: Signer, tmp_path: Path) -> None:
    v = verifier(write_jwks(tmp_path / "jwks.json", signer))
    assert await v.verify(signer.token()) == EMAIL
    # the other Google issuer spelling too
    assert await v.verify(signer.token(iss="accounts.google.com")) == EMAIL


@pytest.mark.parametrize(
    ("claims", "status", "why"),
    [
        ({"exp": -120, "iat": -3600}, 401, "expired"),
        ({"aud": "https://other.example"}, 401, "audience"),
        ({"iss": "https://evil.example"}, 401, "issuer"),
        ({"email": "someone@else.test"}, 403, "not allowed"),
        ({"email_verified": False}, 403, "not verified"),
        ({"exp": None}, 401, "exp"),
        ({"nbf": +600}, 401, "not yet valid"),
        ({"iat": +600}, 401, "iat"),
    ],
)
async def test_bad_claims_are_refused(
    signer: Signer, tmp_path: Path, claims: dict[str, object], status: int, why: str
) -> None:
    # time claims are seconds from now, taken when the test runs (not when it was collected:
    # a whole suite may run between the two, longer than the 600 s used here)
    now = int(time.time())
    claims = {
        k: now + val if k in TIME_CLAIMS and isinstance(val, int) else val
        for k, val in claims.items()
    }
    v = verifier(write_jwks(tmp_path / "jwks.json", signer))
    with pytest.raises(OidcError) as err:
        await v.verify(signer.token(**claims))
    assert err.value.status == status, (why, str(err.value))


async def test_a_token_signed_by_another_key_with_a_known_kid_is_refused(
    signer: Signer, tmp_path: Path
) -> None:
    v = verifier(write_jwks(tmp_path / "jwks.json", signer))
    forger = Signer("k1")  # same kid, different key
    with pytest.raises(OidcError, match="Signature verification failed"):
        await v.verify(forger.token())


async def test_hs256_and_none_algorithms_are_refused(signer: Signer, tmp_path: Path) -> None:
    v = verifier(write_jwks(tmp_path / "jwks.json", signer))
    hs = jwt.encode({"aud": AUDIENCE, "email": EMAIL}, "s" * 48, headers={"kid": "k1"})
    with pytest.raises(OidcError, match="algorithm"):
        await v.verify(hs)
    none = jwt.encode({"aud": AUDIENCE}, None, algorithm="none", headers={"kid": "k1"})
    with pytest.raises(OidcError, match="algorithm"):
        await v.verify(none)
    with pytest.raises(OidcError, match="malformed"):
        await v.verify("not-a-jwt")


async def test_an_unknown_kid_refetches_once_then_cools_down(
    signer: Signer, tmp_path: Path
) -> None:
    path = tmp_path / "jwks.json"
    v = verifier(write_jwks(path, signer), cooldown_s=0)
    await v.verify(signer.token())
    rotated = Signer("k2")
    write_jwks(path, signer, rotated)  # key rotation: the new kid is fetched on first sight
    assert await v.verify(rotated.token()) == EMAIL
    # with a cool-down, an unknown kid right after a fetch is refused without fetching again
    cool = verifier(write_jwks(path, signer), cooldown_s=3600)
    await cool.verify(signer.token())
    write_jwks(path, signer, rotated)
    with pytest.raises(OidcError, match="unknown signing key"):
        await cool.verify(rotated.token())


def test_jwks_urls_https_file_or_loopback_http_only() -> None:
    good = ["https://www.googleapis.com/oauth2/v3/certs", "file:///etc/jwks.json"]
    good += ["http://127.0.0.1:9000/jwks", "http://localhost/jwks", "http://[::1]:80/j"]
    for ok in good:
        assert check_jwks_url(ok) == ok
    for bad in ("http://example.com/jwks", "ftp://x/y", "jwks.json", "http://10.0.0.1/j"):
        with pytest.raises(ValueError):
            check_jwks_url(bad)


class JwksServer:
    """A JWKS served over loopback http (as S3_SCHEDULER_JWKS_URL may be), counting fetches."""

    def __init__(self, path: Path) -> None:
        self.fetches = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.fetches += 1
                body = path.read_bytes()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                return None

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/certs"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def jwks_http(tmp_path: Path) -> Iterator[tuple[JwksServer, Path]]:
    path = tmp_path / "jwks.json"
    server = JwksServer(path)
    try:
        yield server, path
    finally:
        server.close()


async def test_jwks_over_loopback_http_is_fetched_once_not_per_request(
    signer: Signer, jwks_http: tuple[JwksServer, Path]
) -> None:
    server, path = jwks_http
    write_jwks(path, signer)
    v = verifier(server.url, cooldown_s=3600)
    for _ in range(5):
        assert await v.verify(signer.token()) == EMAIL
    assert server.fetches == 1  # cached: no fetch per request
    # an unknown kid inside the cool-down: refused without a fetch (a flood of random kids
    # cannot become a flood of fetches)
    for kid in ("k-a", "k-b", "k-c"):
        with pytest.raises(OidcError, match="unknown signing key"):
            await v.verify(Signer(kid).token())
    assert server.fetches == 1


async def test_a_rotated_key_is_fetched_over_http_on_its_first_unknown_kid(
    signer: Signer, jwks_http: tuple[JwksServer, Path]
) -> None:
    server, path = jwks_http
    write_jwks(path, signer)
    v = verifier(server.url, cooldown_s=0)
    await v.verify(signer.token())
    rotated = Signer("k2")
    write_jwks(path, signer, rotated)
    assert await v.verify(rotated.token()) == EMAIL
    assert server.fetches == 2
    await v.verify(rotated.token())
    await v.verify(signer.token())
    assert server.fetches == 2  # both kids now known: from the cache


@pytest.mark.parametrize(
    "claims",
    [
        {"exp": -10, "iat": -3600},  # expired 10 s ago: inside the 30 s leeway
        {"nbf": +10},  # valid in 10 s: a scheduler clock slightly ahead of ours
        {"iat": +10},
    ],
)
async def test_time_claims_get_a_small_leeway(
    signer: Signer, tmp_path: Path, claims: dict[str, int]
) -> None:
    now = int(time.time())
    v = verifier(write_jwks(tmp_path / "jwks.json", signer))
    token = signer.token(**{k: now + d for k, d in claims.items()})
    assert await v.verify(token) == EMAIL
    strict = verifier(write_jwks(tmp_path / "jwks.json", signer), leeway_s=0)
    with pytest.raises(OidcError):
        await strict.verify(token)

"""OIDC ID-token verification (svckit.oidc) with keys and a JWKS minted here."""

from __future__ import annotations

import time
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
    ok = await v.verify(signer.token())
    assert ok.email == EMAIL and ok.issuer == "https://accounts.google.com"
    # the other Google issuer spelling too
    assert (await v.verify(signer.token(iss="accounts.google.com"))).email == EMAIL


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
    assert (await v.verify(rotated.token())).email == EMAIL
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

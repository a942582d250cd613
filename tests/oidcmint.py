"""RSA keys, a JWKS and ID tokens shaped like Google Cloud Scheduler's, minted by the tests."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

AUDIENCE = "https://s3.example.test"
EMAIL = "scheduler@proj.iam.gserviceaccount.com"
ISSUER = "https://accounts.google.com"


@dataclass
class Signer:
    kid: str
    key: rsa.RSAPrivateKey = field(
        default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )

    def jwk(self) -> dict[str, Any]:
        jwk: dict[str, Any] = json.loads(RSAAlgorithm.to_jwk(self.key.public_key()))
        return {**jwk, "kid": self.kid, "use": "sig", "alg": "RS256"}

    def token(self, **overrides: Any) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": "1234567890",
            "email": EMAIL,
            "email_verified": True,
            "iat": now,
            "exp": now + 3600,
        }
        for k, v in overrides.items():
            if v is None:
                claims.pop(k, None)
            else:
                claims[k] = v
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": self.kid})


def write_jwks(path: Path, *signers: Signer) -> str:
    path.write_text(json.dumps({"keys": [s.jwk() for s in signers]}))
    return path.as_uri()

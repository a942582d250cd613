"""Settings base for both services (pydantic-settings, environment variables only).

Each service declares its own `Settings(ServiceSettings)` with `env_prefix` `S3_` / `S4_`.
`load_settings` turns a validation error into a :class:`ConfigError` whose message names the
environment variable and the bad value, so a mistyped ConfigMap fails at start, readably — the
value of a secret (`SecretStr`: tokens, passwords, exchange keys) is never echoed.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, TypeVar, get_args

from pydantic import BeforeValidator, Field, SecretStr, ValidationError, field_validator
from pydantic.functional_validators import AfterValidator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from svckit.auth import MIN_TOKEN_LENGTH
from svckit.errors import ConfigError

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(value: Any) -> timedelta:
    """'60s', '500ms', '5m', '2h' or a bare number of seconds."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float):
        return timedelta(seconds=float(value))
    m = _DURATION.match(str(value))
    if not m:
        raise ValueError(f"not a duration (use e.g. 60s, 500ms, 5m): {value!r}")
    return timedelta(seconds=float(m.group(1)) * _UNITS[m.group(2)])


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


def _split_csv(value: Any) -> Any:
    if isinstance(value, str):
        return [p.strip() for p in value.split(",") if p.strip()]
    return value


CsvList = Annotated[list[str], NoDecode, BeforeValidator(_split_csv)]


def blank_is_none(value: Any) -> Any:
    # A ConfigMap lists every variable; an empty value there means "not set".
    return None if isinstance(value, str) and not value.strip() else value


BlankIsNone = BeforeValidator(blank_is_none)


def check_token(v: SecretStr | None) -> SecretStr | None:
    """A bearer token: unset, or long enough not to be guessed (`make run` generates 64 hex)."""
    if v is None or v.get_secret_value() == "":
        return None  # an empty variable (e.g. an unfilled `${VAR:-}`) counts as unset
    value = v.get_secret_value()
    if len(value) < MIN_TOKEN_LENGTH:
        raise ValueError(f"a token needs at least {MIN_TOKEN_LENGTH} characters")
    if value != value.strip() or any(not c.isprintable() for c in value):
        raise ValueError("a token has no whitespace at its ends and no control characters")
    return v


Token = Annotated[SecretStr | None, AfterValidator(check_token)]


class ServiceSettings(BaseSettings):
    """Variables common to S3 and S4 (each with its own prefix)."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore", case_sensitive=False)

    port: int = Field(ge=1, le=65535)  # each service's own default

    redis_addresses: CsvList = Field(
        default_factory=list,
        description="host:port list; empty ⇒ embedded redis-server; several ⇒ Redis Cluster",
    )
    redis_password: SecretStr | None = None
    db_arango_uri: str | None = Field(default=None, description="ArangoDB URL(s); unset ⇒ SQLite")
    db_arango_user: str = "root"
    db_arango_pass: SecretStr = SecretStr("")
    db_arango_name: str = "chimera"
    data_dir: Path = Path("var")
    fixtures_dir: Path = Path("fixtures")
    host: str = "127.0.0.1"
    log_level: str = "INFO"
    log_json: bool = True
    # ---- access control (svckit.auth) -------------------------------------------------------
    api_token: Token = Field(
        default=None, description="bearer token every API call must carry (not /health, /metrics)"
    )
    auth_disabled: bool = Field(
        default=False, description="dev switch: no authentication at all (refused where unsafe)"
    )

    @property
    def redis_password_value(self) -> str | None:
        return self.redis_password.get_secret_value() if self.redis_password else None

    @field_validator("redis_addresses")
    @classmethod
    def _addresses(cls, v: list[str]) -> list[str]:
        for addr in v:
            host, sep, port = addr.rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"expected host:port, got {addr!r}")
        return v

    @field_validator("log_level")
    @classmethod
    def _level(cls, v: str) -> str:
        if v.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError(f"unknown log level {v!r}")
        return v.upper()


def refuse_mexc_testnet(venue: str, testnet: bool, *, prefix: str, venue_var: str) -> None:
    """ccxt has no MEXC sandbox (set_sandbox_mode dies at start-up), and the default testnet
    (true) must not silently mean the live venue: say so explicitly (S4's and the feeder's)."""
    if venue == "mexc" and testnet:
        raise ValueError(
            f"{prefix}{venue_var}=mexc has no testnet: set {prefix}TESTNET=false (the live venue, "
            f"or {prefix}EXCHANGE_BASE_URL for another MEXC-compatible host)"
        )


S = TypeVar("S", bound=BaseSettings)


def load_settings(cls: type[S], **overrides: Any) -> S:
    """Instantiate settings from the environment; errors name the variable."""
    try:
        return cls(**overrides)
    except ValidationError as exc:
        prefix = str(cls.model_config.get("env_prefix", ""))
        fields = cls.model_fields
        problems = []
        for err in exc.errors(include_url=False):
            loc = [str(p) for p in err["loc"]]
            if not loc:  # a model-level check: its message names the variables, no value
                problems.append(err["msg"].removeprefix("Value error, "))
                continue
            var = f"{prefix}{loc[0]}".upper()
            info = fields.get(loc[0])
            kind = info.annotation if info is not None else None
            if kind is SecretStr or SecretStr in get_args(kind):  # a secret's value never shown
                problems.append(f"{var} (secret, value not shown): {err['msg']}")
            else:
                problems.append(f"{var}={err.get('input')!r}: {err['msg']}")
        raise ConfigError("invalid configuration: " + "; ".join(problems)) from None

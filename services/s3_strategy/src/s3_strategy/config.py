"""S3 settings: `S3_*` environment variables (spec/004 §E) plus local-run knobs."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from svckit.oidc import GOOGLE_ISSUERS, GOOGLE_JWKS_URL, check_jwks_url
from svckit.settings import BlankIsNone, CsvList, ServiceSettings, Token


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="S3_", frozen=True, extra="ignore")

    port: int = Field(default=8081, ge=1, le=65535)
    symbols: CsvList = Field(default_factory=lambda: ["BTCUSDT"])
    max_funding_abs: Decimal = Field(default=Decimal("0.0005"), ge=0)
    spread_bp_limit_default: Decimal = Field(default=Decimal(3), gt=0)
    depth_top1_usdt_min_default: Decimal = Field(default=Decimal(200), ge=0)
    leverage_default: int = Field(default=20, ge=1, le=125)
    margin_base_usdt: Decimal = Field(default=Decimal(20), gt=0)
    max_loss_usdt: Decimal = Field(default=Decimal("1.2"), gt=0)
    atr_mult: Decimal = Field(default=Decimal("1.5"), gt=0)
    concurrent_entries_per_market: int = Field(default=1, ge=0)
    # Hot reload: each replica polls config_active / cfg:active_rev this often (cfg:events wakes
    # it at once); CONFIG_REV_MISMATCH fires after two periods of disagreement.
    config_poll_sec: float = Field(default=5, gt=0, le=300)
    feature_max_age_ms: int = Field(default=5000, ge=1)
    s4_url: Annotated[str | None, BlankIsNone] = Field(
        default="http://127.0.0.1:8082", description="S4 base URL for the REST path; empty ⇒ off"
    )
    s4_timeout_ms: int = Field(default=2000, ge=1)
    publish_retries: int = Field(default=3, ge=1, le=10)
    # Live decisions wait this long for lock:pos:{symbol} (held ≤ 3 s), then skip LOCK_BUSY.
    lock_wait_ms: int = Field(default=500, ge=0, le=3000)
    # Ledger of entries in flight (adapters/entries.py).
    entries_reconcile_ms: int = Field(default=1000, ge=10)
    entries_poll_ms: int = Field(default=100, ge=5, le=5000)  # orders:executed follow period
    entries_grace_ms: int = Field(default=60_000, ge=1000)
    # At most one alert per (kind, symbol) per replica in this interval (publish failures: all).
    alert_min_interval_s: float = Field(default=60, ge=0)
    batch_max: int = Field(default=100, ge=1, le=1000)
    batch_concurrency: int = Field(default=16, ge=1, le=256)
    # ---- access control (S3_API_TOKEN and S3_AUTH_DISABLED: svckit.settings) -----------------
    admin_token: Annotated[Token, BlankIsNone] = Field(
        default=None, description="bearer token of the admin endpoints; unset ⇒ they refuse all"
    )
    s4_api_token: Token = Field(
        default=None, description="bearer token S3 sends to S4 (S4's S4_API_TOKEN)"
    )

    # ---- scheduled tasks (/tasks/*): auth, replay (issue 14) ----------------------------------
    # S3_ADMIN_TOKEN (above) is also accepted on /tasks/* beside a verified OIDC token.
    scheduler_jwks_url: Annotated[str, AfterValidator(check_jwks_url)] = GOOGLE_JWKS_URL
    # OIDC is off (only S3_ADMIN_TOKEN is accepted) until an audience is set.
    scheduler_audience: Annotated[str | None, BlankIsNone] = None
    scheduler_issuers: CsvList = Field(default_factory=lambda: list(GOOGLE_ISSUERS))
    scheduler_emails: CsvList = Field(default_factory=list)
    scheduler_leeway_s: int = Field(default=30, ge=0, le=300)
    scheduler_jwks_cooldown_s: float = Field(default=30, ge=0)
    task_replay_ttl_s: int = Field(default=7 * 86400, ge=900)
    task_lease_s: int = Field(default=600, ge=10)
    # ---- rebalance (spec 000-003) ----------------------------------------------------------
    rebalance_symbol: Annotated[str, AfterValidator(str.upper)] = "QRLUSDT"
    rebalance_job_strategy: Literal["symmetric", "intelligent"] = "symmetric"
    rebalance_target_ratio: Decimal = Field(default=Decimal("0.5"), gt=0, lt=1)
    rebalance_threshold_pct: Decimal = Field(default=Decimal("0.01"), ge=0, lt=1)
    rebalance_min_notional_usdt: Decimal = Field(default=Decimal(5), ge=0)
    rebalance_max_notional_usdt: Annotated[Decimal | None, BlankIsNone] = Field(default=None, gt=0)
    rebalance_fee_aware: bool = True
    # Fee estimate; unset ⇒ the instrument's taker fee (Maker→Taker may end as taker).
    rebalance_fee_rate: Annotated[Decimal | None, BlankIsNone] = Field(default=None, ge=0, lt=1)
    # Average cost when our fills explain none (or only part) of the holding (seed 003: 0.05).
    rebalance_cost_estimate: Decimal = Field(default=Decimal("0.05"), gt=0)
    rebalance_exec_policy: Literal["MAKER_TAKER", "MARKET"] = "MAKER_TAKER"
    rebalance_maker_wait_ms: Annotated[int | None, BlankIsNone] = Field(
        default=None, ge=0, le=600_000
    )
    rebalance_kline_interval: str = "5m"
    # Where the tasks read balances, ticker and klines (read-only key). none ⇒ only what-if
    # dry runs (a context) can plan.
    exchange: Literal["none", "mexc", "binance"] = "none"
    exchange_api_key: SecretStr | None = None
    exchange_api_secret: SecretStr | None = None
    exchange_base_url: Annotated[str | None, BlankIsNone] = None

    @field_validator("symbols")
    @classmethod
    def _symbols(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("at least one symbol")
        return [s.upper() for s in v]

    @model_validator(mode="after")
    def _auth(self) -> Settings:
        # Fail closed: S3 places live orders, so it never serves without a token by accident.
        if self.auth_disabled:
            return self
        if self.api_token is None:
            raise ValueError(
                "S3_API_TOKEN is required (S3_AUTH_DISABLED=true turns authentication off, "
                "for local development only)"
            )
        if self.s4_url and self.s4_api_token is None:
            raise ValueError(
                "S3_S4_URL is set but S3_S4_API_TOKEN is not: S4 would refuse every REST "
                "publish (set it to S4's S4_API_TOKEN, or S3_S4_URL= for the stream only)"
            )
        return self

    @field_validator("s4_url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("http://", "https://")):
            raise ValueError(f"expected an http(s) URL, got {v!r}")
        return v.rstrip("/") if v else v


if __name__ == "__main__":  # `python -m s3_strategy.config …`: the operator CLI
    from s3_strategy.config_cli import main

    raise SystemExit(main())

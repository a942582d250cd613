"""S3_/S4_ settings: defaults from spec §E, and bad values fail naming the variable."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from md_feeder.config import Settings as MdSettings
from s3_strategy.config import Settings as S3Settings
from s4_router.config import Settings as S4Settings
from svckit.errors import ConfigError
from svckit.settings import load_settings, parse_duration


def test_load_with_no_environment_uses_spec_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    s3 = load_settings(S3Settings)
    assert s3.symbols == ["BTCUSDT"]
    assert s3.max_funding_abs == Decimal("0.0005")
    assert (s3.leverage_default, s3.margin_base_usdt) == (20, Decimal(20))
    assert (s3.max_loss_usdt, s3.atr_mult) == (Decimal("1.2"), Decimal("1.5"))
    assert s3.concurrent_entries_per_market == 1 and s3.config_poll_sec == 5
    assert s3.port == 8081
    s4 = load_settings(S4Settings)
    assert s4.port == 8082 and s4.exchange == "sim" and s4.testnet
    assert s4.cb_error_rate_window == timedelta(seconds=60)
    assert s4.cb_error_rate_thresh == 0.2
    assert (s4.maker_max_wait_ms, s4.twap_max_slices) == (3000, 4)
    assert s4.oco_guardian and s4.working_type == "MARK_PRICE"


def test_load_with_comma_lists_splits_addresses_and_symbols(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("S3_REDIS_ADDRESSES", "10.0.0.1:7000, 10.0.0.2:7001,10.0.0.3:7002")
    monkeypatch.setenv("S3_SYMBOLS", "btcusdt,ETHUSDT")
    s = load_settings(S3Settings)
    assert s.redis_addresses == ["10.0.0.1:7000", "10.0.0.2:7001", "10.0.0.3:7002"]
    assert s.symbols == ["BTCUSDT", "ETHUSDT"]


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("S3_LEVERAGE_DEFAULT", "twenty"),
        ("S3_LEVERAGE_DEFAULT", "500"),
        ("S3_MAX_FUNDING_ABS", "-1"),
        ("S3_REDIS_ADDRESSES", "localhost"),
        ("S3_S4_URL", "ftp://x"),
        ("S3_PORT", "70000"),
    ],
)
def test_load_s3_with_invalid_value_fails_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, var: str, value: str
) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(ConfigError, match=var):
        load_settings(S3Settings)


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("S4_CB_ERROR_RATE_WINDOW", "sixty"),
        ("S4_CB_ERROR_RATE_THRESH", "1.5"),
        ("S4_EXCHANGE", "kraken"),
        ("S4_WORKING_TYPE", "LAST"),
        ("S4_TESTNET", "maybe"),
        # A TWAP plan has at most 99 slices (child ids -E1 … -E99): a limit of 100 would let an
        # intent of 100 slices through the policy check into a plan that cannot hold it (a 500).
        ("S4_TWAP_MAX_SLICES", "100"),
    ],
)
def test_load_s4_with_invalid_value_fails_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, var: str, value: str
) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(ConfigError, match=var):
        load_settings(S4Settings)


def test_load_s4_with_live_exchange_and_no_keys_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("S4_EXCHANGE", "binance")
    with pytest.raises(ConfigError, match="S4_BINANCE_KEY"):
        load_settings(S4Settings)


def test_load_s4_mexc_with_the_default_testnet_fails_naming_s4_testnet(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # MEXC has no sandbox: ccxt's set_sandbox_mode() died in a TypeError at bootstrap.
    monkeypatch.setenv("S4_EXCHANGE", "mexc")
    monkeypatch.setenv("S4_BINANCE_KEY", "k")
    monkeypatch.setenv("S4_BINANCE_SECRET", "s")
    with pytest.raises(ConfigError, match="S4_TESTNET"):
        load_settings(S4Settings)
    monkeypatch.setenv("S4_TESTNET", "false")
    assert load_settings(S4Settings).exchange == "mexc"


def test_load_feeder_mexc_with_the_default_testnet_fails_naming_md_testnet(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The feeder builds its ccxt clients the same way as S4: MEXC has no sandbox.
    monkeypatch.setenv("MD_SOURCE", "mexc")
    with pytest.raises(ConfigError, match="MD_TESTNET"):
        load_settings(MdSettings)
    monkeypatch.setenv("MD_TESTNET", "false")
    assert load_settings(MdSettings).source == "mexc"


@pytest.mark.parametrize(
    ("text", "seconds"), [("60s", 60), ("500ms", 0.5), ("5m", 300), ("2h", 7200), ("15", 15)]
)
def test_parse_duration_with_units_returns_seconds(text: str, seconds: float) -> None:
    assert parse_duration(text).total_seconds() == seconds


def test_s3_scheduler_defaults_are_googles_and_a_remote_plain_http_jwks_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    s3 = load_settings(S3Settings)
    assert s3.scheduler_jwks_url == "https://www.googleapis.com/oauth2/v3/certs"
    assert s3.scheduler_issuers == ["https://accounts.google.com", "accounts.google.com"]
    assert s3.scheduler_audience is None  # OIDC off until an audience is set
    monkeypatch.setenv("S3_SCHEDULER_JWKS_URL", "http://jwks.example.com/certs")
    with pytest.raises(ConfigError, match="S3_SCHEDULER_JWKS_URL"):
        load_settings(S3Settings)
    monkeypatch.setenv("S3_SCHEDULER_JWKS_URL", "http://127.0.0.1:9000/certs")
    assert load_settings(S3Settings).scheduler_jwks_url.startswith("http://127.0.0.1")


def test_load_with_blank_exchange_base_url_reads_it_as_unset(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A ConfigMap lists every variable; "" (or spaces) there means "not set".
    monkeypatch.setenv("S4_EXCHANGE_BASE_URL", "")
    monkeypatch.setenv("MD_EXCHANGE_BASE_URL", "  ")
    assert load_settings(S4Settings).exchange_base_url is None
    assert load_settings(MdSettings).exchange_base_url is None
    monkeypatch.setenv("S4_EXCHANGE_BASE_URL", "http://127.0.0.1:9")
    assert load_settings(S4Settings).exchange_base_url == "http://127.0.0.1:9"

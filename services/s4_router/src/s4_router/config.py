"""S4 settings: `S4_*` environment variables (spec/004 §E) plus local-run knobs."""

from __future__ import annotations

from dataclasses import fields
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from s4_router.policies.registry import PolicyLimits
from svckit.settings import BlankIsNone, CsvList, Duration, ServiceSettings, refuse_mexc_testnet
from tradekit.routing import MAX_TWAP_SLICES

# Settings applied at run time when they change in S4_SETTINGS_DIR: the execution-policy limits
# (each intake reads them once, so an execution keeps the limits it started with). Every other
# setting is restart-only: a change is reported (alert CONFIG_RESTART_REQUIRED, /health), never
# silently ignored.
RELOADABLE_SETTINGS: frozenset[str] = frozenset(f.name for f in fields(PolicyLimits))


Probability = Annotated[float, Field(ge=0, le=1)]
OptionalProbability = Annotated[Probability | None, BlankIsNone]


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="S4_", frozen=True, extra="ignore")

    port: int = Field(default=8082, ge=1, le=65535)
    exchange: Literal["sim", "binance", "binanceusdm", "mexc"] = "sim"
    binance_key: SecretStr | None = None
    binance_secret: SecretStr | None = None
    testnet: bool = True
    route_table_path: Path = Path("fixtures/route_table.json")
    # Hot reload (service_layer/route_table_watch.py): the route table file and, when set, the
    # settings directory (the ConfigMap mounted as files) are checked this often.
    config_watch_ms: int = Field(default=1000, ge=50, le=60_000)
    settings_dir: Path | None = Field(
        default=None,
        description="directory with one file per S4_* key (ConfigMap volume): reloadable "
        "settings are applied, a changed restart-only one is reported",
    )
    cb_error_rate_window: Duration = timedelta(seconds=60)
    cb_error_rate_thresh: float = Field(default=0.2, gt=0, le=1)
    maker_max_wait_ms: int = Field(default=3000, ge=0, le=600_000)
    twap_max_slices: int = Field(default=4, ge=1, le=MAX_TWAP_SLICES)
    oco_guardian: bool = True
    working_type: Literal["MARK_PRICE", "CONTRACT_PRICE"] = "MARK_PRICE"
    # ---- protective orders and reconciliation ---------------------------------------------
    protection: bool = Field(
        default=True, description="FUT sl/tp brackets and SPOT OCO (off: such intents refused)"
    )
    leverage_default: int = Field(default=20, ge=1, le=125, description="intent without leverage")
    protection_poll_ms: int = Field(
        default=1000,
        ge=10,
        description="one batched poll per symbol of live protective orders (venue events wake "
        "the protections they name sooner)",
    )
    protection_position_poll_ms: int = Field(
        default=5000,
        ge=100,
        description="positions of bracketed symbols (one call per account): a manual close or "
        "liquidation is seen within this",
    )
    reconcile_interval_ms: int = Field(
        default=30_000, ge=1000, description="venue vs store reconciliation period (and on start)"
    )
    reconcile_window_ms: int = Field(
        default=3_600_000, ge=60_000, description="reconcile final orders / trades this recent"
    )
    reconcile_cancel_orphans: bool = Field(
        default=False, description="cancel venue orders unknown to the store / stale reduce-only"
    )
    consumer_group: str = "s4-router"
    consumer_name: str | None = Field(default=None, description="default: hostname-pid")
    stream_claim_idle_ms: int = Field(default=30_000, ge=1000)
    stream_max_deliveries: int = Field(default=5, ge=1)
    stream_concurrency: int = Field(
        default=16, ge=1, le=256, description="orders:intent entries of one read handled at once"
    )
    stream_block_ms: int = Field(
        default=1000, ge=10, le=4000, description="XREADGROUP BLOCK; stays below the socket timeout"
    )
    # ---- execution (Maker→Taker, TWAP, probe) -------------------------------------------------
    order_sync_wait_ms: int = Field(
        default=200,
        ge=0,
        le=30_000,
        description="POST /orders waits this long for a running execution to finish (then 202)",
    )
    request_timeout_ms: int = Field(
        default=2_000,
        ge=100,
        le=60_000,
        description="deadline of POST /orders and /cancel: past it (Redis or store stalled, venue "
        "slow) the answer is 503 while the work goes on in the background",
    )
    poll_interval_ms: int = Field(default=250, ge=10, description="child order status polling")
    exec_lease_ms: int = Field(default=15_000, ge=1000, description="ownership of an execution")
    recovery_interval_ms: int = Field(default=5_000, ge=100, description="orphan sweep period")
    shutdown_grace_ms: int = Field(
        default=5_000,
        ge=0,
        le=60_000,
        description="on stop: a step or intent under way finishes (events published) within this",
    )
    background_execution: bool = Field(
        default=True, description="run executions in background tasks (tests drive them by hand)"
    )
    lock_wait_ms: int = Field(default=1_000, ge=0, description="wait for lock:pos:{symbol}")
    max_reprices: int = Field(default=3, ge=0, le=20)
    taker_max_failures: int = Field(default=3, ge=1, le=20)
    cancel_retry_ms: int = Field(default=2_000, ge=10)
    split_gap_ms: int = Field(default=250, ge=0)
    probe_max_child_fraction: Decimal = Field(default=Decimal("0.5"), gt=0, le=1)
    probe_retry_ms: int = Field(default=250, ge=1)
    probe_max_delay_ms: int = Field(default=2_000, ge=0, le=60_000)
    balance_downsize_factor: Decimal = Field(default=Decimal("0.5"), gt=0, lt=1)
    # ---- pre-trade checks (policies.pretrade): refused with 422 before anything is sent ----------
    max_order_notional_usdt: Decimal = Field(
        default=Decimal(250_000),
        gt=0,
        allow_inf_nan=False,
        description="global cap on one entry's notional (qty x ref_price or live mid)",
    )
    price_collar_bps: Decimal = Field(
        default=Decimal(200),
        gt=0,
        le=10_000,
        allow_inf_nan=False,
        description="ref_price further than this from the live mid ⇒ refused",
    )
    min_stop_distance_bps: Decimal = Field(
        default=Decimal(5),
        ge=0,
        le=5_000,
        allow_inf_nan=False,
        description="sl / tp / OCO legs at least this far from the live mid, on the right side",
    )
    intent_max_age_ms: int = Field(
        default=10_000, ge=100, le=3_600_000, description="created_ts older than this ⇒ refused"
    )
    intent_max_future_ms: int = Field(
        default=1_000, ge=0, le=60_000, description="created_ts ahead of our clock (skew) ⇒ refused"
    )
    naked_policy: Literal["close", "alert"] = Field(
        default="close",
        description="stop rejected after the fill: close the position reduce-only, or only alert",
    )
    unprotected_alert_ms: int = Field(
        default=5_000,
        ge=500,
        le=600_000,
        description="a filled bracketed entry still without an acknowledged stop after this "
        "long ⇒ critical POSITION_UNPROTECTED alert (the stop keeps being retried)",
    )
    max_body_bytes: int = Field(
        default=65_536, ge=1024, le=10_485_760, description="larger request bodies ⇒ 413"
    )
    # ---- retries, breaker, clock ------------------------------------------------------------
    recv_window_ms: int = Field(
        default=5_000,
        ge=100,
        le=60_000,
        description="venue recvWindow: an unanswered submit is proven absent only after this",
    )
    retry_attempts: int = Field(default=4, ge=1, le=20)
    retry_base_ms: int = Field(default=50, ge=1)
    retry_max_ms: int = Field(default=2_000, ge=1)
    cb_min_calls: int = Field(default=10, ge=1)
    cb_open_ms: int = Field(default=5_000, ge=10, description="first OPEN → HALF_OPEN cool-down")
    cb_max_open_ms: int = Field(default=60_000, ge=10)
    clock_skew_max_ms: int = Field(default=1_000, ge=1)
    clock_check_ms: int = Field(default=15_000, ge=100)
    clock_skew_max_rtt_ms: int = Field(
        default=1_000,
        ge=1,
        description="a server-time sample whose round trip exceeds this is discarded (its "
        "midpoint could be off by half of it)",
    )
    # ---- request weight and the pre-trade book ----------------------------------------------
    weight_limit_1m: int = Field(
        default=0,
        ge=0,
        description="venue request weight per minute (0: what the adapter knows: Binance spot "
        "6000 and USD-M 2400, each pool apart; the simulator its own limit; else 6000)",
    )
    weight_pace_fraction: float = Field(
        default=0.8,
        gt=0,
        le=1,
        description="normal calls (entries, polls, reads) wait beyond this share of the limit; "
        "the rest is kept for reduce-only orders, cancels and protective placements",
    )
    weight_max_wait_ms: int = Field(
        default=1_000,
        ge=0,
        le=60_000,
        description="a paced call waits at most this, then is refused locally (never sent)",
    )
    book_max_age_ms: int = Field(
        default=1_000,
        ge=0,
        le=60_000,
        description="pre-trade checks use the published mkt:depth:{symbol} this fresh, else "
        "fetch the venue's book (0: always the venue)",
    )
    # ---- quality alerts ---------------------------------------------------------------------
    quality_window: int = Field(default=200, ge=1, description="children/fills/slices per ratio")
    quality_min_samples: int = Field(default=20, ge=1)
    maker_fill_ratio_alert: float = Field(default=0.3, ge=0, le=1)
    insufficient_balance_alert_count: int = Field(default=3, ge=1)
    insufficient_balance_window: Duration = timedelta(minutes=10)
    alert_cooldown: Duration = timedelta(minutes=10)
    sim_symbols: CsvList = Field(default_factory=lambda: ["BTCUSDT", "ETHUSDT", "QRLUSDT"])
    sim_publish_market: bool = Field(
        default=True,
        description="with exchange=sim: append the simulator's market steps to the sim:market "
        "stream, which the market-data feeder (md_feeder) turns into mkt:* and feat:last:*",
    )
    sim_seed: int = 7
    # ---- simulator fault profile (S4_EXCHANGE=sim; the facade takes the same knobs) -----------
    sim_fault_rate: float = Field(
        default=0.0, ge=0, le=1, description="share of venue requests (and reports) that fail"
    )
    sim_fault_seed: int = Field(default=0, description="seed of the fault draws (replayable)")
    sim_fault_rate_limit: OptionalProbability = None
    sim_fault_server_error: OptionalProbability = None
    sim_fault_connect_timeout: OptionalProbability = None
    sim_fault_timeout_before_accept: OptionalProbability = None
    sim_fault_timeout_after_accept: OptionalProbability = None
    sim_fault_dropped_ack: OptionalProbability = None
    sim_fault_delayed_report: OptionalProbability = None
    sim_fault_duplicate_report: OptionalProbability = None
    sim_fault_retry_after_s: float = Field(default=1.0, gt=0, le=60, description="429 Retry-After")
    sim_fault_report_delay_ms: int = Field(default=2_000, ge=0, le=60_000)
    sim_weight_limit: int = Field(
        default=6_000, ge=1, description="simulated venue's request weight per minute"
    )
    malloc_trim_interval_s: float = Field(
        default=30.0,
        ge=0,
        description="give freed heap memory back to the OS every so often (glibc "
        "malloc_trim; 0 = never): without it RSS ratchets up with fragmentation",
    )
    sim_history_max: int = Field(
        default=10_000,
        ge=1,
        description="with exchange=sim: closed orders (and trades) the simulated venue "
        "remembers; older ones are forgotten, open orders never (bounds S4's memory)",
    )
    exchange_base_url: Annotated[str | None, BlankIsNone] = Field(
        default=None,
        description="ccxt exchanges: send every request to this host instead of the venue's "
        "(the simulator's Binance facade, a testnet mirror)",
    )
    market_publish_ms: int = Field(
        default=500, ge=10, description="with exchange=sim: period of the sim:market appends"
    )

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if self.exchange != "sim":
            if not (self.binance_key and self.binance_secret):
                raise ValueError(
                    f"exchange={self.exchange} needs S4_BINANCE_KEY and S4_BINANCE_SECRET"
                )
            refuse_mexc_testnet(self.exchange, self.testnet, prefix="S4_", venue_var="EXCHANGE")
            # Fail closed: whoever reaches the port could trade. The dev switch is for the
            # simulator only; with a real exchange the token is required, whatever else is set.
            if self.auth_disabled:
                raise ValueError(
                    f"S4_AUTH_DISABLED=true is refused with S4_EXCHANGE={self.exchange} "
                    "(a real exchange needs S4_API_TOKEN)"
                )
        else:
            # The per-kind fault knobs override their share of S4_SIM_FAULT_RATE; each side
            # (requests, reports) must stay a probability: a bad ConfigMap fails at start. Only
            # the in-process simulator reads them: with a real exchange `venue` (S4's `sim`
            # extra) may not even be installed, so it is imported for S4_EXCHANGE=sim only.
            try:
                from venue.faults import FAULT_KNOBS, profile_plan
            except ModuleNotFoundError as exc:
                if (exc.name or "").split(".")[0] != "venue":
                    raise
                raise ValueError(
                    "S4_EXCHANGE=sim needs the venue simulator, which is not installed "
                    "(install s4-router[sim]; a live deployment sets S4_EXCHANGE to its exchange)"
                ) from None
            profile_plan(
                self.sim_fault_rate,
                {kind: getattr(self, f"sim_fault_{knob}") for knob, kind in FAULT_KNOBS.items()},
            )
        if self.api_token is None and not self.auth_disabled:
            raise ValueError(
                "S4_API_TOKEN is required (S4_AUTH_DISABLED=true turns authentication off, "
                "with S4_EXCHANGE=sim and for local development only)"
            )
        return self

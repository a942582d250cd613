"""Redis key and stream names (spec/004 §B; DESIGN.md §4). Keep these names: users read the
spec beside the code."""

from __future__ import annotations

# Streams
ORDERS_INTENT = "orders:intent"
ORDERS_EXECUTED = "orders:executed"
ROUTER_EVENTS = "router:events"
ALERTS = "alerts"
ORDERS_INTENT_DLQ = "orders:intent:dlq"

# Config (RCU hot reload)
CFG_ACTIVE_REV = "cfg:active_rev"
# A capped stream (XADD MAXLEN ~ CFG_EVENTS_MAXLEN), one entry per activation/rollback with a
# JSON `data` field {rev, previous_rev, actor, action, ts}: a replica that was disconnected reads
# on from the last id it saw (pub/sub would have lost the message); the poll of cfg:active_rev
# and config_active every S3_CONFIG_POLL_SEC backs it up.
CFG_EVENTS = "cfg:events"
CFG_EVENTS_MAXLEN = 1000
# Serialises activations (read active → write config_active + audit → SET → XADD).
CFG_ACTIVATE_LOCK = "lock:cfg:activate"

# The simulated venue's public market data (S4_EXCHANGE=sim: the venue runs inside S4): one
# entry per market step and symbol, a JSON `data` field (tradekit.market.MarketStep), read by the
# market-data feeder (md_feeder), which publishes mkt:tick / mkt:depth / feat:last from it.
SIM_MARKET = "sim:market"
SIM_MARKET_MAXLEN = 10_000  # about an hour of 1-second steps for three symbols

IDEM_TTL_S = 3600
POS_LOCK_MAX_MS = 3000


def mkt_tick(symbol: str) -> str:
    return f"mkt:tick:{symbol}"


def mkt_depth(symbol: str) -> str:
    return f"mkt:depth:{symbol}"


def feat_last(symbol: str) -> str:
    return f"feat:last:{symbol}"


def idem_order(client_order_id: str) -> str:
    return f"idem:order:{client_order_id}"


def lock_pos(symbol: str) -> str:
    return f"lock:pos:{symbol}"


def halt_entries(symbol: str) -> str:
    """Set by S4 on an overfill: new entries on the symbol are refused until an operator
    deletes it (reduce-only closes still pass)."""
    return f"halt:entries:{symbol}"

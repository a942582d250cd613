"""Binance request signing (``SIGNED`` endpoints), checked exactly as Binance documents it.

* The API key travels in the ``X-MBX-APIKEY`` header: missing ⇒ HTTP 401 ``-2014``, unknown ⇒
  HTTP 401 ``-2015``.
* ``signature`` = hex HMAC-SHA256 (key: the API secret) of *totalParams*, which is the query
  string concatenated with the request body (no separator), ``signature`` itself excluded. It
  may be sent in either. Mismatch ⇒ HTTP 400 ``-1022``.
* ``timestamp`` (ms) is mandatory; ``recvWindow`` defaults to 5 000 ms and may not exceed
  60 000 ms (``-1131``). The request is accepted when
  ``timestamp < serverTime + 1000`` and ``serverTime - timestamp <= recvWindow``; otherwise
  HTTP 400 ``-1021``.

The raw strings are verified as received, byte for byte: re-encoding parsed parameters would
accept requests Binance rejects (and vice versa).
"""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import parse_qsl

from venue.errors import VenueError, mandatory

INVALID_SIGNATURE = -1022
INVALID_TIMESTAMP = -1021
BAD_API_KEY_FORMAT = -2014
REJECTED_MBX_KEY = -2015
BAD_RECV_WINDOW = -1131

DEFAULT_RECV_WINDOW_MS = 5_000
MAX_RECV_WINDOW_MS = 60_000
MAX_AHEAD_MS = 1_000


def _strip_signature(raw: str) -> tuple[str, str | None]:
    """`raw` without its ``signature=...`` component, and the signature value if present."""
    kept: list[str] = []
    signature: str | None = None
    for part in raw.split("&"):
        if part.startswith("signature="):
            signature = part[len("signature=") :]
        else:
            kept.append(part)
    return "&".join(kept), signature


def sign(payload: str, secret: str) -> str:
    """Hex HMAC-SHA256 of `payload` (what a client appends as ``signature``)."""
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def total_params(query: str, body: str) -> tuple[str, str | None]:
    """Binance's *totalParams* (query string + body, signature removed) and the signature."""
    q, sig_q = _strip_signature(query)
    b, sig_b = _strip_signature(body)
    return q + b, sig_q if sig_q is not None else sig_b


def _param(query: str, body: str, name: str) -> str | None:
    for raw in (query, body):
        for key, value in parse_qsl(raw, keep_blank_values=True):
            if key == name:
                return value
    return None


def check_signed_request(
    *,
    query: str,
    body: str,
    api_key_header: str | None,
    api_key: str,
    api_secret: str,
    server_time_ms: int,
) -> None:
    """Raise the VenueError Binance would answer for this signed request, or return."""
    if not api_key_header:
        raise VenueError(BAD_API_KEY_FORMAT, "API-key format invalid.", http_status=401)
    if not hmac.compare_digest(api_key_header, api_key):
        raise VenueError(
            REJECTED_MBX_KEY, "Invalid API-key, IP, or permissions for action.", http_status=401
        )
    payload, signature = total_params(query, body)
    if signature is None:
        raise mandatory("signature")
    if not hmac.compare_digest(sign(payload, api_secret), signature.lower()):
        raise VenueError(INVALID_SIGNATURE, "Signature for this request is not valid.")
    raw_ts = _param(query, body, "timestamp")
    if raw_ts is None or not raw_ts.isdigit():
        raise mandatory("timestamp")
    raw_window = _param(query, body, "recvWindow")
    window = DEFAULT_RECV_WINDOW_MS
    if raw_window is not None:
        if not raw_window.isdigit() or int(raw_window) > MAX_RECV_WINDOW_MS:
            raise VenueError(BAD_RECV_WINDOW, "recvWindow must be less than 60000")
        window = int(raw_window)
    timestamp = int(raw_ts)
    if timestamp >= server_time_ms + MAX_AHEAD_MS:
        raise VenueError(
            INVALID_TIMESTAMP, "Timestamp for this request was 1000ms ahead of the server's time."
        )
    if server_time_ms - timestamp > window:
        raise VenueError(
            INVALID_TIMESTAMP, "Timestamp for this request is outside of the recvWindow."
        )

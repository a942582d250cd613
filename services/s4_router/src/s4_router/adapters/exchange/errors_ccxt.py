"""ccxt exceptions → the exchange port's exception tree (:mod:`.base`), exactly.

ccxt's exception classes alone are not enough to keep S4 safe:

* its translation of Binance error codes depends on the request URL (``fapi.binance.com`` vs
  anything else): the same ``-5022`` post-only rejection is ``OrderNotFillable`` on the real
  futures host but a plain ``InvalidOrder`` behind a proxy or our facade, ``-4116`` (duplicate
  client id) is ``InvalidOrder`` on fapi and ``ExchangeError`` elsewhere;
* ``NetworkError`` covers both "the request never left" (connection refused) and "the answer
  was lost" (read timeout, connection cut mid-response); only the first is safe to resend on a
  submit;
* ``InvalidNonce`` (``-1021``, timestamp outside recvWindow) is a ``NetworkError`` in ccxt, yet
  Binance rejected the request *before* processing it;
* ``RequestTimeout`` is raised both for a client-side timeout and for Binance's ``-1007``
  ("send status unknown").

So :func:`install_error_hooks` hooks ccxt's ``handle_errors`` to :func:`annotate` each
exception with the HTTP status, Binance's ``code``/``msg`` and ``Retry-After``, and
:func:`translate` decides from the evidence, first match wins:

===========================================================  ===================================
evidence                                                     port exception
===========================================================  ===================================
connect failed (connection refused / connect timeout)        ExchangeNetworkError (never sent)
no answer (client timeout, connection cut, broken body):
    on a submit                                              AmbiguousSubmit
    otherwise (timeout / cut)                                ExchangeUnavailable / NetworkError
HTTP 418 / 429, DDoSProtection, RateLimitExceeded, -1003     RateLimited(retry_after=Retry-After)
-1021 / InvalidNonce (timestamp outside recvWindow)          RetryableError (resync clock, resend)
-1007 / RequestTimeout answered by the venue:
    on a submit                                              AmbiguousSubmit
    otherwise                                                ExchangeUnavailable
HTTP 5xx, ExchangeNotAvailable, OnMaintenance, -1001, -1008  ExchangeUnavailable
-1022 / -2014 / -2015, AuthenticationError, PermissionDenied DefinitiveError
-2019, -2010 "insufficient balance", InsufficientFunds       InsufficientFunds
-4116 "ClientOrderId is duplicated", -2010 "Duplicate order  DuplicateOrder (already accepted)
sent.", DuplicateOrderId
-5022, -2010 "would immediately match and take",             PostOnlyRejected
OrderImmediatelyFillable (not -2021: that is a stop that
would trigger at once, a plain InvalidOrder)
-2022 "ReduceOnly Order is rejected"                         ReduceOnlyRejected
-4047 / -4048 (margin type cannot be changed: open orders /  MarginModeConflict
position in the other mode)
-2011, -2013, OrderNotFound                                  OrderNotFound
InvalidOrder, BadRequest, BadSymbol, ArgumentsRequired,      InvalidOrder
NotSupported, any other 4xx
any other NetworkError: on a submit / otherwise              AmbiguousSubmit / ExchangeNetworkError
anything else                                                ExchangeError
===========================================================  ===================================

"Submit" means a request that creates something (an order, an OCO list, a conditional order):
only there is a lost answer dangerous. Cancels and queries are safe to repeat.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import aiohttp
import ccxt.async_support as ccxt

from s4_router.adapters.exchange.base import (
    AmbiguousSubmit,
    DefinitiveError,
    DuplicateOrder,
    ExchangeError,
    ExchangeNetworkError,
    ExchangeUnavailable,
    InsufficientFunds,
    InvalidOrder,
    MarginModeConflict,
    OrderNotFound,
    PostOnlyRejected,
    RateLimited,
    ReduceOnlyRejected,
    RetryableError,
)

# Binance codes (spot and USDⓈ-M share them).
SERVER_ERRORS = frozenset({-1000, -1001, -1008})
BACKEND_TIMEOUT = -1007
TOO_MANY_REQUESTS = -1003
INVALID_TIMESTAMP = -1021
AUTH_ERRORS = frozenset({-1022, -2014, -2015})
NEW_ORDER_REJECTED = -2010
MARGIN_INSUFFICIENT = -2019
WOULD_IMMEDIATELY_TRIGGER = -2021
REDUCE_ONLY_REJECTED = -2022
NOT_FOUND = frozenset({-2011, -2013})
DUPLICATE_CLIENT_ID = -4116
# "Margin type cannot be changed if there exists open orders" / "... if there exists position".
MARGIN_MODE_CONFLICT = frozenset({-4047, -4048})
POST_ONLY_REJECTED = -5022

_ATTR = "_s4_evidence"


def annotate(
    exc: BaseException,
    *,
    http_status: int | None,
    headers: Mapping[str, str] | None,
    response: Any,
) -> None:
    """Attach what the HTTP answer said to a ccxt exception (called from the error hook)."""
    code: int | None = None
    msg: str | None = None
    if isinstance(response, Mapping):
        raw_code, raw_msg = response.get("code"), response.get("msg")
        try:
            code = int(raw_code) if raw_code is not None else None
        except (TypeError, ValueError):
            code = None
        msg = str(raw_msg) if raw_msg is not None else None
    retry_after: float | None = None
    for key, value in (headers or {}).items():
        if key.lower() == "retry-after":
            try:
                retry_after = float(value)
            except ValueError:
                retry_after = None
    setattr(exc, _ATTR, {"status": http_status, "code": code, "msg": msg, "retry": retry_after})


def install_error_hooks(client: Any) -> None:
    """Annotate every exception ccxt raises from an HTTP answer with its status, Binance
    code/msg and Retry-After (ccxt's exception classes drop them)."""
    handle_errors = client.handle_errors
    handle_status = client.handle_http_status_code

    # Named, not *args: if ccxt changes these signatures the hook fails loudly instead of
    # annotating from the wrong argument.
    def hooked_errors(
        code: Any,
        reason: Any,
        url: Any,
        method: Any,
        headers: Any,
        body: Any,
        response: Any,
        request_headers: Any,
        request_body: Any,
    ) -> Any:
        try:
            return handle_errors(
                code, reason, url, method, headers, body, response, request_headers, request_body
            )
        except Exception as exc:
            annotate(exc, http_status=code, headers=headers, response=response)
            raise

    def hooked_status(code: Any, reason: Any, url: Any, method: Any, body: Any) -> Any:
        try:
            return handle_status(code, reason, url, method, body)
        except Exception as exc:
            annotate(exc, http_status=code, headers=None, response=None)
            raise

    client.handle_errors = hooked_errors
    client.handle_http_status_code = hooked_status


def translate(exc: BaseException, *, submit: bool) -> ExchangeError:
    """Map one ccxt exception (annotated or not) to the port's tree (see the module table)."""
    ev: dict[str, Any] = getattr(exc, _ATTR, {})
    status: int | None = ev.get("status")
    code: int | None = ev.get("code")
    msg: str = ev.get("msg") or str(exc)
    low = msg.lower()
    text = str(exc)
    err_code: int | str | None = code if code is not None else status

    # ---- no (complete) HTTP answer ----------------------------------------------------------
    if status is None:
        chain: list[BaseException] = []
        cur: BaseException | None = exc.__cause__ or exc.__context__
        while cur is not None and len(chain) < 5:
            chain.append(cur)
            cur = cur.__cause__ or cur.__context__
        # The TCP connection could not be opened: the request provably never left.
        if any(
            isinstance(c, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError)
            for c in chain
        ):
            return ExchangeNetworkError(f"not sent: {text}", code=err_code)
        # No complete HTTP answer: timeout, connection reset/cut, truncated body.
        if any(
            isinstance(c, aiohttp.ClientError | asyncio.TimeoutError | OSError) for c in chain
        ) or (isinstance(exc, ccxt.RequestTimeout | ccxt.ExchangeNotAvailable) and not chain):
            if submit:
                return AmbiguousSubmit(f"no answer to a submit: {text}", code=err_code)
            if isinstance(exc, ccxt.RequestTimeout) or any(
                isinstance(c, asyncio.TimeoutError) for c in chain
            ):
                return ExchangeUnavailable(f"no answer in time: {text}", code=err_code)
            return ExchangeNetworkError(text, code=err_code)

    # ---- the venue answered -----------------------------------------------------------------
    if (
        status in (418, 429)
        or code == TOO_MANY_REQUESTS
        or isinstance(exc, ccxt.DDoSProtection | ccxt.RateLimitExceeded)
    ):
        return RateLimited(text, retry_after=ev.get("retry"), code=err_code)
    if code == INVALID_TIMESTAMP or isinstance(exc, ccxt.InvalidNonce):
        return RetryableError(f"rejected before processing (clock): {text}", code=err_code)
    if code == BACKEND_TIMEOUT or isinstance(exc, ccxt.RequestTimeout):
        if submit:
            return AmbiguousSubmit(f"venue timed out, status unknown: {text}", code=err_code)
        return ExchangeUnavailable(text, code=err_code)
    if (
        (status is not None and status >= 500)
        or code in SERVER_ERRORS
        or isinstance(exc, ccxt.ExchangeNotAvailable | ccxt.OnMaintenance)
    ):
        return ExchangeUnavailable(text, code=err_code)
    if code in AUTH_ERRORS or isinstance(exc, ccxt.AuthenticationError | ccxt.PermissionDenied):
        return DefinitiveError(text, code=err_code)
    if (
        code == MARGIN_INSUFFICIENT
        or "insufficient balance" in low
        or isinstance(exc, ccxt.InsufficientFunds)
    ):
        return InsufficientFunds(text, code=err_code)
    if (
        code == DUPLICATE_CLIENT_ID
        or "duplicate order sent" in low
        or "clientorderid is duplicated" in low
        or isinstance(exc, ccxt.DuplicateOrderId)
    ):
        return DuplicateOrder(text, code=err_code)
    if code == WOULD_IMMEDIATELY_TRIGGER:
        return InvalidOrder(text, code=err_code)
    if (
        code == POST_ONLY_REJECTED
        or "would immediately match and take" in low
        or isinstance(exc, ccxt.OrderImmediatelyFillable)
    ):
        return PostOnlyRejected(text, code=err_code)
    if code == REDUCE_ONLY_REJECTED or "reduceonly order is rejected" in low:
        return ReduceOnlyRejected(text, code=err_code)
    if code in NOT_FOUND or isinstance(exc, ccxt.OrderNotFound):
        return OrderNotFound(text, code=err_code)
    if code in MARGIN_MODE_CONFLICT:
        return MarginModeConflict(text, code=err_code)
    if isinstance(
        exc,
        ccxt.InvalidOrder
        | ccxt.BadRequest
        | ccxt.ArgumentsRequired
        | ccxt.NotSupported
        | ccxt.BadSymbol,
    ) or (status is not None and 400 <= status < 500):
        return InvalidOrder(text, code=err_code)
    if isinstance(exc, ccxt.NetworkError):
        if submit:
            return AmbiguousSubmit(text, code=err_code)
        return ExchangeNetworkError(text, code=err_code)
    return ExchangeError(text, code=err_code)


__all__ = ["annotate", "install_error_hooks", "translate"]

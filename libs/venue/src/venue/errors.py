"""The venue's own exception tree, shaped like Binance's REST errors.

Every rejection carries the Binance error ``code`` (negative int) and the HTTP status the real
venue would answer with, so that adapters can translate it exactly as they would translate a
response from Binance itself::

    VenueError(code, message, http_status)
    ├── RateLimitExceeded      HTTP 429, code -1003, ``retry_after_s`` (the Retry-After header)
    ├── VenueServerError       HTTP 5xx (-1001 internal error / -1008 overloaded)
    └── VenueTimeout           no answer in time; ``reached_venue`` and ``accepted`` say what the
        └── AckDropped         venue really did (a real client only knows ``reached_venue``)
"""

from __future__ import annotations

# ---- Binance error codes used by the simulator -----------------------------------------------
DISCONNECTED = -1001  # "Internal error; unable to process your request. Please try again."
TOO_MANY_REQUESTS = -1003
TIMEOUT = -1007  # "Timeout waiting for response from backend server. Send status unknown..."
INVALID_PARAM = -1102  # mandatory parameter missing / malformed
BAD_PRECISION = -1111  # futures: quantity off the step
INVALID_TIF = -1115
BAD_SYMBOL = -1121
FILTER_FAILURE = -1013
NEW_ORDER_REJECTED = -2010  # spot: insufficient balance, post-only cross, duplicate, ...
CANCEL_REJECTED = -2011  # "Unknown order sent."
NO_SUCH_ORDER = -2013  # "Order does not exist."
MARGIN_INSUFFICIENT = -2019  # futures
WOULD_IMMEDIATELY_TRIGGER = -2021  # futures conditional order
REDUCE_ONLY_REJECT = -2022  # futures
PRICE_NOT_ON_TICK = -4014  # futures: "Price not increased by tick size."
INVALID_LEVERAGE = -4028
NO_NEED_TO_CHANGE_MARGIN_TYPE = -4046
MARGIN_TYPE_WITH_POSITION = -4048
DUPLICATE_CLIENT_ORDER_ID = -4116  # futures: "ClientOrderId is duplicated."
FOK_REJECTED = -5021  # futures FOK that cannot fill entirely
POST_ONLY_REJECTED = -5022  # futures GTX that would cross

# Spot shares -2010 between several causes; the messages are Binance's own, and adapters that
# need the cause (insufficient balance vs post-only vs duplicate) match on them like on Binance.
MSG_INSUFFICIENT_BALANCE = "Account has insufficient balance for requested action."
MSG_WOULD_TAKE = "Order would immediately match and take."
MSG_DUPLICATE = "Duplicate order sent."
MSG_FUT_DUPLICATE = "ClientOrderId is duplicated."
MSG_FUT_POST_ONLY = (
    "Due to the order could not be executed as maker, the Post Only order will be rejected."
)
MSG_FUT_FOK = "Due to the order could not be filled immediately, the FOK order has been rejected."
MSG_UNKNOWN_ORDER = "Unknown order sent."
MSG_NO_SUCH_ORDER = "Order does not exist."
MSG_REDUCE_ONLY = "ReduceOnly Order is rejected."
MSG_MARGIN_INSUFFICIENT = "Margin is insufficient."
MSG_WOULD_TRIGGER = "Order would immediately trigger."
MSG_NO_NEED_MARGIN_TYPE = "No need to change margin type."
MSG_OCO_PRICES = "The relationship of the prices for the orders is not correct."
MSG_TOO_MANY = (
    "Too many requests; current limit is {limit} request weight per minute. "
    "Please use WebSocket Streams for live updates to avoid polling the API."
)


class VenueError(Exception):
    """A request the venue answered with an error body ``{"code": .., "msg": ..}``."""

    def __init__(self, code: int, message: str, *, http_status: int = 400) -> None:
        super().__init__(f"[{code}] {message}")
        self.code = code
        self.msg = message
        self.http_status = http_status

    def as_body(self) -> dict[str, object]:
        """The JSON body Binance would send."""
        return {"code": self.code, "msg": self.msg}


class RateLimitExceeded(VenueError):
    """HTTP 429: too much request weight in the current minute (or an injected 429)."""

    def __init__(self, message: str, *, retry_after_s: float, used_weight: int = 0) -> None:
        super().__init__(TOO_MANY_REQUESTS, message, http_status=429)
        self.retry_after_s = retry_after_s
        self.used_weight = used_weight


class VenueServerError(VenueError):
    """HTTP 5xx: the venue failed; nothing was done."""

    def __init__(
        self,
        message: str = "Internal error; unable to process your request.",
        *,
        http_status: int = 503,
        code: int = DISCONNECTED,
    ) -> None:
        super().__init__(code, message, http_status=http_status)


class VenueTimeout(VenueError):
    """No response in time.

    ``reached_venue`` is what a client can know (False: the connection never got through, e.g.
    connect timeout). ``accepted`` is the venue-side truth, kept for tests and diagnostics: a real
    client must resolve it by querying the client order id, never by reading this attribute.
    """

    def __init__(self, message: str, *, reached_venue: bool, accepted: bool) -> None:
        super().__init__(TIMEOUT, message, http_status=408)
        self.reached_venue = reached_venue
        self.accepted = accepted


class AckDropped(VenueTimeout):
    """The venue processed the request but the acknowledgement never arrived."""

    def __init__(self, message: str = "acknowledgement lost") -> None:
        super().__init__(message, reached_venue=True, accepted=True)


def mandatory(name: str) -> VenueError:
    """-1102 for a request parameter that is missing, empty or malformed."""
    return VenueError(
        INVALID_PARAM, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed."
    )

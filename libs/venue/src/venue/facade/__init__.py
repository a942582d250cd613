"""Binance-compatible REST facade of the venue simulator (spot ``/api/v3``, USDⓈ-M ``/fapi``).

``create_facade(venue, api_key=..., api_secret=...)`` builds the ASGI app;
:class:`~venue.facade.server.FacadeServer` serves it on loopback in a background thread;
``python -m venue.facade --port 8765`` runs a wall-clock venue behind it.
"""

from venue.facade.app import create_facade
from venue.facade.auth import sign
from venue.facade.server import FacadeServer

__all__ = ["FacadeServer", "create_facade", "sign"]

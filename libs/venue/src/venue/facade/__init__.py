"""Binance-compatible REST facade of the venue simulator (spot ``/api/v3``, USDⓈ-M ``/fapi``).

``create_facade(venue, api_key=..., api_secret=...)`` builds the ASGI app;
``python -m venue.facade --port 8765`` runs a wall-clock venue behind it.
"""

from venue.facade.app import create_facade
from venue.facade.auth import sign

__all__ = ["create_facade", "sign"]

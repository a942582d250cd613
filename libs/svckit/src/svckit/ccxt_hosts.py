"""Where a ccxt client sends its requests: the venue's testnet, or one host of our own (the
simulator's Binance facade in tests and `make run`), for every ccxt client the services build
(S4's exchange adapter, the market-data feeder, S3's spot reader). No ccxt import: the client
is duck-typed, so svckit does not depend on ccxt."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit


def rewrite_urls(urls: Any, base_url: str) -> Any:
    """Every URL in ccxt's ``urls['api']`` tree re-pointed at `base_url` (path kept)."""
    if isinstance(urls, str):
        return base_url.rstrip("/") + urlsplit(urls).path
    if isinstance(urls, dict):
        return {k: rewrite_urls(v, base_url) for k, v in urls.items()}
    return urls


def point_client(client: Any, *, testnet: bool, base_url: str | None) -> Any:
    """`client` in sandbox mode when `testnet`, and sent to `base_url` when given."""
    if testnet:
        client.set_sandbox_mode(True)
    if base_url is not None:
        client.urls["api"] = rewrite_urls(client.urls["api"], base_url)
        if base_url.startswith("http://"):
            client.timeout_on_exit = 0  # ccxt's 250 ms close() pause is for TLS
    return client

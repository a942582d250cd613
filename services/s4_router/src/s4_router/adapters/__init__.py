"""Adapters (infrastructure) of S4: the exchange port and its clients (`exchange/`), the
execution leases (`leases`) and the orders repository (`orders_repo`)."""

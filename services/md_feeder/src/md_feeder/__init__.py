"""Market-data feeder: its own process (`python -m md_feeder`), beside S3 and S4.

Reads a venue's public market data and publishes what S3 decides on and S4's pre-trade checks
read: `mkt:tick:{symbol}`, `mkt:depth:{symbol}` and `feat:last:{symbol}` (features defined in
:mod:`tradekit.features`). Two sources, chosen by `MD_SOURCE`:

* ``sim`` (`make run`, tests): the simulated venue's steps from the `sim:market` stream, which
  S4 appends to while it runs the simulator in-process (`S4_EXCHANGE=sim`);
* ``binance`` / ``binanceusdm`` / ``mexc``: public order books polled through ccxt (no keys).

It depends on tradekit and svckit only (and ccxt): never on S3, S4 or the simulator.
"""

"""Pure trading domain shared by S3, S4 and the market-data feeder.

Nothing here performs I/O or imports infrastructure (fastapi, redis, arango, ccxt): it is the
vocabulary both services and the venue simulator speak. Money and quantities are `Decimal`;
all rounding to exchange filters lives in :mod:`tradekit.instrument`.
"""

"""Local venue simulator: a Binance-like spot + USDⓈ-M futures venue in pure Python.

Matching engine with an L2 book per symbol (:mod:`venue.engine`, :mod:`venue.book`), spot and
futures accounts (:mod:`venue.accounts`), futures algo orders and spot OCO lists
(:mod:`venue.algo`, :mod:`venue.engine`), fees from the instrument, a seeded latency model
(:mod:`venue.latency`), server time with skew, faults on demand (:mod:`venue.faults`), replayed
and synthetic markets (:mod:`venue.market`) and an execution-report feed (:mod:`venue.feed`).
The features computed from its books are defined in :mod:`tradekit.features` (the feeder's).
No I/O (except reading the recorded fixtures once, on request), no asyncio, no sleeps, an
injected clock, one ``random.Random`` per concern seeded from the venue's seed.

Start with :func:`venue.defaults.default_venue` or build a :class:`venue.venue.Venue`.
"""

"""Spot rebalancing (spec 000–003): pure planners over balances, price, closes and cost basis.

No I/O here: the service layer (`service_layer/rebalance_tasks.py`) gathers the inputs, calls a
planner and turns a BUY/SELL plan into a SPOT intent for S4.
"""

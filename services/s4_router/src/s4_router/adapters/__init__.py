"""Adapters (infrastructure) of S4."""

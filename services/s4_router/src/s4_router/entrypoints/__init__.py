"""S4 entrypoints."""

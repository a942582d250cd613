"""S4 policies."""

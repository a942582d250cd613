"""S4 domain."""

"""S3 entrypoints."""

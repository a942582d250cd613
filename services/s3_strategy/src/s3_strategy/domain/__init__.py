"""S3 domain."""

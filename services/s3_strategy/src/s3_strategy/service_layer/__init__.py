"""S3 service_layer."""

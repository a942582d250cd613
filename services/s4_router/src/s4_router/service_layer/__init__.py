"""S4 service_layer."""

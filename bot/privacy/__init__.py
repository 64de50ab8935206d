"""Health data handled as health data: redaction at rest, retention and erasure."""

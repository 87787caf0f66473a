"""Feature extractors and sample-quality metrics."""

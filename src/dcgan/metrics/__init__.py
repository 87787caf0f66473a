"""Library: the feature extractors (classifier, Inception-v3), reference features and the
sample-quality metrics. Imports networks, data and the ground floor; never training or app."""

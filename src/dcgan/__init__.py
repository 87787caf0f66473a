"""DCGAN as a reproducible, reviewable pipeline (DVC stages + Prefect retraining)."""

__version__ = "0.1.0"

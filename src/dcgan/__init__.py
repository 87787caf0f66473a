"""DCGAN as a reproducible, reviewable pipeline (DVC stages + Prefect retraining)."""

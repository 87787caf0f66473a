"""What the retraining flow versions, and its lock (the pipeline's paths: :mod:`dcgan.app.paths`)."""

from dcgan.app.paths import (
           EVALUATOR,
           FEATURES,
           METRICS,
           MODELS,
           PREPARED,
           RETRAIN_REPORTS,
           SAMPLE_GRID,
           SAMPLES_INFO,
)

__all__ = ["ARTIFACT", "DEFAULT_STAGE", "LOCK_FILE", "EVALUATOR", "FEATURES", "METRICS", "MODELS", "PREPARED",
           "RETRAIN_REPORTS", "SAMPLE_GRID", "SAMPLES_INFO"]

ARTIFACT = "generator"  # dvc.yaml `artifacts:` (models/gan), the GTO artifact a promotion versions
DEFAULT_STAGE = "prod"
LOCK_FILE = ".dvc/tmp/retrain.lock"

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

DATA = "data"  # where a run's data live: files under it that are not committed are named in the log

__all__ = ["ARTIFACT", "CHECKPOINT_STORE", "CHECKPOINT_STORE_ENV", "DATA", "DEFAULT_STAGE", "JOURNAL", "LOCK_FILE", "EVALUATOR", "FEATURES", "METRICS", "MODELS", "PREPARED",
           "RETRAIN_REPORTS", "SAMPLE_GRID", "SAMPLES_INFO"]

ARTIFACT = "generator"  # dvc.yaml `artifacts:` (models/gan), the GTO artifact a promotion versions
DEFAULT_STAGE = "prod"
LOCK_FILE = ".dvc/tmp/retrain.lock"
CHECKPOINT_STORE = ".dvc/tmp/retrain-checkpoints"  # train checkpoints that outlive an experiment's temp copy
CHECKPOINT_STORE_ENV = "DCGAN_CHECKPOINT_STORE"  # how the train stage is told (dcgan.app.stages.train)
JOURNAL = ".dvc/tmp/retrain-promotion.json"  # an unfinished promotion's steps (recover() reads it)

"""Where the retraining flow reads and what it versions."""

METRICS_FILE = "reports/metrics.json"
SAMPLES_FILE = "reports/samples.png"
ARTIFACT = "generator"  # dvc.yaml `artifacts:` (models/gan), the GTO artifact a promotion versions
DEFAULT_STAGE = "prod"
LOCK_FILE = ".dvc/tmp/retrain.lock"
FEATURES_FILE = "data/evaluated/features.npy"  # the evaluate stage's generated features (the paired test)
REFERENCE_FILE = "models/evaluator/reference.npz"  # the training set's features (train_features)

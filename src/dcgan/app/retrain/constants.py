"""Where the retraining flow reads and what it versions."""

METRICS_FILE = "reports/metrics.json"
SAMPLES_FILE = "reports/samples.png"
ARTIFACT = "generator"  # dvc.yaml `artifacts:` (models/gan), the GTO artifact a promotion versions
DEFAULT_STAGE = "prod"
LOCK_FILE = ".dvc/tmp/retrain.lock"
FEATURES_FILE = "data/evaluated/features.npy"  # the evaluate stage's generated features (the paired test)
SAMPLES_INFO = "data/samples/samples.json"  # which generator, DRS, the latents (the sample stage)
EVALUATOR = "models/evaluator"  # the extractor and reference statistics (the evaluator stage)
PREPARED = "data/prepared"  # the prepared images (the prepare stage)
MODELS = "models/gan"  # the generator's folder (the train stage; the artifact's path)

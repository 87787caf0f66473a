"""The pipeline's files and folders, named once: the stages' default arguments, the retraining
flow's reads and the ``dcgan`` command's default model are these; dvc.yaml passes exactly these
(tests/test_paths.py holds it to them, and src/ and flows/ to naming no other)."""

PARAMS_OK = "data/params.ok"  # validate's stamp
PREPARED = "data/prepared"  # prepare: train.npy, holdout.npy, meta.json
AUGMENTED = "data/augmented"  # augment: train.npy
TRAIN_IMAGES = "data/augmented/train.npy"  # what train reads
EVALUATOR = "models/evaluator"  # evaluator: the extractor and the reference statistics
MODELS = "models/gan"  # train: the generator, discriminator(s), model.json (the GTO artifact's path)
CHECKPOINTS = "checkpoints/train"  # train's resumable checkpoints (persist)
LIVE = "dvclive"  # train's dvclive logs
SAMPLES = "data/samples/samples.npy"  # sample: the images
SAMPLES_INFO = "data/samples/samples.json"  # sample: which generator, DRS, the latents
SAMPLE_GRID = "reports/samples.png"
INTERPOLATION = "reports/interpolation.png"
FEATURES = "data/evaluated/features.npy"  # evaluate: every sample's features (the paired test)
METRICS = "reports/metrics.json"
RECON_GRID = "reports/reconstructions.png"
COPIES_GRID = "reports/copies.png"
REPORT = "reports/report.md"
RETRAIN_REPORTS = "reports/retrain"  # the retraining flow: one folder per run

"""Application: params.yaml (params), the DVC stages, the `dcgan` command, the report and the
retraining package. May import everything below it; nothing imports it."""

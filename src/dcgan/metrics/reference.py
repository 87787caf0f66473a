"""Reference features of the real data, computed once per (data, extractor) by the evaluator stage.

``models/evaluator/reference.npz`` holds the training set's and the holdout's features and
logits; ``reference.json`` records the extractor id and the digests of the arrays they came
from. DVC reruns the evaluator stage only when the data or the extractor change, so
experiments on train params reuse them; train and evaluate check the digests, so stale
features are refused rather than silently used.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dcgan import files
from dcgan.errors import UserError
from dcgan.metrics.sets import FeatureSet, Reference

NPZ, META = "reference.npz", "reference.json"


def make_extractor(kind: str, evaluator_dir: str | Path, inception_weights: str, batch_size: int,
                   device: torch.device, download: bool = False):
    """The extractor named by evaluate.extractor (``download``: fetch missing Inception weights)."""
    if kind == "classifier":
        from dcgan.metrics.features import ClassifierExtractor

        return ClassifierExtractor(evaluator_dir, device, batch_size)
    if kind == "inception":
        from dcgan.metrics.inception import InceptionExtractor

        return InceptionExtractor(inception_weights, device, min(batch_size, 64), download=download)
    raise ValueError(f"unknown extractor {kind!r}")


def write_reference(folder: str | Path, extractor, data_dir: str | Path) -> dict[str, Any]:
    data_dir = Path(data_dir)
    arrays: dict[str, np.ndarray] = {}
    for split in ("train", "holdout"):
        images = np.load(data_dir / f"{split}.npy", allow_pickle=False)
        f, lg = extractor(images, f"features: {split}")
        arrays[f"{split}_features"], arrays[f"{split}_logits"] = f, lg
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    files.write_bytes(Path(folder) / NPZ, buf.getvalue())
    meta = {
        "extractor": extractor.kind, "extractor_id": extractor.id, "feature_dim": extractor.feature_dim,
        "train_digest": files.file_digest(data_dir / "train.npy"),
        "holdout_digest": files.file_digest(data_dir / "holdout.npy"),
    }
    files.write_json(Path(folder) / META, meta)
    return meta


def load_reference(folder: str | Path, data_dir: str | Path, extractor_kind: str
                   ) -> tuple[Reference, FeatureSet, dict[str, Any]]:
    """(training-set reference, holdout features, meta); refuses stale or mismatched files."""
    folder, data_dir = Path(folder), Path(data_dir)
    if not (folder / META).is_file() or not (folder / NPZ).is_file():
        raise UserError(f"reference features {folder / NPZ} do not exist (run the evaluator stage)")
    meta = files.read_json(folder / META)
    if meta["extractor"] != extractor_kind:
        raise UserError(
            f"reference features in {folder} were made with the {meta['extractor']} extractor but "
            f"evaluate.extractor is {extractor_kind}; rerun the evaluator stage (dvc repro)"
        )
    for split in ("train", "holdout"):
        if files.file_digest(data_dir / f"{split}.npy") != meta[f"{split}_digest"]:
            raise UserError(
                f"reference features in {folder} are stale: {data_dir / split}.npy changed since "
                f"they were computed; rerun the evaluator stage (dvc repro)"
            )
    with np.load(folder / NPZ, allow_pickle=False) as z:
        ref = Reference.from_features(z["train_features"])
        hold = FeatureSet(z["holdout_features"], z["holdout_logits"])
    return ref, hold, meta

"""Reference features of the real data, computed once per (data, extractor) by the evaluator stage.

``models/evaluator/reference.npz`` holds the training set's feature mean and covariance (what
FID compares with, and all the train stage loads), its features, and the holdout's features
and logits, float32; ``reference.json`` records the extractor id, how many images were used
and the digests of the arrays they came from. DVC reruns the evaluator stage only when the
data or the extractor change, so experiments on train params reuse them; train and evaluate
check the digests, so stale features are refused rather than silently used.

At most ``evaluator.reference_max_images`` images of each split are used (50,000 is the usual
FID protocol): a seeded subset, read from the files a chunk at a time, so the evaluator's
memory and time stop growing with the dataset beyond that.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dcgan.core import files
from dcgan.core.errors import SettingError, UserError
from dcgan.core.seeding import derive_seed
from dcgan.data.arrays import open_images
from dcgan.metrics.fid import stats_in_chunks
from dcgan.metrics.sets import FeatureSet, Reference

NPZ, META = "reference.npz", "reference.json"


def make_extractor(kind: str, evaluator_dir: str | Path, inception_weights: str, batch_size: int,
                   device: torch.device, download: bool = False, resize: str = "legacy"):
    """The extractor named by evaluator.extractor (``download``: fetch missing Inception weights;
    ``resize``: how Inception's 299×299 input is made, :mod:`dcgan.metrics.resize`; the
    classifier reads images at their own size)."""
    if kind == "classifier":
        from dcgan.metrics.classifier import ClassifierExtractor

        return ClassifierExtractor(evaluator_dir, device, batch_size)
    if kind == "inception":
        from dcgan.metrics.inception import InceptionExtractor

        return InceptionExtractor(inception_weights, device, min(batch_size, 64), download=download, resize=resize)
    raise ValueError(f"unknown extractor {kind!r}")


def check_extractor(meta: dict[str, Any], extractor, folder: str | Path) -> None:
    """Refuse reference features made by another extractor (other weights, or another feature
    layout, such as the classifier's embedding-only features before its multi-scale ones)."""
    if extractor.id != meta["extractor_id"]:
        raise UserError(f"reference features in {folder} were made by {meta['extractor_id']}, but the "
                        f"extractor is now {extractor.id}; rerun the evaluator stage (dvc repro)")


def subset_rows(n: int, cap: int, seed: int, split: str) -> np.ndarray:
    """Rows of a split of ``n`` images that the reference uses: all of them up to ``cap``,
    else a seeded random ``cap`` of them, ascending (sequential reads)."""
    if n <= cap:
        return np.arange(n, dtype=np.int64)
    rng = np.random.default_rng(derive_seed(seed, "reference", split))
    return np.sort(rng.permutation(n)[:cap]).astype(np.int64)


def write_reference(folder: str | Path, extractor, data_dir: str | Path, max_images: int = 50_000,
                    seed: int = 0) -> dict[str, Any]:
    data_dir = Path(data_dir)
    out: dict[str, np.ndarray] = {}
    used = {}
    for split in ("train", "holdout"):
        images = open_images(data_dir / f"{split}.npy")
        rows = subset_rows(len(images), max_images, seed, split)
        f, lg = extractor(images.rows(rows), f"features: {split}")
        images.close()
        out[f"{split}_features"] = f
        if split == "train":
            out["train_mu"], out["train_sigma"] = stats_in_chunks(f)
        else:
            out["holdout_logits"] = lg
        used[split] = (len(rows), len(images))
    buf = io.BytesIO()
    np.savez(buf, **out)
    files.write_bytes(Path(folder) / NPZ, buf.getvalue())
    meta = {
        "extractor": extractor.kind, "extractor_id": extractor.id, "feature_dim": extractor.feature_dim,
        "resize": getattr(extractor, "resize", "native"),
        "train_digest": files.recorded_digest(data_dir / "train.npy"),
        "holdout_digest": files.recorded_digest(data_dir / "holdout.npy"),
        "max_images": max_images,
        "n_train_used": used["train"][0], "n_train": used["train"][1],
        "n_holdout_used": used["holdout"][0], "n_holdout": used["holdout"][1],
    }
    files.write_json(Path(folder) / META, meta)
    return meta


def load_reference(folder: str | Path, data_dir: str | Path, extractor_kind: str, features: bool = True
                   ) -> tuple[Reference, FeatureSet | None, dict[str, Any]]:
    """(training-set reference, holdout features, meta); refuses stale or mismatched files.
    ``features=False`` (the train stage's FID): only the mean and covariance are read."""
    folder, data_dir = Path(folder), Path(data_dir)
    if not (folder / META).is_file() or not (folder / NPZ).is_file():
        raise UserError(f"reference features {folder / NPZ} do not exist (run the evaluator stage)")
    meta = files.read_json(folder / META)
    if meta["extractor"] != extractor_kind:
        raise SettingError(
            "extractor", f"is {extractor_kind}, but the reference features in {folder} were made with the "
                         f"{meta['extractor']} extractor; rerun the evaluator stage (dvc repro)"
        )
    if "train_mu" not in _members(folder / NPZ):
        raise UserError(f"reference features {folder / NPZ} are in an older format (no train_mu); "
                        "rerun the evaluator stage (dvc repro)")
    for split in ("train", "holdout"):
        if files.recorded_digest(data_dir / f"{split}.npy") != meta[f"{split}_digest"]:
            raise UserError(
                f"reference features in {folder} are stale: {data_dir / split}.npy changed since "
                f"they were computed; rerun the evaluator stage (dvc repro)"
            )
    with np.load(folder / NPZ, allow_pickle=False) as z:  # an npz reads only the members asked for
        ref = Reference(z["train_features"] if features else None, z["train_mu"], z["train_sigma"])
        hold = FeatureSet(z["holdout_features"], z["holdout_logits"]) if features else None
    return ref, hold, meta


def _members(path: Path) -> set[str]:
    with np.load(path, allow_pickle=False) as z:
        return set(z.files)

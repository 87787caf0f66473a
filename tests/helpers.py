"""What tests build their inputs with, and the library does not need: a whole dataset in
memory, FID between two feature sets, a set's per-channel statistics."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dcgan.core.errors import UserError
from dcgan.data.arrays import ChannelSums
from dcgan.data.encoded import RawDataset
from dcgan.data.loaders import Source, open_dataset, options_type
from dcgan.data.shaping import fitted_chunks
from dcgan.metrics.fid import feature_stats, frechet_distance

CHILD_TIMEOUT_S = 60
"""A child process's limit in tests/test_graphed_cuda.py: two of them fit well inside the pytest
run's own limit (benchmarks/gpu_check.TESTS_SHARE of its budget, 264 s), so the innermost timeout
fires first and pytest still writes its junit XML (tests/test_gpu_check.py checks the nesting)."""


def load_dataset(name: str, root: str | Path, image_size: int, channels: int,
                 download: bool = False, max_images: int = 0, **options: object) -> RawDataset:
    """Load ``name`` whole into memory as the prepare stage shapes it (that stage streams it
    chunk by chunk): a RawDataset whose images are uint8 (N, channels, size, size)."""
    raw = open_dataset(name, Source(Path(root), download, max_images), options_type(name)(**options))
    parts, kept = [], []
    for images, idx, _ in fitted_chunks(raw, channels, image_size):
        parts.append(images)
        kept.append(idx)
    if not kept or not sum(len(k) for k in kept):
        raise UserError(f"dataset {name!r} under {root}: none of its {len(raw.images)} images could "
                        f"be read (e.g. {raw.skipped_files[0] if raw.skipped_files else '?'})")
    raw.labels = np.asarray(raw.labels, np.int64)[np.concatenate(kept)]
    raw.images = np.concatenate(parts)
    return raw


def fid_from_features(a: np.ndarray, b: np.ndarray) -> float:
    """FID between two feature sets (N, D)."""
    return frechet_distance(*feature_stats(a), *feature_stats(b))


def channel_stats(images: np.ndarray) -> tuple[list[float], list[float]]:
    """Per-channel mean and (population) std of uint8 images on the [0, 1] scale, exactly (as the
    prepare stage's meta.json holds them)."""
    return ChannelSums(images.shape[1]).add(np.asarray(images)).stats()

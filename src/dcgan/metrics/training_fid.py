"""In-training FID: the function the training loop calls every ``train.eval_every`` epochs to
keep the best generator (used by the train stage and the benchmarks)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from dcgan.core.seeding import derive_seed
from dcgan.metrics.fid import fid_of_features
from dcgan.metrics.reference import check_extractor, load_reference, make_extractor
from dcgan.networks.gan import Generator
from dcgan.networks.sampling import generate


def make_fid_fn(evaluator_dir: str, prepared_dir: str, *, extractor: str, inception_weights: str,
                batch_size: int, samples: int, seed: int, device: torch.device
                ) -> tuple[Callable[[Generator], float], str]:
    """(FID of ``samples`` images from G against the training set's reference features, the
    extractor's id). The noise is the same at every evaluation (derived from ``seed``)."""
    ref, _, meta = load_reference(evaluator_dir, prepared_dir, extractor, features=False)
    # resized as the reference was (evaluator.resize, recorded by the evaluator stage)
    extract = make_extractor(extractor, evaluator_dir, inception_weights, batch_size, device,
                             resize=meta.get("resize", "legacy"))
    check_extractor(meta, extract, evaluator_dir)
    noise_seed = derive_seed(seed, "train_fid")

    def fid_fn(g: Generator) -> float:
        images = generate(g, samples, g.cfg.latent_dim, noise_seed, device, batch_size)
        features, _ = extract(images, "train FID")
        return fid_of_features(features, ref.mu, ref.sigma)

    return fid_fn, meta["extractor_id"]

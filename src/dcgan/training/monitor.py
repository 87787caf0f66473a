"""In-training FID: the function the loop calls every ``train.eval_every`` epochs to keep the
best generator (used by the train stage and the benchmarks)."""

from __future__ import annotations

import torch

from dcgan.metrics.fid import feature_stats, frechet_distance
from dcgan.metrics.reference import load_reference, make_extractor
from dcgan.models import Generator
from dcgan.sampling import generate
from dcgan.seeding import derive_seed


def make_fid_fn(params, evaluator_dir: str, prepared_dir: str, device: torch.device):
    """FID of train.eval_samples images from G against the training set's reference features."""
    ev = params.evaluate
    ref, _, meta = load_reference(evaluator_dir, prepared_dir, ev.extractor, features=False)
    extractor = make_extractor(ev.extractor, evaluator_dir, ev.inception_weights, ev.batch_size, device)
    seed = derive_seed(params.base.seed, "train_fid")  # the same noise at every evaluation

    def fid_fn(g: Generator) -> float:
        images = generate(g, params.train.eval_samples, g.cfg.latent_dim, seed, device, ev.batch_size)
        features, _ = extractor(images, "train FID")
        return frechet_distance(*feature_stats(features), ref.mu, ref.sigma)

    return fid_fn, meta["extractor_id"]

"""Scoring speed of the evaluate stage's metrics on N generated images (default 10,000).

Times, in one process: feature extraction with the classifier extractor (images/s), then FID,
IS, KID and precision/recall against the training set's reference features, for N samples
and their floors. Needs a built pipeline (models/evaluator, data/prepared, models/gan).

    python benchmarks/eval_speed.py            # 10,000 samples
    python benchmarks/eval_speed.py --n 2000
"""

from __future__ import annotations

import argparse
import time

import torch

from dcgan.app.params.whole import load_params
from dcgan.metrics.reference import load_reference, make_extractor
from dcgan.metrics.sets import FeatureSet
from dcgan.metrics.suite import get
from dcgan.networks.model_dir import load_generator
from dcgan.networks.sampling import generate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=10_000, help="generated images to score")
    ap.add_argument("--params", default="params.yaml")
    args = ap.parse_args()
    params = load_params(args.params)
    ev = params.evaluate
    device = torch.device("cpu")
    print(f"torch threads: {torch.get_num_threads()}, n = {args.n}")
    g = load_generator("models/gan", device, params.sample.generator)
    images = generate(g, args.n, g.cfg.latent_dim, 123, device, 1000)
    ref, _, _ = load_reference("models/evaluator", "data/prepared", params.evaluator.extractor)
    extractor = make_extractor(params.evaluator.extractor, "models/evaluator", params.evaluator.inception_weights,
                               ev.batch_size, device)

    t0 = time.perf_counter()
    gen = FeatureSet(*extractor(images, "features"))
    t_feat = time.perf_counter() - t0
    print(f"feature extraction : {t_feat:6.2f} s  ({args.n / t_feat:,.0f} images/s)")
    total = t_feat
    for name in ev.metrics:
        t0 = time.perf_counter()
        out = get(name)(gen, ref, ev, params.base.seed)
        dt = time.perf_counter() - t0
        total += dt
        shown = ", ".join(f"{k}={v:.4g}" for k, v in out.items())
        print(f"{name:18s} : {dt:6.2f} s  ({shown})")
    print(f"total              : {total:6.2f} s for {args.n} samples "
          f"(reference: {len(ref.features)} training images, precomputed by the evaluator stage)")


if __name__ == "__main__":
    main()

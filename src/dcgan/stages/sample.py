"""sample: draw sample.num_samples images from the generator -> data/samples, reports/samples.png."""

from __future__ import annotations

import sys
from pathlib import Path

from dcgan.data.arrays import save_images
from dcgan.models import load_generator
from dcgan.runtime import pick_device
from dcgan.sampling import generate, save_grid
from dcgan.stages._common import log, params_from, parser, run


def main(argv: list[str] | None = None) -> None:
    ap = parser(__doc__)
    ap.add_argument("--models", default="models/gan", help="train's output folder")
    ap.add_argument("--out", default="data/samples/samples.npy", help="samples array")
    ap.add_argument("--grid", default="reports/samples.png", help="sample grid picture")
    args = ap.parse_args(argv)
    params = params_from(args)
    p = params.sample
    device = pick_device(params.base.device)
    g = load_generator(args.models, device)
    images = generate(g, p.num_samples, g.cfg.latent_dim, params.base.seed, device, p.batch_size)
    save_images(args.out, images)
    save_grid(images[:p.grid_size], args.grid, upscale=max(1, 64 // g.cfg.image_size))
    log(f"sample: {len(images)} images -> {args.out}, grid -> {Path(args.grid)}")


if __name__ == "__main__":
    sys.exit(run(main))

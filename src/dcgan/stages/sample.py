"""sample: draw sample.num_samples images from the generator -> data/samples, sample and interpolation grids."""

from __future__ import annotations

import sys

from dcgan.data.arrays import save_images
from dcgan.models import load_generator
from dcgan.runtime import pick_device
from dcgan.sampling import generate, interpolation_grid, save_grid
from dcgan.stages._common import log, params_from, parser, run


def main(argv: list[str] | None = None) -> None:
    ap = parser(__doc__)
    ap.add_argument("--models", default="models/gan", help="train's output folder")
    ap.add_argument("--out", default="data/samples/samples.npy", help="samples array")
    ap.add_argument("--grid", default="reports/samples.png", help="sample grid picture")
    ap.add_argument("--interpolation", default="reports/interpolation.png", help="latent walk picture")
    args = ap.parse_args(argv)
    params = params_from(args)
    p, which = params.sample, params.evaluate.generator
    device = pick_device(params.base.device)
    g = load_generator(args.models, device, which)
    images = generate(g, p.num_samples, g.cfg.latent_dim, params.base.seed, device, p.batch_size)
    save_images(args.out, images)
    upscale = max(1, 64 // g.cfg.image_size)
    save_grid(images[:p.grid_size], args.grid, upscale=upscale)
    walk = interpolation_grid(g, g.cfg.latent_dim, params.base.seed, device)
    save_grid(walk, args.interpolation, nrow=10, upscale=upscale)
    log(f"sample: {len(images)} images from the {which} generator -> {args.out}; grids -> "
        f"{args.grid}, {args.interpolation}")


if __name__ == "__main__":
    sys.exit(run(main))

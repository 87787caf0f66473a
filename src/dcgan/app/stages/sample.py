"""sample: draw sample.num_samples images from the generator -> data/samples, sample and interpolation grids."""

from __future__ import annotations

import sys
from pathlib import Path

from dcgan.app.params.base import BaseParams
from dcgan.app.params.sample import SampleParams
from dcgan.app.stages._common import log, params_from, parser, run
from dcgan.base import files
from dcgan.base.devices import pick_device
from dcgan.base.images import save_grid
from dcgan.data.arrays import save_images
from dcgan.networks.model_dir import load_discriminator, load_generator, pick_generator, read_card
from dcgan.networks.sampling import discriminator_rejection_sampling, generate, interpolation_grid


def main(argv: list[str] | None = None) -> None:
    ap = parser(__doc__)
    ap.add_argument("--models", default="models/gan", help="train's output folder")
    ap.add_argument("--out", default="data/samples/samples.npy", help="samples array")
    ap.add_argument("--grid", default="reports/samples.png", help="sample grid picture")
    ap.add_argument("--interpolation", default="reports/interpolation.png", help="latent walk picture")
    args = ap.parse_args(argv)
    params = params_from(args, BaseParams, SampleParams)
    p = params.sample
    device = pick_device(params.base.device)
    which = pick_generator(p.generator, read_card(args.models).ema_decay)
    g = load_generator(args.models, device, which)
    info = {"generator": which, "drs": p.drs}
    if p.drs:
        d = load_discriminator(args.models, device)
        res = discriminator_rejection_sampling(g, d, p.num_samples, g.cfg.latent_dim, params.base.seed,
                                               device, p.batch_size, p.drs_burnin, p.drs_percentile)
        images = res.images
        info.update(drs_acceptance_rate=res.acceptance_rate, drs_proposed=res.proposed,
                    drs_max_logit=res.max_logit, drs_percentile=p.drs_percentile)
        log(f"sample: DRS kept {res.acceptance_rate:.1%} of {res.proposed} proposals")
    else:
        images = generate(g, p.num_samples, g.cfg.latent_dim, params.base.seed, device, p.batch_size)
        # the latents, as generate draws them: two generators sampled with the same record saw the
        # same z row for row (the promotion gate then resamples both sets jointly)
        info["latents"] = {"seed": params.base.seed, "n": p.num_samples, "batch_size": p.batch_size,
                           "latent_dim": g.cfg.latent_dim, "prior": g.cfg.prior}
    save_images(args.out, images)
    files.write_json(Path(args.out).with_suffix(".json"), info)
    upscale = max(1, 64 // g.cfg.image_size)
    save_grid(images[:p.grid_size], args.grid, upscale=upscale)
    walk = interpolation_grid(g, g.cfg.latent_dim, params.base.seed, device)
    save_grid(walk, args.interpolation, nrow=10, upscale=upscale)
    log(f"sample: {len(images)} images from the {which} generator -> {args.out}; grids -> "
        f"{args.grid}, {args.interpolation}")


if __name__ == "__main__":
    sys.exit(run(main))

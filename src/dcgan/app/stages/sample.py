"""sample: draw sample.num_samples images from the generator -> data/samples, sample and interpolation grids."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from dcgan.app import paths
from dcgan.app.params.base import BaseParams
from dcgan.app.params.sample import SampleParams
from dcgan.app.params.typed import keyed
from dcgan.app.stages._common import log, params_from, parser, run
from dcgan.core import files
from dcgan.core.devices import pick_device
from dcgan.core.images import save_grid
from dcgan.data.arrays import save_images
from dcgan.networks.sampling import interpolation_grid, sample_model


@dataclass(frozen=True)
class Reads:
    """The params sections this stage reads."""

    base: BaseParams
    sample: SampleParams


def main(argv: list[str] | None = None) -> None:
    ap = parser(__doc__)
    ap.add_argument("--models", default=paths.MODELS, help="train's output folder")
    ap.add_argument("--out", default=paths.SAMPLES, help="samples array")
    ap.add_argument("--grid", default=paths.SAMPLE_GRID, help="sample grid picture")
    ap.add_argument("--interpolation", default=paths.INTERPOLATION, help="latent walk picture")
    args = ap.parse_args(argv)
    params = params_from(args, Reads)
    p = params.sample
    with keyed("sample", device="base.device"):  # a library error about a setting names its params key
        device = pick_device(params.base.device)
        drawn = sample_model(args.models, p.generator, p.num_samples, params.base.seed, device, p.batch_size,
                             p.drs, p.drs_burnin, p.drs_percentile)
    images, which = drawn.images, drawn.generator
    if drawn.drs is not None:
        log(f"sample: DRS kept {drawn.drs.acceptance_rate:.1%} of {drawn.drs.proposed} proposals")
    save_images(args.out, images)
    files.write_json(Path(args.out).with_suffix(".json"), drawn.record)
    upscale = max(1, 64 // images.shape[-1])
    save_grid(images[:p.grid_size], args.grid, upscale=upscale)
    g = drawn.g
    walk = interpolation_grid(g, g.cfg.latent_dim, params.base.seed, device)
    save_grid(walk, args.interpolation, nrow=10, upscale=upscale)
    log(f"sample: {len(images)} images from the {which} generator -> {args.out}; grids -> "
        f"{args.grid}, {args.interpolation}")


if __name__ == "__main__":
    sys.exit(run(main))

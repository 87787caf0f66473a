"""prepare: load prepare.dataset, shape it, split it -> data/prepared/ (any size: chunk by chunk,
in prepare.workers processes; the folder is replaced only when everything is written)."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from dcgan.app import paths
from dcgan.app.params.prepare import PrepareParams
from dcgan.app.params.typed import fill_from, keyed
from dcgan.app.stages._common import log, params_from, parser, run
from dcgan.core import files
from dcgan.core.images import save_grid
from dcgan.data.arrays import open_images
from dcgan.data.loaders import Source, open_dataset, options_type
from dcgan.data.prepare import prepare_dataset, resolve_workers


@dataclass(frozen=True)
class Reads:
    """The params sections this stage reads."""

    prepare: PrepareParams


def main(argv: list[str] | None = None) -> None:
    ap = parser(__doc__)
    ap.add_argument("--out", default=paths.PREPARED, help="output folder")
    args = ap.parse_args(argv)
    params = params_from(args, Reads)
    p = params.prepare
    with keyed("prepare"):  # a loader's error about a setting names its prepare key
        # the loader's own prepare.* keys, by the names its options dataclass declares
        raw = open_dataset(p.dataset, Source(Path(p.root), p.download, p.max_images), fill_from(options_type(p.dataset), p))
        workers = resolve_workers(p.workers, len(raw.images))
        out = Path(args.out)
        with files.staged_dir(out) as tmp:
            res = prepare_dataset(raw, p.channels, p.image_size, p.holdout_fraction, p.split_seed, tmp,
                                  workers, desc=f"prepare {p.dataset}")
            files.record_digests(tmp, res.digests)
            files.write_json(tmp / "meta.json", {
                "dataset": p.dataset, "source": raw.source, "image_size": p.image_size,
                "channels": p.channels, "n_train": res.n_train, "n_holdout": res.n_holdout,
                "labelled": bool((raw.labels >= 0).all()), "class_names": raw.class_names,
                "mean": res.mean, "std": res.std, "skipped_files": len(res.skipped),
            })
            with open_images(tmp / "train.npy") as train:
                save_grid(train[:64], tmp / "preview.png", upscale=max(1, 64 // p.image_size))
    if res.skipped:
        log(f"prepare: skipped {len(res.skipped)} unreadable image file(s), e.g. {res.skipped[0]}")
    log(f"prepare: {p.dataset} -> {res.n_train} train + {res.n_holdout} holdout images "
        f"of {p.channels}x{p.image_size}x{p.image_size} in {out} ({workers} worker"
        f"{'s' if workers > 1 else ''})")


if __name__ == "__main__":
    sys.exit(run(main))

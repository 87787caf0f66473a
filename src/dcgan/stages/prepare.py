"""prepare: load prepare.dataset, shape it, split it -> data/prepared/."""

from __future__ import annotations

import sys
from pathlib import Path

from dcgan import files
from dcgan.data import arrays
from dcgan.data.datasets import load_dataset
from dcgan.images import save_grid
from dcgan.stages._common import log, params_from, parser, run


def main(argv: list[str] | None = None) -> None:
    ap = parser(__doc__)
    ap.add_argument("--out", default="data/prepared", help="output folder")
    args = ap.parse_args(argv)
    params = params_from(args)
    p = params.prepare
    raw = load_dataset(p.dataset, p.root, p.image_size, p.channels, p.download, p.max_images)
    if raw.skipped_files:
        log(f"prepare: skipped {len(raw.skipped_files)} unreadable image file(s), "
            f"e.g. {raw.skipped_files[0]}")
    train_idx, hold_idx = arrays.split_indices(len(raw.images), p.holdout_fraction, params.base.seed)
    out = Path(args.out)
    train, holdout = raw.images[train_idx], raw.images[hold_idx]
    arrays.save_images(out / "train.npy", train)
    files.write_npy(out / "train_labels.npy", raw.labels[train_idx])
    arrays.save_images(out / "holdout.npy", holdout)
    files.write_npy(out / "holdout_labels.npy", raw.labels[hold_idx])
    mean, std = arrays.channel_stats(train)
    files.write_json(out / "meta.json", {
        "dataset": p.dataset, "source": raw.source, "image_size": p.image_size,
        "channels": p.channels, "n_train": len(train), "n_holdout": len(holdout),
        "labelled": bool((raw.labels >= 0).all()), "class_names": raw.class_names,
        "mean": mean, "std": std, "skipped_files": len(raw.skipped_files),
    })
    save_grid(train[:64], out / "preview.png", upscale=max(1, 64 // p.image_size))
    log(f"prepare: {p.dataset} -> {len(train)} train + {len(holdout)} holdout images "
        f"of {p.channels}x{p.image_size}x{p.image_size} in {out}")


if __name__ == "__main__":
    sys.exit(run(main))

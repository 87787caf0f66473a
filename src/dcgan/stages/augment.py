"""augment: append augment.copies randomly flipped/cropped/rotated copies -> data/augmented/."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from dcgan import files
from dcgan.data import arrays
from dcgan.data.augment import augment
from dcgan.images import save_grid
from dcgan.stages._common import log, params_from, parser, run


def main(argv: list[str] | None = None) -> None:
    ap = parser(__doc__)
    ap.add_argument("--data", default="data/prepared", help="prepare's output folder")
    ap.add_argument("--out", default="data/augmented", help="output folder")
    args = ap.parse_args(argv)
    params = params_from(args)
    src, out = Path(args.data), Path(args.out)
    train = arrays.load_images(src / "train.npy")
    labels = np.load(src / "train_labels.npy", allow_pickle=False)
    k = params.augment.copies
    images = augment(train, params.augment, params.base.seed)
    arrays.save_images(out / "train.npy", images)
    files.write_npy(out / "train_labels.npy", np.tile(labels, k + 1))
    # preview: 8 originals in the first column, their augmented copies to the right
    n = min(8, len(train))
    cols = [images[c * len(train):c * len(train) + n] for c in range(k + 1)]
    preview = np.stack(cols, axis=1).reshape(-1, *train.shape[1:])
    save_grid(preview, out / "preview.png", nrow=k + 1, upscale=max(1, 64 // train.shape[-1]))
    log(f"augment: {len(train)} originals + {k} cop{'y' if k == 1 else 'ies'} = {len(images)} images in {out}")


if __name__ == "__main__":
    sys.exit(run(main))

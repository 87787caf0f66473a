"""augment: append augment.copies randomly flipped/cropped/rotated copies -> data/augmented/
(streamed chunk by chunk into the output file; the folder is replaced only when complete).
augment.copies auto: none, on colour photos and grey data alike (copies leak into what G draws)."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dcgan.app import paths
from dcgan.app.params.augment import AugmentParams, resolve_copies
from dcgan.app.params.typed import fill_from
from dcgan.app.stages._common import log, params_from, parser, run
from dcgan.core import files
from dcgan.core.images import save_grid
from dcgan.core.progress import progress
from dcgan.data import arrays
from dcgan.data.augment import Augmentation, augmented_chunks
from dcgan.data.kind import data_kind
from dcgan.data.store import NpyWriter


@dataclass(frozen=True)
class Reads:
    """The params sections this stage reads."""

    augment: AugmentParams


def main(argv: list[str] | None = None) -> None:
    ap = parser(__doc__)
    ap.add_argument("--data", default=paths.PREPARED, help="prepare's output folder")
    ap.add_argument("--out", default=paths.AUGMENTED, help="output folder")
    args = ap.parse_args(argv)
    params = params_from(args, Reads)
    src, out = Path(args.data), Path(args.out)
    train = arrays.open_images(src / "train.npy")
    labels = np.load(src / "train_labels.npy", allow_pickle=False)
    n, given = len(train), params.augment.copies
    kind, why = data_kind(train)
    k = resolve_copies(given, kind)
    if given == "auto":
        log(f"augment: copies auto -> {k} for {kind} data ({why})"
            + "; copies leak into what G draws (docs/techniques.md)")
    spec = fill_from(Augmentation, params.augment, copies=k)
    total = n * (k + 1)
    with files.staged_dir(out) as tmp:
        with NpyWriter(tmp / "train.npy", (total, *train.shape[1:])) as w, \
                progress(total=total, desc="augment", unit="img", dynamic_ncols=True,
                         disable=total < 20000) as bar:
            for chunk in augmented_chunks(train, spec, params.augment.seed):
                w.write(chunk)
                bar.update(len(chunk))
        files.write_npy(tmp / "train_labels.npy", np.tile(labels, k + 1))
        files.record_digests(tmp, {"train.npy": w.digest})
        # preview: 8 originals in the first column, their augmented copies to the right
        m = min(8, n)
        with arrays.open_images(tmp / "train.npy") as images:
            cols = [images[c * n:c * n + m] for c in range(k + 1)]
        preview = np.stack(cols, axis=1).reshape(-1, *train.shape[1:])
        save_grid(preview, tmp / "preview.png", nrow=k + 1, upscale=max(1, 64 // train.shape[-1]))
    log(f"augment: {n} originals + {k} cop{'y' if k == 1 else 'ies'} = {total} images in {out}")


if __name__ == "__main__":
    sys.exit(run(main))

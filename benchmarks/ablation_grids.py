"""Sample grids of the ablation's trained models side by side, one panel per row (same seed, same
noise), so a table's numbers can be checked by eye. Reads the models benchmarks/ablation.py
cached; trains nothing.

    python benchmarks/ablation_grids.py --setting colour --rows plain diffaug diffaug_x4 --seed 0 \\
        --out docs/figures/colour_rows.png
"""

from __future__ import annotations

import os

os.environ.setdefault("TQDM_DISABLE", "1")

import argparse  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ablation  # noqa: E402
import ganrun  # noqa: E402

from dcgan.core.devices import pick_device  # noqa: E402
from dcgan.core.images import grid_image  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--setting", default="colour", choices=list(ablation.SETTINGS))
    ap.add_argument("--rows", nargs="+", required=True, choices=list(ablation.ROWS))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n", type=int, default=36, help="images per panel")
    ap.add_argument("--data-root", default=".ablation-data")
    ap.add_argument("--cache", default=".ablation-cache")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    device = pick_device("cpu")
    sc = ablation.SettingCtx.load(args.setting, Path(args.data_root), device)
    ctx = {"settings": {args.setting: sc}, "device": device, "cache": Path(args.cache)}
    fig, axes = plt.subplots(1, len(args.rows), figsize=(3.2 * len(args.rows), 3.6), squeeze=False)
    for ax, name in zip(axes[0], args.rows, strict=True):
        row = ablation.ROWS[name]
        params = ganrun.with_seed(sc.params, args.seed, **{**ablation.OFF, **row.train})
        key = ablation.run_key(args.setting, row, args.seed, sc.digest[row.data],
                               params.train.epochs * row.length * (len(sc.images["train"]) // len(sc.images[row.data])))
        path = ganrun.cache_path(Path(args.cache), key)
        if not path.is_file():
            raise SystemExit(f"no cached model for {name} seed {args.seed} ({path}): run benchmarks/ablation.py first")
        _, trained = ablation.trained_for(args.setting, row, args.seed, ctx)
        images, _ = ganrun.draw(trained, args.n, 1234, device, params.sample, row.drs)
        ax.imshow(grid_image(torch.from_numpy(images)))
        ax.set_title(row.label, fontsize=8, wrap=True)
        ax.axis("off")
    fig.tight_layout()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

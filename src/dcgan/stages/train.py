"""train: DCGAN on data/augmented -> models/gan/ (+ resumable checkpoints, dvclive logs)."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import torch
from dvclive import Live

from dcgan.data import arrays
from dcgan.models import GANConfig, save_models
from dcgan.runtime import pick_device
from dcgan.sampling import grid_image
from dcgan.stages._common import log, params_from, parser, run
from dcgan.training import checkpoint as ckpt
from dcgan.training.loop import train


class LiveLogger:
    """The loop's MetricLogger on top of dvclive (metrics as TSV plots, images as PNG)."""

    def __init__(self, live: Live):
        self.live = live

    def metric(self, name: str, value: float, step: int) -> None:
        self.live.step = step
        self.live.log_metric(name, value)

    def image(self, name: str, grid: torch.Tensor, step: int) -> None:
        self.live.step = step
        self.live.log_image(name, grid_image(grid.float().cpu()))
        self.live.make_summary()


def truncate_logs(live_dir: Path, step: int) -> None:
    """Drop dvclive rows logged after ``step``: a resumed run logs those steps again."""
    for tsv in (live_dir / "plots" / "metrics").rglob("*.tsv"):
        lines = tsv.read_text().splitlines()
        if not lines:
            continue
        head, rows = lines[0], lines[1:]
        col = head.split("\t").index("step")
        kept = [r for r in rows if int(r.split("\t")[col]) <= step]
        tsv.write_text("\n".join([head, *kept]) + "\n")


def main(argv: list[str] | None = None) -> None:
    ap = parser(__doc__)
    ap.add_argument("--data", default="data/augmented/train.npy", help="training images (uint8 NCHW .npy)")
    ap.add_argument("--out", default="models/gan", help="folder for generator/discriminator/model.json")
    ap.add_argument("--checkpoints", default="checkpoints/train", help="resumable checkpoints (persist)")
    ap.add_argument("--live", default="dvclive", help="dvclive folder (metrics, plots, images)")
    args = ap.parse_args(argv)
    params = params_from(args)
    p, seed = params.train, params.base.seed
    prep = params.prepare
    images = arrays.load_images(args.data, channels=prep.channels, size=prep.image_size)
    device = pick_device(params.base.device)
    cfg = GANConfig(prep.image_size, prep.channels, p.latent_dim, p.g_width, p.d_width)
    fp = ckpt.fingerprint(dataclasses.asdict(p), seed, args.data)

    state, _ = ckpt.load_latest(args.checkpoints, warn=log)
    resume = state is not None and state["fingerprint"] == fp
    live_dir = Path(args.live)
    if resume:
        truncate_logs(live_dir, int(state["step"]))
    del state
    log(f"train: {len(images)} images, {cfg}, device {device}")
    with Live(str(live_dir), resume=resume, save_dvc_exp=False, dvcyaml=None, report=None) as live:
        result = train(p, cfg, seed, images, device, args.checkpoints, fp, LiveLogger(live), log=log)
        live.step = result.step
        ips = result.images_seen / max(result.wall_s, 1e-9) if result.resumed_from_step is None else None
        live.log_metric("train/wall_s", round(result.wall_s, 2), plot=False)
        live.log_metric("train/steps", result.step, plot=False)
        if ips is not None:  # throughput of this process only; a resumed run has no clean number
            live.log_metric("train/images_per_s", round(ips, 1), plot=False)
    save_models(result.g, result.d, cfg, args.out, {"step": result.step, "epochs": result.epoch})
    log(f"train: {result.step} steps in {result.wall_s:.1f}s -> {args.out}")


if __name__ == "__main__":
    sys.exit(run(main))
